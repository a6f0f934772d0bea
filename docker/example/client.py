"""A small pika client for the compose example: publish a few messages to
the broker at host `warren`, consume them back, and exit 0 if all arrived.

AMQP_URL overrides the broker address (default amqp://guest:guest@warren:5672/%2F).
"""

import os
import sys
import time

import pika

URL = os.environ.get("AMQP_URL", "amqp://guest:guest@warren:5672/%2F")
QUEUE = "compose-example"
COUNT = 5


def connect(deadline_s: float = 60.0) -> pika.BlockingConnection:
    """The broker container may still be starting: retry for a while."""
    params = pika.URLParameters(URL)
    params.socket_timeout = 5
    params.blocked_connection_timeout = 10
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return pika.BlockingConnection(params)
        except pika.exceptions.AMQPConnectionError as err:
            if time.monotonic() > deadline:
                raise
            print(f"broker not ready ({err!r}), retrying", flush=True)
            time.sleep(1)


def main() -> int:
    conn = connect()
    ch = conn.channel()
    ch.queue_declare(QUEUE, durable=True)
    ch.queue_purge(QUEUE)  # start clean if an earlier run was interrupted
    ch.confirm_delivery()
    sent = [f"hello {i}" for i in range(COUNT)]
    for body in sent:
        ch.basic_publish("", QUEUE, body.encode(), pika.BasicProperties(delivery_mode=2))
        print(f"published {body!r} (confirmed)", flush=True)

    received = []
    for method, _props, body in ch.consume(QUEUE, inactivity_timeout=10):
        if method is None:
            break
        received.append(body.decode())
        ch.basic_ack(method.delivery_tag)
        print(f"consumed {body.decode()!r}", flush=True)
        if len(received) == COUNT:
            break
    ch.cancel()
    conn.close()

    if received != sent:
        print(f"expected {sent}, got {received}", file=sys.stderr)
        return 1
    print(f"ok: {COUNT} messages round-tripped through {URL}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
