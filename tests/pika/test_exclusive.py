"""Exclusive queues (405 RESOURCE_LOCKED) and exclusive consumers (403)."""

import pytest

from support import assert_counts, bodies, channel_error, consume, settle, wait_for, wait_until_queue_gone

LOCKED = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{q}' in vhost '/'"


@pytest.fixture
def exclusive_queue(amqp, ch):
    q = amqp.name("excl")
    ch.queue_declare(q, exclusive=True)
    ch.basic_publish("", q, b"owned")
    return q


OTHER_CONNECTION_OPS = {
    "declare-exclusive": lambda ch, q: ch.queue_declare(q, exclusive=True),
    "declare-shared": lambda ch, q: ch.queue_declare(q),
    "declare-passive": lambda ch, q: ch.queue_declare(q, passive=True),
    "consume": lambda ch, q: ch.basic_consume(q, lambda *a: None),
    "get": lambda ch, q: ch.basic_get(q),
    "purge": lambda ch, q: ch.queue_purge(q),
    "delete": lambda ch, q: ch.queue_delete(q),
    "bind": lambda ch, q: ch.queue_bind(q, "amq.fanout"),
}


@pytest.mark.parametrize("op", list(OTHER_CONNECTION_OPS))
def test_other_connection_gets_405(amqp, ch, exclusive_queue, op):
    other = amqp.connect()
    other_ch = other.channel()
    with channel_error(other, other_ch, 405, prefix=LOCKED.format(q=exclusive_queue)):
        OTHER_CONNECTION_OPS[op](other_ch, exclusive_queue)
    # the owner is unaffected and the queue kept its message
    assert_counts(ch, exclusive_queue, messages=1)


def test_other_connection_may_publish_to_exclusive_queue(amqp, ch, exclusive_queue):
    other_ch = amqp.connect().channel()
    other_ch.confirm_delivery()
    other_ch.basic_publish("", exclusive_queue, b"from outside", mandatory=True)
    assert_counts(ch, exclusive_queue, messages=2)


def test_owner_uses_exclusive_queue_from_any_channel(amqp, conn, ch, exclusive_queue):
    second = conn.channel()
    assert second.queue_declare(exclusive_queue, exclusive=True).method.message_count == 1
    assert second.basic_get(exclusive_queue, auto_ack=True)[2] == b"owned"
    second.queue_bind(exclusive_queue, "amq.fanout")
    second.queue_unbind(exclusive_queue, "amq.fanout")
    second.queue_purge(exclusive_queue)


def test_redeclaring_exclusive_queue_as_shared_on_owner_is_405(amqp, conn, ch, exclusive_queue):
    with channel_error(conn, ch, 405, prefix=LOCKED.format(q=exclusive_queue)):
        ch.queue_declare(exclusive_queue)


def test_exclusive_queue_is_deleted_with_its_connection(amqp, ch):
    owner = amqp.connect()
    q = amqp.name("excl")
    owner.channel().queue_declare(q, exclusive=True)
    owner.close()
    err = wait_until_queue_gone(amqp.connect(), q)
    assert err.reply_text == f"NOT_FOUND - no queue '{q}' in vhost '/'"
    # and the name is free again
    third = amqp.connect().channel()
    third.queue_declare(q, exclusive=True)


def test_exclusive_consumer_blocks_other_consumers(amqp, conn, ch):
    q = amqp.queue(ch)
    ch.basic_consume(q, lambda *a: None, exclusive=True)
    other_ch = conn.channel()
    with channel_error(conn, other_ch, 403, f"ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use"):
        other_ch.basic_consume(q, lambda *a: None)
    other_conn = amqp.connect()
    third = other_conn.channel()
    with channel_error(other_conn, third, 403, f"ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use"):
        third.basic_consume(q, lambda *a: None)


def test_exclusive_consume_on_queue_with_consumers_is_403(amqp, conn, ch):
    q = amqp.queue(ch)
    ch.basic_consume(q, lambda *a: None)
    other_ch = conn.channel()
    with channel_error(conn, other_ch, 403, f"ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use"):
        other_ch.basic_consume(q, lambda *a: None, exclusive=True)


def test_cancelling_exclusive_consumer_frees_the_queue(amqp, conn, ch):
    q = amqp.queue(ch)
    for i in range(3):
        ch.basic_publish("", q, f"m{i}".encode())
    tag, got = consume(conn, ch, q, 3, exclusive=True, auto_ack=True)
    assert bodies(got) == [b"m0", b"m1", b"m2"]
    ch.basic_cancel(tag)
    # once cancelled, another consumer may subscribe
    ch.basic_publish("", q, b"later")
    _, again = consume(conn, conn.channel(), q, 1, auto_ack=True)
    assert again[0].body == b"later"


def test_auto_delete_queue_goes_with_its_last_consumer(amqp, conn, ch):
    q = amqp.queue(ch, auto_delete=True)
    ch.basic_publish("", q, b"x")
    settle(conn)
    assert_counts(ch, q, messages=1)  # never consumed: stays
    first = ch.basic_consume(q, lambda *a: None, auto_ack=True)
    second = ch.basic_consume(q, lambda *a: None, auto_ack=True)
    ch.basic_cancel(first)
    assert_counts(ch, q, consumers=1)
    ch.basic_cancel(second)
    err = wait_until_queue_gone(conn, q)
    assert err.reply_text == f"NOT_FOUND - no queue '{q}' in vhost '/'"


def test_consumer_is_cancelled_when_its_queue_is_deleted(amqp, conn, ch):
    q = amqp.queue(ch)
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = ch.basic_consume(q, lambda *a: None)
    amqp.connect().channel().queue_delete(q)
    assert wait_for(conn, lambda: cancelled == [tag])
    assert ch.is_open
    assert tag not in ch.consumer_tags
