"""FIFO queues (x-queue-type = fifo), a Warren extension: message groups,
order-keeping requeue and deduplication, through pika.

Skipped against any other broker (e.g. RabbitMQ via WARREN_AMQP_URL).
"""

import pika
import pytest

from support import bodies, ready_count, settle, start_consumer, wait_for


def _product(conn) -> str:
    props = conn._impl.server_properties or {}
    product = props.get("product", b"")
    return product.decode() if isinstance(product, bytes) else str(product)


@pytest.fixture
def warren_only(conn):
    if _product(conn) != "Warren":
        pytest.skip(f"FIFO queues are a Warren extension (broker is {_product(conn)!r})")


def props(group: str, message_id: str) -> pika.BasicProperties:
    return pika.BasicProperties(headers={"x-group-id": group}, message_id=message_id)


def test_groups_requeue_and_deduplication(amqp, conn, ch, warren_only):
    q = amqp.queue(ch, arguments={"x-queue-type": "fifo", "x-deduplication-window": 60_000})
    ch.confirm_delivery()
    for g in ("a", "b"):
        for n in (1, 2, 3):
            ch.basic_publish("", q, f"{g}{n}".encode(), props(g, f"{g}{n}"))
    # A duplicate message-id: dropped, yet confirmed (pika raises on a nack).
    ch.basic_publish("", q, b"a1-again", props("a", "a1"))
    assert ready_count(ch, q) == 6

    # c1 takes the oldest messages (all of group a) and owns a; c2 gets only b.
    c1 = conn.channel()
    c1.basic_qos(prefetch_count=3)
    got1 = []
    start_consumer(c1, q, got1)
    assert wait_for(conn, lambda: len(got1) == 3)
    assert bodies(got1) == [b"a1", b"a2", b"a3"]
    c2 = conn.channel()
    c2.basic_qos(prefetch_count=10)
    got2 = []
    start_consumer(c2, q, got2)
    assert wait_for(conn, lambda: len(got2) == 3)
    settle(conn)
    assert bodies(got2) == [b"b1", b"b2", b"b3"]
    for d in got2:
        c2.basic_ack(d.tag)

    # Nacking a2 returns a1..a3 to the head of the group, in order and
    # redelivered; the group goes (whole) to one consumer.
    c1.basic_nack(got1[1].tag, requeue=True)
    assert wait_for(conn, lambda: len(got1) + len(got2) == 9)
    settle(conn)
    again = got1[3:] or got2[3:]
    assert len(got1[3:]) in (0, 3), "the group went to one consumer"
    assert bodies(again) == [b"a1", b"a2", b"a3"]
    assert all(d.method.redelivered for d in again)
    holder = c1 if got1[3:] else c2
    holder.basic_ack(again[-1].tag, multiple=True)

    # Ids stay remembered after consumption.
    ch.basic_publish("", q, b"b2-again", props("b", "b2"))
    ch.basic_publish("", q, b"c1", props("c", "c1"))
    assert wait_for(conn, lambda: len(got1) + len(got2) == 10)
    settle(conn)
    everything = bodies(got1 + got2)
    assert everything.count(b"c1") == 1
    assert b"b2-again" not in everything and b"a1-again" not in everything
