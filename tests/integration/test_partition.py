"""A network partition between one worker and Redis: it loses its lease, another worker takes the run over,
and when the partition heals the cut-off worker is fenced — it writes nothing more.

The partition is a TCP proxy in the test process between that one worker and Redis (loopback only; no
network namespaces needed): while it is cut, the proxy forwards nothing either way and holds new
connections, as a partitioned network does (TCP keeps the bytes; nothing fails before the socket timeout).
When it heals, whatever the cut-off worker sent meanwhile — a heartbeat, a checkpoint of the step it was
running — reaches Redis late: exactly what fencing must refuse.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
from cluster_support import Cluster, assert_completed_once, slow_output, slow_program, wait_until

LEASE_S = 2.0
STEPS = 10
DELAY_S = 0.4

pytestmark = pytest.mark.timeout(120)


class PartitionProxy:
    """127.0.0.1:port -> Redis; `cut()` stops all forwarding (held, not dropped), `heal()` resumes it."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.open = threading.Event()
        self.open.set()
        self.closed = False
        self.sockets: list[socket.socket] = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(conn)
            threading.Thread(target=self._connect, args=(conn,), daemon=True).start()

    def _connect(self, conn: socket.socket) -> None:
        self.open.wait()  # a connection made during the cut hangs, as on a partitioned network
        if self.closed:
            return
        try:
            up = socket.create_connection(self.upstream, timeout=5)
            up.settimeout(None)
        except OSError:
            conn.close()
            return
        self.sockets.append(up)
        threading.Thread(target=self._pump, args=(conn, up), daemon=True).start()
        threading.Thread(target=self._pump, args=(up, conn), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while not self.open.wait(0.1):  # cut: hold the bytes (TCP would retransmit them later)
                    if self.closed:
                        return
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        self.open.clear()

    def heal(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.closed = True
        self.open.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


def running_events(cluster: Cluster, run_id: str) -> list[tuple[int, int]]:
    """(pid, epoch) of each "Running on worker host:pid (epoch N)" status event, in order."""
    found = []
    for event in cluster.events(run_id):
        match = re.search(r"Running on worker \S+:(\d+) \(epoch (\d+)\)", str(event.get("text", "")))
        if match:
            found.append((int(match.group(1)), int(match.group(2))))
    return found


def test_a_partitioned_worker_loses_its_run_and_is_fenced_when_it_comes_back(cluster: Cluster) -> None:
    url = urlsplit(cluster.env["PLAYBOOKS_BROKER_URL"])
    proxy = PartitionProxy((url.hostname or "127.0.0.1", url.port or 6379))
    try:
        proxied = f"redis://127.0.0.1:{proxy.port}{url.path or '/0'}"
        victim = cluster.worker(concurrency=2, lease_seconds=LEASE_S, loglevel="INFO",
                                env={"PLAYBOOKS_BROKER_URL": proxied})
        cluster.write("slow.pb", slow_program(cluster.effects_log, steps=STEPS, delay_s=DELAY_S))
        follower = cluster.follow("run", "slow.pb")
        run_id = follower.run_id()
        pid, epoch = cluster.holder(run_id)
        assert pid == victim.pid  # the only worker so far
        cluster.wait_started(2)
        other = cluster.worker(concurrency=2, lease_seconds=LEASE_S, loglevel="INFO")

        proxy.cut()
        # Cut off for at least lease_seconds + 1 s, and until the other worker holds the run.
        time.sleep(LEASE_S + 1)
        _new_pid, new_epoch = wait_until(lambda: (h := cluster.lease(run_id)) and h[0] == other.pid and h, 20,
                                        "the other worker to take the run over")
        takeover_at = time.monotonic()
        inflight = max(e.n for e in cluster.effects("Work") if e.pid == victim.pid and e.phase == "start" and e.n)
        time.sleep(0.5)
        proxy.heal()

        result = follower.wait(60)
        assert result.returncode == 0, result
        assert result.out == slow_output(STEPS)
        assert_completed_once(cluster, run_id, steps=STEPS, inflight=inflight)
        assert new_epoch > epoch

        # The stream names each owner with its epoch: the victim's, then the other's, higher; nobody after.
        owners = running_events(cluster, run_id)
        assert owners[0] == (victim.pid, epoch), owners
        assert owners[-1] == (other.pid, new_epoch), owners
        assert all(p == other.pid for p, _ in owners[owners.index((other.pid, new_epoch)):]), owners

        # The cut-off worker did nothing after the takeover: no tool started, and every step from its
        # in-flight one on (the one whose checkpoint it may have sent into the partition) ran on the other.
        wait_until(lambda: "fenced" in victim.output() or "another worker owns it" in victim.output(), 20,
                   "the cut-off worker's task to end fenced")
        late = [e for e in cluster.effects("Work") if e.pid == victim.pid and e.phase == "start" and e.t > takeover_at]
        assert not late, late
        assert all(e.pid == other.pid for e in cluster.effects("Work") if e.t > takeover_at), cluster.effects()
        assert victim.alive() and other.alive()
    finally:
        proxy.close()
