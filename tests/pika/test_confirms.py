"""Publisher confirms (confirm.select) through pika's BlockingChannel.confirm_delivery."""

import pika
import pytest
from pika.exceptions import UnroutableError

from support import assert_counts, bodies, channel_error, get_all


def test_confirmed_publish_is_enqueued(amqp, ch):
    q = amqp.queue(ch)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"confirmed")  # returns only after the broker's ack
    assert_counts(ch, q, messages=1)
    assert ch.basic_get(q, auto_ack=True)[2] == b"confirmed"


def test_many_confirmed_publishes_arrive_in_order(amqp, ch):
    q = amqp.queue(ch)
    ch.confirm_delivery()
    sent = [f"m{i}".encode() for i in range(200)]
    for body in sent:
        ch.basic_publish("", q, body)
    assert bodies(get_all(ch, q)) == sent


def test_confirmed_persistent_publish_to_durable_queue(amqp, ch):
    q = amqp.queue(ch, durable=True)
    ch.confirm_delivery()
    for i in range(10):
        ch.basic_publish("", q, b"p", pika.BasicProperties(delivery_mode=2))
    assert_counts(ch, q, messages=10)


def test_confirmed_fanout_to_several_queues(amqp, ch):
    x = amqp.exchange(ch, "fanout")
    queues = [amqp.queue(ch) for _ in range(3)]
    for q in queues:
        ch.queue_bind(q, x)
    ch.confirm_delivery()
    ch.basic_publish(x, "ignored", b"fan", mandatory=True)
    for q in queues:
        assert ch.basic_get(q, auto_ack=True)[2] == b"fan"


def test_unroutable_mandatory_publish_raises_unroutable_error(amqp, conn, ch):
    x = amqp.exchange(ch, "direct")
    ch.confirm_delivery()
    with pytest.raises(UnroutableError) as info:
        ch.basic_publish(x, "no-binding", b"lost", pika.BasicProperties(message_id="u1"), mandatory=True)
    [returned] = info.value.messages
    assert (returned.method.reply_code, returned.method.reply_text) == (312, "NO_ROUTE")
    assert (returned.method.exchange, returned.method.routing_key) == (x, "no-binding")
    assert returned.body == b"lost"
    assert returned.properties.message_id == "u1"
    assert ch.is_open and conn.is_open
    # the channel keeps working in confirm mode
    q = amqp.queue(ch)
    ch.basic_publish("", q, b"fine", mandatory=True)
    assert_counts(ch, q, messages=1)


def test_unroutable_mandatory_to_default_exchange(amqp, ch):
    ch.confirm_delivery()
    missing = amqp.name("missing")
    with pytest.raises(UnroutableError) as info:
        ch.basic_publish("", missing, b"nowhere", mandatory=True)
    [returned] = info.value.messages
    assert (returned.method.reply_code, returned.method.exchange, returned.method.routing_key) == (312, "", missing)


def test_unroutable_publish_without_mandatory_is_confirmed_and_dropped(amqp, ch):
    x = amqp.exchange(ch, "topic")
    ch.confirm_delivery()
    ch.basic_publish(x, "no.binding", b"dropped")  # no exception: acked, then dropped
    ch.basic_publish("", amqp.name("missing"), b"dropped")
    assert ch.is_open


def test_confirmed_publish_to_missing_exchange_is_404(amqp, conn, ch):
    x = amqp.name("missing-x")
    ch.confirm_delivery()
    with channel_error(conn, ch, 404, f"NOT_FOUND - no exchange '{x}' in vhost '/'"):
        ch.basic_publish(x, "rk", b"x")


def test_confirm_select_on_transactional_channel_is_406(conn, ch):
    ch.tx_select()
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode"):
        ch.confirm_delivery()


def test_tx_select_on_confirm_channel_is_406(conn, ch):
    ch.confirm_delivery()
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode"):
        ch.tx_select()
