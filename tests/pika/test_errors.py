"""Errors a client can cause: reply codes, reply texts, and whether the
channel or the whole connection is closed (as RabbitMQ 3.10 does it)."""

import re

import pika
import pytest
from pika.exceptions import ProbableAccessDeniedError, ProbableAuthenticationError

from support import assert_counts, bodies, channel_error, connection_error, get_all

# ---------------------------------------------------------------- 404 NOT_FOUND


def test_passive_declare_of_missing_queue_is_404(amqp, conn, ch):
    q = amqp.name("missing")
    with channel_error(conn, ch, 404, f"NOT_FOUND - no queue '{q}' in vhost '/'"):
        ch.queue_declare(q, passive=True)


def test_passive_declare_of_missing_exchange_is_404(amqp, conn, ch):
    x = amqp.name("missing")
    with channel_error(conn, ch, 404, f"NOT_FOUND - no exchange '{x}' in vhost '/'"):
        ch.exchange_declare(x, passive=True)


def test_publish_to_missing_exchange_is_404(amqp, conn, ch):
    x = amqp.name("missing")
    with channel_error(conn, ch, 404, f"NOT_FOUND - no exchange '{x}' in vhost '/'"):
        ch.basic_publish(x, "rk", b"x")
        ch.queue_declare("", exclusive=True)  # the close arrives instead of declare-ok


@pytest.mark.parametrize("op", ["consume", "get", "purge", "bind-queue"])
def test_queue_operation_on_missing_queue_is_404(amqp, conn, ch, op):
    q = amqp.name("missing")
    with channel_error(conn, ch, 404, f"NOT_FOUND - no queue '{q}' in vhost '/'"):
        if op == "consume":
            ch.basic_consume(q, lambda *a: None)
        elif op == "get":
            ch.basic_get(q)
        elif op == "purge":
            ch.queue_purge(q)
        else:
            ch.queue_bind(q, "amq.direct", "k")


def test_bind_to_missing_exchange_is_404(amqp, conn, ch):
    q = amqp.queue(ch)
    x = amqp.name("missing")
    with channel_error(conn, ch, 404, f"NOT_FOUND - no exchange '{x}' in vhost '/'"):
        ch.queue_bind(q, x, "k")


@pytest.mark.parametrize("missing_end", ["source", "destination"])
def test_exchange_bind_with_missing_exchange_is_404(amqp, conn, ch, missing_end):
    x = amqp.name("missing")
    with channel_error(conn, ch, 404, f"NOT_FOUND - no exchange '{x}' in vhost '/'"):
        if missing_end == "source":
            ch.exchange_bind("amq.fanout", x, "k")
        else:
            ch.exchange_bind(x, "amq.direct", "k")


def test_deleting_missing_queue_or_exchange_succeeds(amqp, ch):
    assert ch.queue_delete(amqp.name("missing")).method.message_count == 0
    ch.exchange_delete(amqp.name("missing"))
    assert ch.is_open


# ---------------------------------------------- 406 PRECONDITION_FAILED


@pytest.mark.parametrize(
    "first,second,arg",
    [
        ({}, {"durable": True}, "durable"),
        ({"durable": True}, {}, "durable"),
        ({"auto_delete": True}, {}, "auto_delete"),
        ({"arguments": {"x-max-length": 5}}, {"arguments": {"x-max-length": 6}}, "x-max-length"),
        ({"arguments": {"x-max-length": 5}}, {}, "x-max-length"),
        ({}, {"arguments": {"x-message-ttl": 1000}}, "x-message-ttl"),
    ],
    ids=["durable-added", "durable-dropped", "auto_delete", "arg-changed", "arg-dropped", "arg-added"],
)
def test_inequivalent_queue_redeclare_is_406(amqp, conn, ch, first, second, arg):
    q = amqp.queue(ch, **first)
    with channel_error(
        conn, ch, 406, prefix=f"PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{q}' in vhost '/'"
    ):
        ch.queue_declare(q, **second)


def test_passive_declare_ignores_other_flags(amqp, ch):
    q = amqp.queue(ch)
    assert ch.queue_declare(q, passive=True, durable=True, auto_delete=True).method.queue == q


@pytest.mark.parametrize(
    "first,second,arg",
    [
        ({"exchange_type": "direct"}, {"exchange_type": "fanout"}, "type"),
        ({"exchange_type": "topic"}, {"exchange_type": "topic", "durable": True}, "durable"),
        ({"exchange_type": "topic", "auto_delete": True}, {"exchange_type": "topic"}, "auto_delete"),
    ],
    ids=["type", "durable", "auto_delete"],
)
def test_inequivalent_exchange_redeclare_is_406(amqp, conn, ch, first, second, arg):
    x = amqp.exchange(ch, **first)
    with channel_error(
        conn, ch, 406, prefix=f"PRECONDITION_FAILED - inequivalent arg '{arg}' for exchange '{x}' in vhost '/'"
    ):
        ch.exchange_declare(x, **second)


def test_redeclaring_predeclared_exchange_with_other_type_is_406(conn, ch):
    with channel_error(
        conn, ch, 406, prefix="PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'amq.direct' in vhost '/'"
    ):
        ch.exchange_declare("amq.direct", "fanout", durable=True)


def test_delete_if_empty_on_non_empty_queue_is_406(amqp, conn, ch):
    q = amqp.queue(ch)
    ch.basic_publish("", q, b"x")
    with channel_error(conn, ch, 406, f"PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty"):
        ch.queue_delete(q, if_empty=True)
    assert_counts(conn.channel(), q, messages=1)


