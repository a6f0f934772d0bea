"""Dead-lettering (x-dead-letter-exchange) and the x-death header, field by
field, as RabbitMQ 3.10 writes it.

pika decodes the header for us: x-death is a list of dicts, longstr fields
are str, ``count`` (a long) is an int and ``time`` (an AMQP timestamp in
seconds) a naive UTC datetime.
"""

import datetime

import pika

from support import consume, get_all, wait_for

DEATH_FIELDS = {"count", "reason", "queue", "time", "exchange", "routing-keys"}
FIRST_DEATH_HEADERS = {"x-first-death-exchange", "x-first-death-queue", "x-first-death-reason"}


def dead_letter_setup(amqp, ch, **source_args):
    """A fanout DLX with a queue bound to it, and a source queue using it."""
    dlx = amqp.exchange(ch, "fanout")
    dlq = amqp.queue(ch)
    ch.queue_bind(dlq, dlx)
    source = amqp.queue(ch, arguments={"x-dead-letter-exchange": dlx, **source_args})
    return dlx, dlq, source


def assert_recent(timestamp):
    assert isinstance(timestamp, datetime.datetime), repr(timestamp)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert abs((now - timestamp).total_seconds()) < 300, (timestamp, now)


def test_a_rejected_message_is_dead_lettered_with_x_death(amqp, conn, ch):
    dlx, dlq, q = dead_letter_setup(amqp, ch)
    src = amqp.exchange(ch, "direct")
    ch.queue_bind(q, src, "rk-1")
    ch.confirm_delivery()
    ch.basic_publish(
        src,
        "rk-1",
        b"payload",
        pika.BasicProperties(expiration="60000", correlation_id="corr-1", headers={"app": "kept"}),
    )
    method, _props, body = ch.basic_get(q)
    assert body == b"payload"
    ch.basic_reject(method.delivery_tag, requeue=False)

    _tag, [d] = consume(conn, ch, dlq, 1, auto_ack=True)
    assert d.body == b"payload"
    # Routed through the dead-letter exchange with the original routing key.
    assert (d.method.exchange, d.method.routing_key) == (dlx, "rk-1")
    # Properties survive, except the expiration (kept in x-death instead).
    assert d.properties.expiration is None
    assert d.properties.correlation_id == "corr-1"
    headers = d.properties.headers
    assert set(headers) == {"app", "x-death"} | FIRST_DEATH_HEADERS, headers
    assert headers["app"] == "kept"

    deaths = headers["x-death"]
    assert isinstance(deaths, list) and len(deaths) == 1, deaths
    [death] = deaths
    assert set(death) == DEATH_FIELDS | {"original-expiration"}, death
    assert death["count"] == 1
    assert death["reason"] == "rejected"
    assert death["queue"] == q
    assert death["exchange"] == src
    assert death["routing-keys"] == ["rk-1"]
    assert death["original-expiration"] == "60000"
    assert_recent(death["time"])

    assert headers["x-first-death-reason"] == "rejected"
    assert headers["x-first-death-queue"] == q
    assert headers["x-first-death-exchange"] == src
    # Nothing is left in the source queue.
    assert get_all(ch, q) == []


def test_an_expired_message_is_dead_lettered_with_reason_expired(amqp, conn, ch):
    dlx, dlq, q = dead_letter_setup(amqp, ch, **{"x-message-ttl": 100})
    ch.basic_publish("", q, b"short-lived")
    # Nobody consumes q: the broker expires it; wait for it in the DLQ.
    _tag, [d] = consume(conn, ch, dlq, 1, auto_ack=True)
    assert (d.method.exchange, d.method.routing_key) == (dlx, q)
    [death] = d.properties.headers["x-death"]
    # No expiration property on the message, so no original-expiration.
    assert set(death) == DEATH_FIELDS, death
    assert (death["count"], death["reason"], death["queue"]) == (1, "expired", q)
    assert (death["exchange"], death["routing-keys"]) == ("", [q])
    assert_recent(death["time"])
    assert d.properties.headers["x-first-death-reason"] == "expired"


def test_dying_again_increments_count_in_the_same_entry(amqp, conn, ch):
    # A queue whose dead letters come back to it (allowed: each death is a
    # rejection, not an automatic cycle).
    loop_x = amqp.exchange(ch, "fanout")
    q = amqp.queue(ch, arguments={"x-dead-letter-exchange": loop_x})
    ch.queue_bind(q, loop_x)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"again")
    got = []

    def on_message(chan, method, props, body):
        got.append(props.headers)
        if len(got) < 3:
            chan.basic_reject(method.delivery_tag, requeue=False)
        else:
            chan.basic_ack(method.delivery_tag)

    ch.basic_consume(q, on_message)
    assert wait_for(conn, lambda: len(got) == 3)
    assert got[0] is None
    for count, headers in ((1, got[1]), (2, got[2])):
        [death] = headers["x-death"]
        assert set(death) == DEATH_FIELDS, death
        assert (death["count"], death["reason"], death["queue"]) == (count, "rejected", q)
        assert (death["exchange"], death["routing-keys"]) == ("", [q])
        assert headers["x-first-death-queue"] == q
