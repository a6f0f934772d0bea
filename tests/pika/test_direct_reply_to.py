"""Direct reply-to: RPC through the ``amq.rabbitmq.reply-to`` pseudo-queue
with pika, as RabbitMQ documents it (https://www.rabbitmq.com/direct-reply-to.html).

The client consumes ``amq.rabbitmq.reply-to`` in no-ack mode and publishes
its request with ``reply_to = "amq.rabbitmq.reply-to"``; the server sees a
per-channel name ``amq.rabbitmq.reply-to.<token>`` instead and publishes the
reply to it through the default exchange.
"""

import time

import pika

from support import WAIT, channel_error

REPLY_TO = "amq.rabbitmq.reply-to"


def pump(connections, predicate, timeout: float = WAIT) -> bool:
    """Process I/O on several blocking connections until predicate() holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        for conn in connections:
            conn.process_data_events(time_limit=0.01)
    return True


def test_rpc_round_trip_through_direct_reply_to(amqp):
    # The server: consumes requests and answers to whatever reply_to says.
    server_conn = amqp.connect()
    server = server_conn.channel()
    requests = amqp.queue(server)
    seen_reply_to = []

    def on_request(ch, method, props, body):
        seen_reply_to.append(props.reply_to)
        ch.basic_publish(
            "",
            props.reply_to,
            b"reply to " + body,
            pika.BasicProperties(correlation_id=props.correlation_id),
        )

    server.basic_consume(requests, on_request, auto_ack=True)

    # The client: a no-ack consumer on the pseudo-queue, then the requests.
    client_conn = amqp.connect()
    client = client_conn.channel()
    replies = []
    client.basic_consume(
        REPLY_TO, lambda ch, method, props, body: replies.append((method, props, body)), auto_ack=True
    )
    for n in (1, 2):
        client.basic_publish(
            "",
            requests,
            f"request {n}".encode(),
            pika.BasicProperties(reply_to=REPLY_TO, correlation_id=f"call-{n}"),
        )
        assert pump([server_conn, client_conn], lambda: len(replies) == n), f"no reply to request {n}"

    # The server saw a per-channel name, not the pseudo-queue's own name ...
    assert len(seen_reply_to) == 2
    name = seen_reply_to[0]
    assert name.startswith(REPLY_TO + ".") and len(name) > len(REPLY_TO) + 1, name
    # ... the same one for both requests from the same channel.
    assert seen_reply_to[1] == name
    # The replies came back in order, through the default exchange.
    for n, (method, props, body) in enumerate(replies, start=1):
        assert body == f"reply to request {n}".encode()
        assert props.correlation_id == f"call-{n}"
        assert (method.exchange, method.routing_key) == ("", name)


def test_the_reply_consumer_must_be_no_ack(conn, ch):
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - reply consumer cannot acknowledge"):
        ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=False)


def test_a_request_needs_a_reply_consumer_on_its_channel(amqp, conn, ch):
    q = amqp.queue(ch)
    with channel_error(conn, ch, 406, "PRECONDITION_FAILED - fast reply consumer does not exist"):
        ch.basic_publish("", q, b"request", pika.BasicProperties(reply_to=REPLY_TO))
        ch.queue_declare("", exclusive=True)  # the close arrives instead of declare-ok
