"""A real `redis-server` for tests, shared by the checkpoint contract suite and the cluster integration tests.

Import it from a conftest (the folder above each test folder is put on `sys.path` there):

    from redis_fixtures import redis_server  # noqa: F401  (a fixture)

The server is started once per session on a free port, without persistence, and each test that asks for
`redis_server` gets it empty (FLUSHALL before the test). `kill()` and `restart()` are there for tests that
take Redis away from running workers.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One `redis-server` process on 127.0.0.1."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self, timeout_s: float = 10.0) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.skip("redis-server is not on PATH")
        self.log = self.workdir / f"redis-{self.port}.log"
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.client.ping():
                    return
            except redis.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start:\n{self.log.read_text()}")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: the server vanishes as on a crash (the data goes with it: no persistence)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.client.connection_pool.disconnect()

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            # Sent raw: redis-py retries a command whose connection closes, and SHUTDOWN always closes it.
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(b"SHUTDOWN NOSAVE\r\n")
                sock.recv(64)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.client.close()


@pytest.fixture(scope="session")
def redis_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(redis_server_session: RedisServer) -> RedisServer:
    """The session's server, empty, and running again if a test killed it."""
    server = redis_server_session
    if server.process is None or server.process.poll() is not None:
        server.start()
    server.client.flushall()
    return server
