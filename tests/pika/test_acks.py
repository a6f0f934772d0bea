"""ack / nack / reject / recover, requeue order and the redelivered flag."""

import pika
import pytest

from support import assert_counts, bodies, channel_error, consume, get_all, settle, start_consumer, wait_for


def publish_numbered(ch, q, n):
    sent = [f"m{i}".encode() for i in range(1, n + 1)]
    for body in sent:
        ch.basic_publish("", q, body)
    return sent


def test_ack_removes_message(amqp, conn, ch):
    q = amqp.queue(ch)
    publish_numbered(ch, q, 1)
    method, _, _ = ch.basic_get(q)
    ch.basic_ack(method.delivery_tag)
    ch.close()
    check = conn.channel()
    assert_counts(check, q, messages=0)
    assert check.basic_get(q) == (None, None, None)


def test_unacked_message_is_held_until_channel_closes(amqp, conn, ch):
    q = amqp.queue(ch)
    publish_numbered(ch, q, 1)
    holder = conn.channel()
    method, _, body = holder.basic_get(q)
    assert not method.redelivered
    assert_counts(ch, q, messages=0)
    holder.close()
    assert_counts(ch, q, messages=1)
    method, _, again = ch.basic_get(q, auto_ack=True)
    assert (again, method.redelivered) == (body, True)


def test_ack_multiple(amqp, conn, ch):
    q = amqp.queue(ch)
    publish_numbered(ch, q, 5)
    _, got = consume(conn, ch, q, 5)
    ch.basic_ack(got[2].tag, multiple=True)  # acks m1..m3
    ch.close()
    assert bodies(get_all(conn.channel(), q)) == [b"m4", b"m5"]


def test_reject_requeue_redelivers_same_message(amqp, conn, ch):
    q = amqp.queue(ch)
    props = pika.BasicProperties(message_id="id-1", headers={"k": "v"})
    ch.basic_publish("", q, b"again", props)
    first = ch.basic_get(q)
    ch.basic_reject(first[0].delivery_tag, requeue=True)
    method, got_props, body = ch.basic_get(q)
    assert body == b"again"
    assert method.redelivered
    assert method.delivery_tag == first[0].delivery_tag + 1
    assert (got_props.message_id, got_props.headers) == ("id-1", {"k": "v"})
    ch.basic_ack(method.delivery_tag)


def test_reject_requeue_redelivers_to_consumer(amqp, conn, ch):
    q = amqp.queue(ch)
    publish_numbered(ch, q, 1)
    got = []
    start_consumer(ch, q, got)
    assert wait_for(conn, lambda: len(got) == 1)
    ch.basic_reject(got[0].tag, requeue=True)
    assert wait_for(conn, lambda: len(got) == 2)
    assert (got[1].body, got[1].method.redelivered) == (b"m1", True)
    assert not got[0].method.redelivered


def test_reject_without_requeue_discards(amqp, conn, ch):
    q = amqp.queue(ch)
    publish_numbered(ch, q, 2)
    method, _, _ = ch.basic_get(q)
    ch.basic_reject(method.delivery_tag, requeue=False)
    ch.close()
    assert bodies(get_all(conn.channel(), q)) == [b"m2"]


def test_nack_single_requeue(amqp, conn, ch):
    q = amqp.queue(ch)
    publish_numbered(ch, q, 3)
    _, got = consume(conn, ch, q, 3)
    ch.basic_nack(got[1].tag, multiple=False, requeue=True)
    assert wait_for(conn, lambda: len(got) == 4)
    assert (got[3].body, got[3].method.redelivered) == (b"m2", True)


def test_nack_multiple_requeue_keeps_order(amqp, conn, ch):
    q = amqp.queue(ch)
    sent = publish_numbered(ch, q, 5)
    _, got = consume(conn, ch, q, 5)
    assert not any(d.method.redelivered for d in got)
    ch.basic_nack(got[-1].tag, multiple=True, requeue=True)
    assert wait_for(conn, lambda: len(got) == 10)
    again = got[5:]
    assert bodies(again) == sent
    assert all(d.method.redelivered for d in again)
    assert [d.tag for d in again] == list(range(6, 11))


def test_nack_multiple_without_requeue_discards(amqp, conn, ch):
    q = amqp.queue(ch)
    publish_numbered(ch, q, 4)
    _, got = consume(conn, ch, q, 4)
    ch.basic_nack(got[2].tag, multiple=True, requeue=False)  # drops m1..m3
    ch.close()
    assert bodies(get_all(conn.channel(), q)) == [b"m4"]


