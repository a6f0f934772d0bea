"""Publish, consume and get: bodies, properties, ordering, counts, framing."""

import datetime
import decimal
import os

import pika
import pytest

from support import Delivery, assert_counts, bodies, consume, get_all, settle, start_consumer, wait_for


def test_get_returns_body_properties_and_delivery_fields(amqp, ch):
    q = amqp.queue(ch)
    headers = {
        "int": 1,
        "negative": -7,
        "long": 2**40,
        "string": "two",
        "bool": False,
        "void": None,
        "array": [1, "x", True],
        "table": {"nested": True, "n": 3},
        "decimal": decimal.Decimal("1.5"),
        "timestamp": datetime.datetime(2024, 1, 2, 3, 4, 5),
        "bytes": b"\x00\xffraw",
    }
    props = pika.BasicProperties(
        content_type="text/plain",
        content_encoding="utf-8",
        headers=headers,
        delivery_mode=2,
        priority=3,
        correlation_id="corr-1",
        reply_to="reply-queue",
        expiration="60000",
        message_id="msg-1",
        timestamp=1_700_000_000,
        type="greeting",
        user_id="guest",
        app_id="pika-tests",
    )
    ch.basic_publish("", q, b"hello \x00 world", props)

    method, got, body = ch.basic_get(q)
    assert body == b"hello \x00 world"
    assert (method.delivery_tag, method.redelivered, method.exchange, method.routing_key, method.message_count) == (
        1,
        False,
        "",
        q,
        0,
    )
    for field in (
        "content_type",
        "content_encoding",
        "delivery_mode",
        "priority",
        "correlation_id",
        "reply_to",
        "expiration",
        "message_id",
        "timestamp",
        "type",
        "user_id",
        "app_id",
    ):
        assert getattr(got, field) == getattr(props, field), field
    assert got.headers == headers
    ch.basic_ack(method.delivery_tag)


def test_message_without_properties_has_none_set(amqp, ch):
    q = amqp.queue(ch)
    ch.basic_publish("", q, b"bare")
    method, props, body = ch.basic_get(q, auto_ack=True)
    assert body == b"bare"
    assert props.headers is None
    assert props.delivery_mode is None
    assert props.content_type is None


def test_get_on_empty_queue_returns_nothing(amqp, ch):
    q = amqp.queue(ch)
    assert ch.basic_get(q) == (None, None, None)
    assert ch.basic_get(q, auto_ack=True) == (None, None, None)


def test_get_reports_remaining_message_count(amqp, ch):
    q = amqp.queue(ch)
    for i in range(3):
        ch.basic_publish("", q, f"m{i}".encode())
    counts = [ch.basic_get(q, auto_ack=True)[0].message_count for _ in range(3)]
    assert counts == [2, 1, 0]


def test_get_is_fifo(amqp, ch):
    q = amqp.queue(ch)
    sent = [f"m{i}".encode() for i in range(20)]
    for body in sent:
        ch.basic_publish("", q, body)
    assert bodies(get_all(ch, q)) == sent


def test_consume_delivers_in_publish_order(amqp, conn, ch):
    q = amqp.queue(ch)
    sent = [f"m{i}".encode() for i in range(50)]
    for body in sent:
        ch.basic_publish("", q, body)
    received = []
    for method, props, body in ch.consume(q, inactivity_timeout=5):
        assert method is not None, f"no delivery within 5 s after {len(received)}"
        received.append(Delivery(method, props, body))
        ch.basic_ack(method.delivery_tag)
        if len(received) == len(sent):
            break
    ch.cancel()
    assert bodies(received) == sent
    assert [d.tag for d in received] == list(range(1, 51))
    assert all(d.method.exchange == "" and d.method.routing_key == q for d in received)
    assert not any(d.method.redelivered for d in received)
    assert_counts(ch, q, messages=0)


def test_consumer_tag_is_echoed_in_deliveries(amqp, conn, ch):
    q = amqp.queue(ch)
    ch.basic_publish("", q, b"x")
    tag, got = consume(conn, ch, q, 1, consumer_tag="my-consumer-tag", auto_ack=True)
    assert tag == "my-consumer-tag"
    assert got[0].method.consumer_tag == "my-consumer-tag"


def test_consumer_receives_messages_published_later_from_another_connection(amqp, conn, ch):
    q = amqp.queue(ch)
    got = []
    start_consumer(ch, q, got, auto_ack=True)
    publisher = amqp.connect().channel()
    for i in range(5):
        publisher.basic_publish("", q, f"later{i}".encode())
    assert wait_for(conn, lambda: len(got) == 5)
    assert bodies(got) == [f"later{i}".encode() for i in range(5)]


def test_auto_ack_consume_empties_queue(amqp, conn, ch):
    q = amqp.queue(ch)
    for i in range(10):
        ch.basic_publish("", q, b"x")
    consume(conn, ch, q, 10, auto_ack=True)
    settle(conn)
    assert_counts(ch, q, messages=0)
    ch.close()
    # nothing was left unacked on the closed channel
    assert_counts(conn.channel(), q, messages=0)


