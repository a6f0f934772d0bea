"""Fixtures for the pika suite.

The broker under test is either the one named by ``WARREN_AMQP_URL`` (for
example the reference RabbitMQ:
``WARREN_AMQP_URL=amqp://guest:guest@127.0.0.1:5673/%2F tests/pika/run.sh``)
or, when that is unset, the ``warren`` binary (``WARREN_BIN``, default
``target/debug/warren`` under the repository root) started here on a free
loopback port and stopped with SIGTERM at the end of the session.

Every test gets its own connection(s) and uniquely named queues/exchanges,
so the suite can run against a shared broker.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pika
import pytest

# Detailed assertion messages inside the shared helpers too.
pytest.register_assert_rewrite("support")

REPO_ROOT = Path(__file__).resolve().parents[2]

# Bounds on everything that could block on a misbehaving broker.
SOCKET_TIMEOUT = 5.0  # connect and each socket operation
STACK_TIMEOUT = 10.0  # the whole connection handshake
BLOCKED_CONNECTION_TIMEOUT = 10.0  # connection.blocked without unblocked
STARTUP_DEADLINE = 30.0  # until the broker's port accepts connections
SHUTDOWN_DEADLINE = 10.0  # from SIGTERM until the broker has exited


def connection_parameters(url: str, **overrides) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.socket_timeout = SOCKET_TIMEOUT
    params.stack_timeout = STACK_TIMEOUT
    params.blocked_connection_timeout = BLOCKED_CONNECTION_TIMEOUT
    params.connection_attempts = 1
    params.retry_delay = 0
    for key, value in overrides.items():
        setattr(params, key, value)
    return params


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: get SIGTERM if pytest dies, so no broker is left behind (Linux only)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except Exception:
        pass


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"(cannot read {path}: {e})"
    return "\n".join(text.splitlines()[-lines:])


class _WarrenProcess:
    """The warren binary, started for this session."""

    def __init__(self, binary: Path, workdir: Path, extra_args: tuple[str, ...] = ()):
        self.port = _free_port()
        self.log_path = workdir / "warren.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(binary), "--listen", f"127.0.0.1:{self.port}", "--data-dir", "none", *extra_args],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )

    def describe_failure(self, what: str) -> str:
        return f"{what}\n--- last lines of {self.log_path} ---\n{_tail(self.log_path)}"

    def wait_until_listening(self) -> None:
        deadline = time.monotonic() + STARTUP_DEADLINE
        while True:
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail(self.describe_failure(f"warren exited with {rc} during startup"))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(
                    self.describe_failure(
                        f"warren did not accept TCP connections on port {self.port} "
                        f"within {STARTUP_DEADLINE:.0f}s"
                    )
                )
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=SHUTDOWN_DEADLINE)
        self._log.close()

    def stop(self) -> None:
        """SIGTERM, and insist on a clean exit (status 0) within the deadline."""
        rc = self.proc.poll()
        if rc is not None:
            self._log.close()
            pytest.fail(self.describe_failure(f"warren died during the run (exit status {rc})"))
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=SHUTDOWN_DEADLINE)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(
                self.describe_failure(f"warren did not exit within {SHUTDOWN_DEADLINE:.0f}s of SIGTERM")
            )
        self._log.close()
        assert rc == 0, self.describe_failure(f"warren exited with status {rc} after SIGTERM")


def warren_binary() -> Path:
    binary = Path(os.environ.get("WARREN_BIN", "target/debug/warren"))
    if not binary.is_absolute():
        binary = REPO_ROOT / binary
    if not binary.is_file():
        pytest.fail(
            f"broker binary {binary} not found: build it (cargo build -p warren-broker) "
            "or set WARREN_BIN, or point WARREN_AMQP_URL at a running broker"
        )
    return binary


def start_warren(workdir: Path, *extra_args: str) -> _WarrenProcess:
    """A warren process of its own (for tests that need a configuration)."""
    warren = _WarrenProcess(warren_binary(), workdir, extra_args)
    try:
        warren.wait_until_listening()
    except BaseException:
        warren.kill()
        raise
    return warren


@pytest.fixture(scope="session")
def warren_process(tmp_path_factory):
    """The warren process started for this session, or None for an external broker."""
    if os.environ.get("WARREN_AMQP_URL"):
        yield None
        return
    warren = _WarrenProcess(warren_binary(), tmp_path_factory.mktemp("warren"))
    try:
        warren.wait_until_listening()
    except BaseException:
        warren.kill()
        raise
    yield warren
    warren.stop()


@pytest.fixture(scope="session")
def amqp_url(warren_process) -> str:
    if warren_process is None:
        return os.environ["WARREN_AMQP_URL"]
    return f"amqp://guest:guest@127.0.0.1:{warren_process.port}/%2F"


@pytest.fixture(autouse=True)
def _broker_still_running(warren_process):
    """Name the culprit when the broker dies in the middle of a test."""
    yield
    if warren_process is not None and warren_process.proc.poll() is not None:
        pytest.fail(
            warren_process.describe_failure(
                f"warren exited with status {warren_process.proc.returncode} during this test"
            )
        )


class Amqp:
    """Per-test helper: tracked connections and unique, cleaned-up names."""

    def __init__(self, url: str, test_name: str):
        self.url = url
        self._prefix = "pika-" + test_name[:60]
        self._connections: list[pika.BlockingConnection] = []
        self._queues: list[str] = []
        self._exchanges: list[str] = []

    def params(self, **overrides) -> pika.URLParameters:
        return connection_parameters(self.url, **overrides)

    def connect(self, **overrides) -> pika.BlockingConnection:
        conn = pika.BlockingConnection(self.params(**overrides))
        self._connections.append(conn)
        return conn

    def name(self, what: str = "q") -> str:
        return f"{self._prefix}-{what}-{uuid.uuid4().hex[:12]}"

    def queue(self, ch, name: str | None = None, **kwargs) -> str:
        """Declare a uniquely named queue (deleted after the test unless exclusive)."""
        name = name or self.name("q")
        ch.queue_declare(name, **kwargs)
        if not kwargs.get("exclusive"):
            self._queues.append(name)
        return name

    def exchange(self, ch, exchange_type: str = "direct", name: str | None = None, **kwargs) -> str:
        """Declare a uniquely named exchange (deleted after the test)."""
        name = name or self.name("x")
        ch.exchange_declare(name, exchange_type, **kwargs)
        self._exchanges.append(name)
        return name

    def track_queue(self, name: str) -> None:
        self._queues.append(name)

    def close(self) -> None:
        for conn in self._connections:
            try:
                if conn.is_open:
                    conn.close()
            except Exception:
                pass
        if not (self._queues or self._exchanges):
            return
        try:
            conn = pika.BlockingConnection(self.params())
        except Exception:
            return
        try:
            for kind, names in (("queue", self._queues), ("exchange", self._exchanges)):
                for name in names:
                    try:
                        ch = conn.channel()
                        if kind == "queue":
                            ch.queue_delete(name)
                        else:
                            ch.exchange_delete(name)
                        ch.close()
                    except Exception:
                        # e.g. an exclusive queue of a connection that is gone
                        if not conn.is_open:
                            return
        finally:
            if conn.is_open:
                conn.close()


@pytest.fixture
def amqp(amqp_url, request):
    helper = Amqp(amqp_url, request.node.originalname)
    yield helper
    helper.close()


@pytest.fixture
def conn(amqp) -> pika.BlockingConnection:
    return amqp.connect()


@pytest.fixture
def ch(conn):
    return conn.channel()
