"""The memory alarm through pika (issue 8): a broker whose resident memory
is above its ``--memory-limit`` tells a publishing connection
``connection.blocked`` and stops reading it; consumers go on."""

from __future__ import annotations

import os
import time
import uuid

import pika
import pytest

from conftest import connection_parameters, start_warren


def test_a_publisher_is_told_it_is_blocked_and_consumers_go_on(tmp_path):
    if os.environ.get("WARREN_AMQP_URL"):
        pytest.skip("starts a broker of its own with a memory limit")
    # A limit of one byte: the alarm is on from the start.
    warren = start_warren(tmp_path, "--memory-limit", "1")
    url = f"amqp://guest:guest@127.0.0.1:{warren.port}/%2F"
    try:
        publisher = pika.BlockingConnection(connection_parameters(url))
        reasons: list[str] = []
        publisher.add_on_connection_blocked_callback(
            lambda _conn, frame: reasons.append(frame.method.reason)
        )
        queue = "pika-alarm-" + uuid.uuid4().hex[:8]
        ch = publisher.channel()
        ch.queue_declare(queue)
        ch.basic_publish("", queue, b"first")
        deadline = time.monotonic() + 10
        while not reasons and time.monotonic() < deadline:
            publisher.process_data_events(time_limit=0.1)
        assert reasons == ["low on memory"]

        consumer = pika.BlockingConnection(connection_parameters(url))
        method, _props, body = consumer.channel().basic_get(queue, auto_ack=True)
        assert method is not None and body == b"first"
        consumer.close()
    finally:
        # The blocked connection is not read, so it cannot close itself:
        # the broker's shutdown closes it (and must still exit cleanly).
        warren.stop()