def test_cancel_stops_deliveries(amqp, conn, ch):
    q = amqp.queue(ch)
    got = []
    tag = start_consumer(ch, q, got, auto_ack=True)
    ch.basic_publish("", q, b"before")
    assert wait_for(conn, lambda: len(got) == 1)
    ch.basic_cancel(tag)
    ch.basic_publish("", q, b"after")
    settle(conn)
    assert bodies(got) == [b"before"]
    assert_counts(ch, q, messages=1)


def test_queue_declare_ok_reports_counts(amqp, conn, ch):
    q = amqp.queue(ch)
    for _ in range(3):
        ch.basic_publish("", q, b"x")
    assert_counts(ch, q, messages=3, consumers=0)
    assert ch.queue_declare(q, passive=True).method.queue == q
    other = conn.channel()
    other.basic_qos(prefetch_count=1)
    start_consumer(other, q, [])
    start_consumer(other, q, [])
    assert_counts(ch, q, messages=1, consumers=2)
    ok = ch.queue_declare(q).method  # an equivalent active redeclare also reports counts
    assert (ok.message_count, ok.consumer_count) == (1, 2)


def test_prefetch_count_limits_unacked_deliveries(amqp, conn, ch):
    q = amqp.queue(ch)
    for i in range(5):
        ch.basic_publish("", q, f"m{i}".encode())
    ch.basic_qos(prefetch_count=2)
    got = []
    start_consumer(ch, q, got)
    assert wait_for(conn, lambda: len(got) == 2)
    settle(conn)
    assert bodies(got) == [b"m0", b"m1"]
    ch.basic_ack(got[0].tag)
    assert wait_for(conn, lambda: len(got) == 3)
    settle(conn)
    assert len(got) == 3
    ch.basic_ack(got[2].tag, multiple=True)
    assert wait_for(conn, lambda: len(got) == 5)
    assert bodies(got) == [f"m{i}".encode() for i in range(5)]


def test_round_robin_between_consumers(amqp, conn, ch):
    q = amqp.queue(ch)
    first, second = [], []
    start_consumer(conn.channel(), q, first, auto_ack=True)
    start_consumer(conn.channel(), q, second, auto_ack=True)
    for i in range(10):
        ch.basic_publish("", q, str(i).encode())
    assert wait_for(conn, lambda: len(first) + len(second) == 10)
    assert bodies(first) == [str(i).encode() for i in range(0, 10, 2)]
    assert bodies(second) == [str(i).encode() for i in range(1, 10, 2)]


@pytest.mark.parametrize(
    "size",
    [0, 1, 131_063, 131_064, 131_065, 3 * 131_064, 1024 * 1024 + 3],
    ids=lambda s: f"{s}B",
)
def test_body_sizes_and_frame_boundaries(amqp, conn, ch, size):
    """Bodies split over several body frames (frame_max 131072) come back whole."""
    q = amqp.queue(ch)
    body = os.urandom(size)
    ch.basic_publish("", q, body, pika.BasicProperties(message_id="big"))
    method, props, got = ch.basic_get(q, auto_ack=True)
    assert got == body
    assert props.message_id == "big"
    ch.basic_publish("", q, body)
    _, delivered = consume(conn, ch, q, 1, auto_ack=True)
    assert delivered[0].body == body


def test_server_named_queue(amqp, ch):
    ok = ch.queue_declare("", exclusive=True).method
    assert ok.queue.startswith("amq.gen-")
    assert (ok.message_count, ok.consumer_count) == (0, 0)
    ch.basic_publish("", ok.queue, b"to generated")
    assert ch.basic_get(ok.queue, auto_ack=True)[2] == b"to generated"


def test_purge_and_delete_report_message_counts(amqp, ch):
    q = amqp.queue(ch)
    for _ in range(3):
        ch.basic_publish("", q, b"x")
    assert ch.queue_purge(q).method.message_count == 3
    assert_counts(ch, q, messages=0)
    for _ in range(2):
        ch.basic_publish("", q, b"x")
    assert ch.queue_delete(q).method.message_count == 2
    # deleting a queue that does not exist succeeds
    assert ch.queue_delete(q).method.message_count == 0


def test_purge_leaves_unacked_messages_alone(amqp, conn, ch):
    q = amqp.queue(ch)
    for i in range(3):
        ch.basic_publish("", q, f"m{i}".encode())
    held = conn.channel()
    method, _, body = held.basic_get(q)
    assert body == b"m0"
    assert ch.queue_purge(q).method.message_count == 2
    held.close()  # m0 goes back
    assert bodies(get_all(ch, q)) == [b"m0"]


def test_persistent_message_to_durable_queue(amqp, ch):
    q = amqp.queue(ch, durable=True)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"durable", pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent))
    method, props, body = ch.basic_get(q, auto_ack=True)
    assert (body, props.delivery_mode) == (b"durable", 2)
