"""Mandatory publishes: basic.return 312 NO_ROUTE to the on_return callback."""

import pika

from support import settle, wait_for


def collect_returns(ch):
    returned = []
    ch.add_on_return_callback(lambda _ch, method, props, body: returned.append((method, props, body)))
    return returned


def test_unroutable_mandatory_message_is_returned(amqp, conn, ch):
    x = amqp.exchange(ch, "direct")
    returned = collect_returns(ch)
    props = pika.BasicProperties(message_id="r1", headers={"h": 1}, content_type="text/plain")
    ch.basic_publish(x, "no-route", b"come back", props, mandatory=True)
    assert wait_for(conn, lambda: len(returned) == 1)
    method, got_props, body = returned[0]
    assert (method.reply_code, method.reply_text) == (312, "NO_ROUTE")
    assert (method.exchange, method.routing_key) == (x, "no-route")
    assert body == b"come back"
    assert (got_props.message_id, got_props.headers, got_props.content_type) == ("r1", {"h": 1}, "text/plain")
    assert ch.is_open


def test_default_exchange_unknown_queue_is_returned(amqp, conn, ch):
    returned = collect_returns(ch)
    missing = amqp.name("missing")
    ch.basic_publish("", missing, b"x", mandatory=True)
    assert wait_for(conn, lambda: len(returned) == 1)
    method = returned[0][0]
    assert (method.reply_code, method.reply_text, method.exchange, method.routing_key) == (312, "NO_ROUTE", "", missing)


def test_returns_come_back_in_publish_order(amqp, conn, ch):
    x = amqp.exchange(ch, "fanout")
    returned = collect_returns(ch)
    for i in range(10):
        ch.basic_publish(x, "", f"r{i}".encode(), mandatory=True)
    assert wait_for(conn, lambda: len(returned) == 10)
    assert [body for _, _, body in returned] == [f"r{i}".encode() for i in range(10)]


def test_routed_mandatory_message_is_not_returned(amqp, conn, ch):
    x = amqp.exchange(ch, "direct")
    q = amqp.queue(ch)
    ch.queue_bind(q, x, "rk")
    returned = collect_returns(ch)
    ch.basic_publish(x, "rk", b"delivered", mandatory=True)
    settle(conn)
    assert returned == []
    assert ch.basic_get(q, auto_ack=True)[2] == b"delivered"


def test_unroutable_message_without_mandatory_is_dropped_silently(amqp, conn, ch):
    x = amqp.exchange(ch, "direct")
    returned = collect_returns(ch)
    ch.basic_publish(x, "no-route", b"gone", mandatory=False)
    settle(conn)
    assert returned == []
    assert ch.is_open


def test_headers_exchange_without_match_returns(amqp, conn, ch):
    x = amqp.exchange(ch, "headers")
    q = amqp.queue(ch)
    ch.queue_bind(q, x, arguments={"x-match": "all", "kind": "a"})
    returned = collect_returns(ch)
    ch.basic_publish(x, "", b"b", pika.BasicProperties(headers={"kind": "b"}), mandatory=True)
    ch.basic_publish(x, "", b"a", pika.BasicProperties(headers={"kind": "a"}), mandatory=True)
    assert wait_for(conn, lambda: len(returned) == 1)
    settle(conn)
    assert [body for _, _, body in returned] == [b"b"]
    assert ch.basic_get(q, auto_ack=True)[2] == b"a"


def test_alternate_exchange_catches_unroutable_mandatory_message(amqp, conn, ch):
    alternate = amqp.exchange(ch, "fanout")
    x = amqp.exchange(ch, "direct", arguments={"alternate-exchange": alternate})
    q = amqp.queue(ch)
    ch.queue_bind(q, alternate)
    returned = collect_returns(ch)
    ch.basic_publish(x, "no-route", b"to alternate", mandatory=True)
    settle(conn)
    assert returned == []
    method, _, body = ch.basic_get(q, auto_ack=True)
    assert (body, method.exchange, method.routing_key) == (b"to alternate", x, "no-route")


def test_missing_alternate_exchange_means_unroutable(amqp, conn, ch):
    x = amqp.exchange(ch, "direct", arguments={"alternate-exchange": amqp.name("absent")})
    returned = collect_returns(ch)
    ch.basic_publish(x, "no-route", b"lost", mandatory=True)
    assert wait_for(conn, lambda: len(returned) == 1)
    assert returned[0][0].reply_code == 312