def test_delete_if_unused_on_consumed_queue_is_406(amqp, conn, ch):
    q = amqp.queue(ch)
    conn.channel().basic_consume(q, lambda *a: None)
    with channel_error(conn, ch, 406, f"PRECONDITION_FAILED - queue '{q}' in vhost '/' in use"):
        ch.queue_delete(q, if_unused=True)


def test_exchange_delete_if_unused_with_bindings_is_406(amqp, conn, ch):
    x = amqp.exchange(ch, "direct")
    ch.queue_bind(amqp.queue(ch), x, "k")
    with channel_error(conn, ch, 406, f"PRECONDITION_FAILED - exchange '{x}' in vhost '/' in use"):
        ch.exchange_delete(x, if_unused=True)


def test_user_id_mismatch_is_406(amqp, conn, ch):
    q = amqp.queue(ch)
    ch.confirm_delivery()
    with channel_error(
        conn, ch, 406, "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'"
    ):
        ch.basic_publish("", q, b"x", pika.BasicProperties(user_id="mallory"))


# --------------------------------------------------------- 403 ACCESS_REFUSED


@pytest.mark.parametrize("kind", ["exchange", "queue"])
def test_reserved_amq_prefix_is_403(amqp, conn, ch, kind):
    name = "amq." + amqp.name(kind)
    with channel_error(
        conn, ch, 403, f"ACCESS_REFUSED - {kind} name '{name}' contains reserved prefix 'amq.*'"
    ):
        if kind == "exchange":
            ch.exchange_declare(name, "direct")
        else:
            ch.queue_declare(name)


def test_binding_to_default_exchange_is_403(amqp, conn, ch):
    q = amqp.queue(ch)
    with channel_error(conn, ch, 403, "ACCESS_REFUSED - operation not permitted on the default exchange"):
        ch.queue_bind(q, "", q)


def test_deleting_default_exchange_is_403(conn, ch):
    with channel_error(conn, ch, 403, "ACCESS_REFUSED - operation not permitted on the default exchange"):
        ch.exchange_delete("")


def test_deleting_predeclared_exchange_is_403(conn, ch):
    with channel_error(
        conn, ch, 403, "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed"
    ):
        ch.exchange_delete("amq.direct")


def test_publishing_to_internal_exchange_is_403(amqp, conn, ch):
    x = amqp.exchange(ch, "fanout", internal=True)
    ch.confirm_delivery()
    with channel_error(conn, ch, 403, f"ACCESS_REFUSED - cannot publish to internal exchange '{x}' in vhost '/'"):
        ch.basic_publish(x, "", b"x")


# --------------------------------------------------- connection-level errors


def test_prefetch_size_closes_connection_with_540(conn, ch):
    with connection_error(conn, 540, "NOT_IMPLEMENTED - prefetch_size!=0 (1)"):
        ch.basic_qos(prefetch_size=1)


def test_channel_flow_off_closes_connection_with_540(conn, ch):
    with connection_error(conn, 540, "NOT_IMPLEMENTED - active=false"):
        ch.flow(False)


def test_unknown_exchange_type_closes_connection_with_503(amqp, conn, ch):
    with connection_error(conn, 503, "COMMAND_INVALID - unknown exchange type 'no-such-type'"):
        ch.exchange_declare(amqp.name("x"), "no-such-type")


def _reply_in(err) -> tuple[int, str]:
    """pika wraps a close during the handshake in a Probable*Error with the text only."""
    m = re.search(r"\((\d+)\) '(.*)'", str(err))
    assert m, f"no reply code in {err!r}"
    return int(m.group(1)), m.group(2)


def test_unknown_vhost_is_refused_with_530(amqp):
    params = amqp.params(virtual_host="no-such-vhost")
    with pytest.raises(ProbableAccessDeniedError) as info:
        pika.BlockingConnection(params)
    code, text = _reply_in(info.value)
    assert (code, text) == (530, "NOT_ALLOWED - vhost no-such-vhost not found")


def test_bad_password_is_refused_with_403(amqp):
    params = amqp.params(credentials=pika.PlainCredentials("guest", "wrong-password"))
    with pytest.raises(ProbableAuthenticationError) as info:
        pika.BlockingConnection(params)
    code, text = _reply_in(info.value)
    assert code == 403
    assert text.startswith("ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN")


# ----------------------------------------------------------------- isolation


def test_channel_error_leaves_other_channels_and_connections_alone(amqp, conn, ch):
    q = amqp.queue(ch)
    sibling = conn.channel()
    other_conn = amqp.connect()
    other = other_conn.channel()
    with channel_error(conn, ch, 404):
        ch.queue_declare(amqp.name("missing"), passive=True)
    sibling.basic_publish("", q, b"sibling")
    other.basic_publish("", q, b"other")
    assert_counts(sibling, q, messages=2)
    # a new channel on the same connection works too (the two publishers' order is not defined)
    assert sorted(bodies(get_all(conn.channel(), q))) == [b"other", b"sibling"]


def test_connection_error_leaves_other_connections_alone(amqp, conn, ch):
    q = amqp.queue(ch)
    doomed = amqp.connect()
    doomed_ch = doomed.channel()
    with connection_error(doomed, 540):
        doomed_ch.basic_qos(prefetch_size=7)
    ch.basic_publish("", q, b"still fine")
    assert ch.basic_get(q, auto_ack=True)[2] == b"still fine"
