"""Bounded helpers shared by the pika tests."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Callable

import pytest
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker

# How long to wait for something that should happen, and how long to watch
# for something that should not.
WAIT = 5.0
QUIET = 0.3


@dataclass
class Delivery:
    method: object
    properties: object
    body: bytes

    @property
    def tag(self) -> int:
        return self.method.delivery_tag


def wait_for(conn, predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Process I/O until predicate() holds or the timeout passes."""
    deadline = time.monotonic() + timeout
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        conn.process_data_events(time_limit=min(0.05, remaining))
    return True


def settle(conn, duration: float = QUIET) -> None:
    """Process I/O for a while (to let anything that would arrive, arrive)."""
    deadline = time.monotonic() + duration
    while (remaining := deadline - time.monotonic()) > 0:
        conn.process_data_events(time_limit=min(0.05, remaining))


def start_consumer(ch, queue: str, sink: list, **kwargs) -> str:
    """basic.consume appending Delivery objects to sink; returns the consumer tag."""

    def on_message(_ch, method, properties, body):
        sink.append(Delivery(method, properties, body))

    return ch.basic_consume(queue, on_message, **kwargs)


def consume(conn, ch, queue: str, count: int, timeout: float = WAIT, **kwargs) -> tuple[str, list[Delivery]]:
    """Start a consumer and wait (bounded) for `count` deliveries."""
    got: list[Delivery] = []
    tag = start_consumer(ch, queue, got, **kwargs)
    assert wait_for(conn, lambda: len(got) >= count, timeout), (
        f"expected {count} deliveries from {queue!r} within {timeout}s, got {len(got)}"
    )
    return tag, got


def get_all(ch, queue: str, limit: int = 10_000) -> list[Delivery]:
    """basic.get with auto-ack until the queue is empty."""
    out = []
    for _ in range(limit):
        method, properties, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append(Delivery(method, properties, body))
    raise AssertionError(f"queue {queue!r} did not drain within {limit} gets")


def bodies(deliveries) -> list[bytes]:
    return [d.body for d in deliveries]


def ready_count(ch, queue: str) -> int:
    """The queue's ready-message count from a passive queue.declare."""
    return ch.queue_declare(queue, passive=True).method.message_count


def assert_counts(ch, queue: str, messages: int | None = None, consumers: int | None = None, timeout: float = WAIT):
    """Assert the counts of a passive queue.declare, polling (bounded) until they match.

    RabbitMQ's declare-ok counts lag behind publishes that were not confirmed
    (even on the same channel) and behind requeues on channel close, so a
    single read right after them is not reliable there.
    """
    deadline = time.monotonic() + timeout
    while True:
        ok = ch.queue_declare(queue, passive=True).method
        got = (
            ok.message_count if messages is not None else None,
            ok.consumer_count if consumers is not None else None,
        )
        if got == (messages, consumers):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"queue {queue!r}: expected messages={messages} consumers={consumers}, "
                f"still message_count={ok.message_count} consumer_count={ok.consumer_count} after {timeout}s"
            )
        ch.connection.sleep(0.02)


@contextlib.contextmanager
def channel_error(conn, ch, code: int, text: str | None = None, prefix: str | None = None):
    """Expect the broker to close `ch` (only) with `code`.

    `text` is matched exactly, `prefix` as a prefix of the reply text. The
    connection must stay open and usable.
    """
    with pytest.raises(ChannelClosedByBroker) as info:
        yield info
    err = info.value
    assert (err.reply_code, ch.is_closed) == (code, True), f"got {err!r}"
    if text is not None:
        assert err.reply_text == text
    if prefix is not None:
        assert err.reply_text.startswith(prefix), err.reply_text
    assert conn.is_open, "a channel error must not close the connection"
    probe = conn.channel()
    probe.close()


@contextlib.contextmanager
def connection_error(conn, code: int, text: str | None = None, prefix: str | None = None):
    """Expect the broker to close the whole connection with `code`."""
    with pytest.raises(ConnectionClosedByBroker) as info:
        yield info
    err = info.value
    assert err.reply_code == code, f"got {err!r}"
    if text is not None:
        assert err.reply_text == text
    if prefix is not None:
        assert err.reply_text.startswith(prefix), err.reply_text
    assert conn.is_closed


def wait_until_queue_gone(conn, queue: str, timeout: float = WAIT) -> ChannelClosedByBroker:
    """Poll passive declares (bounded) until the broker answers 404; return that error.

    Deleting an exclusive queue when its connection closes, or an auto-delete
    queue when its last consumer goes, may finish after the close-ok/cancel-ok.
    """
    deadline = time.monotonic() + timeout
    while True:
        probe = conn.channel()
        try:
            probe.queue_declare(queue, passive=True)
        except ChannelClosedByBroker as err:
            if err.reply_code == 404:
                assert conn.is_open
                return err
            raise
        probe.close()
        if time.monotonic() > deadline:
            raise AssertionError(f"queue {queue!r} still exists after {timeout}s")
        conn.sleep(0.02)