def test_requeued_messages_return_to_their_original_position(amqp, conn, ch):
    q = amqp.queue(ch)
    publish_numbered(ch, q, 5)
    held = [ch.basic_get(q) for _ in range(3)]  # m1 m2 m3 unacked; m4 m5 ready
    ch.basic_reject(held[1][0].delivery_tag, requeue=True)  # m2 back before m4
    method, _, body = ch.basic_get(q)
    assert (body, method.redelivered, method.message_count) == (b"m2", True, 2)
    ch.basic_reject(held[0][0].delivery_tag, requeue=True)  # m1 back before m2
    ch.basic_reject(method.delivery_tag, requeue=True)
    out = get_all(ch, q)
    assert [(d.body, d.method.redelivered) for d in out] == [
        (b"m1", True),
        (b"m2", True),
        (b"m4", False),
        (b"m5", False),
    ]


def test_closing_channel_requeues_unacked_in_order(amqp, conn, ch):
    q = amqp.queue(ch)
    publish_numbered(ch, q, 5)
    consumer_ch = conn.channel()
    _, got = consume(conn, consumer_ch, q, 5)
    consumer_ch.basic_ack(got[1].tag)  # m2 acked, the rest unacked
    consumer_ch.close()
    out = get_all(ch, q)
    assert [(d.body, d.method.redelivered) for d in out] == [
        (b"m1", True),
        (b"m3", True),
        (b"m4", True),
        (b"m5", True),
    ]


def test_closing_connection_requeues_to_another_consumer(amqp, conn, ch):
    q = amqp.queue(ch)
    sent = publish_numbered(ch, q, 4)
    other = amqp.connect()
    _, got = consume(other, other.channel(), q, 4)
    assert bodies(got) == sent
    other.close()
    _, again = consume(conn, ch, q, 4)
    assert bodies(again) == sent
    assert all(d.method.redelivered for d in again)


def test_cancel_does_not_requeue_unacked(amqp, conn, ch):
    q = amqp.queue(ch)
    publish_numbered(ch, q, 2)
    tag, got = consume(conn, ch, q, 2)
    ch.basic_cancel(tag)
    settle(conn)
    assert_counts(conn.channel(), q, messages=0)
    # the cancelled consumer's deliveries can still be acked on the channel
    ch.basic_ack(got[0].tag)
    ch.basic_reject(got[1].tag, requeue=True)
    method, _, body = conn.channel().basic_get(q, auto_ack=True)
    assert (body, method.redelivered) == (b"m2", True)


def test_recover_requeue_redelivers_unacked(amqp, conn, ch):
    q = amqp.queue(ch)
    sent = publish_numbered(ch, q, 3)
    _, got = consume(conn, ch, q, 3)
    ch.basic_recover(requeue=True)
    assert wait_for(conn, lambda: len(got) == 6)
    assert bodies(got[3:]) == sent
    assert all(d.method.redelivered for d in got[3:])


@pytest.mark.parametrize("method", ["ack", "nack", "reject"])
def test_unknown_delivery_tag_is_406(amqp, conn, ch, method):
    q = amqp.queue(ch)
    publish_numbered(ch, q, 1)
    ch.basic_get(q)
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - unknown delivery tag 99"):
        if method == "ack":
            ch.basic_ack(99)
        elif method == "nack":
            ch.basic_nack(99)
        else:
            ch.basic_reject(99)
        ch.queue_declare(q, passive=True)  # a round trip to receive the close


def test_double_ack_is_406(amqp, conn, ch):
    q = amqp.queue(ch)
    publish_numbered(ch, q, 1)
    method, _, _ = ch.basic_get(q)
    ch.basic_ack(method.delivery_tag)
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - unknown delivery tag 1"):
        ch.basic_ack(method.delivery_tag)
        ch.queue_declare(q, passive=True)


def test_ack_of_auto_acked_delivery_is_406(amqp, conn, ch):
    q = amqp.queue(ch)
    publish_numbered(ch, q, 1)
    method, _, _ = ch.basic_get(q, auto_ack=True)
    with channel_error(conn, ch, 406, f"PRECONDITION_FAILED - unknown delivery tag {method.delivery_tag}"):
        ch.basic_ack(method.delivery_tag)
        ch.queue_declare(q, passive=True)


def test_unacked_messages_survive_channel_error(amqp, conn, ch):
    """A channel closed by an error requeues its unacked messages like a normal close."""
    q = amqp.queue(ch)
    publish_numbered(ch, q, 2)
    ch.basic_get(q)
    ch.basic_get(q)
    with channel_error(conn, ch, 406):
        ch.basic_ack(42)
        ch.queue_declare(q, passive=True)
    out = get_all(conn.channel(), q)
    assert [(d.body, d.method.redelivered) for d in out] == [(b"m1", True), (b"m2", True)]
