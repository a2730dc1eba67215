"""Security with real `redis-server`s, workers and the real CLI (DESIGN §4, §5, §8).

- No pickle crosses the broker: the task message a submit leaves in the queue is JSON carrying only the run
  id, and a worker refuses a pickled message for a real run without deserializing it (its payload would
  create a directory) — then executes the same run when it arrives as JSON.
- Redis ACL users: the default user off, a named user with a password; a worker and the CLI complete a run
  with `redis://pbw:PASSWORD@…`, and the password appears in no output or log, at DEBUG either.
- rediss://: a throwaway CA and server certificate (openssl); a worker and `playbooks run` complete a run over
  TLS with the CA in the URL; a client trusting another CA is refused; the Celery broker connection verifies
  certificates like redis-py does (kombu's own default for rediss:// is not to).
- Local mode: a signing-key file other users can read is refused by `playbooks run`, naming it and the fix.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from cluster_support import SECRET_KEY, Cluster, playbooks_command, wait_until
from redis_fixtures import free_port

HELLO = '# Hello:AI\nSays hello.\n\n## Main\n\n```python\nawait Say("user", "hello, securely")\n```\n'
QUEUE = "pbw-celery:playbooks"  # Keys("pbw").celery_prefix + the default queue


# -- redis-servers of our own (ACL users, TLS) ------------------------------------------------------------


class OwnServer:
    """A redis-server with extra arguments; `client` is how tests reach it (a user, TLS)."""

    def __init__(self, workdir: Path, args: list[str], url: str, port: int) -> None:
        self.workdir, self.args, self.url, self.port = workdir, args, url, port
        self.log = workdir / f"redis-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.client = redis.Redis.from_url(url, socket_timeout=5)

    def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.skip("redis-server is not on PATH")
        self.process = subprocess.Popen(
            [executable, *self.args, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir), "--logfile", str(self.log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(redis.ConnectionError):
                if self.client.ping():
                    return
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.log.read_text(errors="replace") if self.log.exists() else ""
                if "TLS" in log and ("not supported" in log or "not compiled" in log.lower()):
                    pytest.skip(f"this redis-server has no TLS support: {log.strip().splitlines()[-1]}")
                raise RuntimeError(f"redis-server {self.args} did not start:\n{log}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Callable[..., OwnServer]]:
    started: list[OwnServer] = []

    def start(args: Callable[[int], list[str]], url: Callable[[int], str]) -> OwnServer:
        port = free_port()
        server = OwnServer(tmp_path, args(port), url(port), port)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


@contextlib.contextmanager
def cluster_on(root: Path, server: OwnServer) -> Iterator[Cluster]:
    """A Cluster (workers, CLI) pointed at `server`; every process killed at the end, its logs shown on failure."""
    root.mkdir()
    cluster = Cluster(root, server.url, server.client)
    try:
        yield cluster
    except BaseException:
        for worker in cluster.workers:
            print(f"===== {worker.name} log =====\n{worker.output()}")
        raise
    finally:
        cluster.teardown()


# -- no pickle crosses the broker -------------------------------------------------------------------------


def queued_messages(client: redis.Redis) -> list[dict]:
    return [json.loads(raw) for raw in client.lrange(QUEUE, 0, -1)]


def test_the_task_message_is_json_carrying_only_the_run_id(cluster: Cluster) -> None:
    cluster.write("hello.pb", HELLO)
    submitted = cluster.pb("run", "hello.pb", "--detach")
    assert submitted.returncode == 0, submitted
    run_id = submitted.stdout.strip()

    raw = cluster.client.lrange(QUEUE, 0, -1)
    assert len(raw) == 1
    assert b"python-serialize" not in raw[0] and b"pickle" not in raw[0]
    [message] = queued_messages(cluster.client)
    assert message["content-type"] == "application/json"
    assert message["properties"]["body_encoding"] == "base64"
    assert message["headers"]["task"] == "playbooks.execute_run"
    body = json.loads(base64.b64decode(message["body"]))
    args, kwargs, embed = body
    assert (args, kwargs) == ([run_id], {})
    assert embed == {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    assert b"hello, securely" not in raw[0]  # the program travels in the run record, not the message


class Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.marker,))


def test_a_worker_refuses_a_pickled_message_without_deserializing_it(cluster: Cluster) -> None:
    from playbooks_worker.cluster.heartbeat import STALE_QUEUED_S

    cluster.write("hello.pb", HELLO)
    submitted = cluster.pb("run", "hello.pb", "--detach")
    assert submitted.returncode == 0, submitted
    run_id = submitted.stdout.strip()
    queued_at = time.monotonic()
    cluster.client.delete(QUEUE)  # drop its JSON message: the pickled one below is all a worker will get
    marker = cluster.root / "PWNED"
    sent = cluster.python(
        "import os\n"
        "from playbooks_worker.cluster.app import TASK_NAME, app_for\n"
        "from playbooks_worker.config import load_settings\n"
        "class Exploit:\n"
        f"    def __reduce__(self): return (os.mkdir, ({str(marker)!r},))\n"
        "app_for(load_settings()).send_task(TASK_NAME, args=[" + repr(run_id) + ", Exploit()], "
        "queue='playbooks', serializer='pickle')\n")
    assert sent.returncode == 0, sent
    [message] = queued_messages(cluster.client)
    assert message["content-type"] == "application/x-python-serialize"

    worker = cluster.worker(concurrency=1, loglevel="INFO")
    wait_until(lambda: "Refusing to deserialize untrusted content of type pickle" in worker.output(), 15,
               f"the worker to refuse the pickled message:\n{worker.output()}")
    wait_until(cluster.queue_drained, 10, "the refused message to be dropped")
    time.sleep(0.5)  # time for a wrongly accepted task to start
    assert time.monotonic() - queued_at < STALE_QUEUED_S  # before the stale sweep would send a JSON copy
    assert not marker.exists()
    assert cluster.state(run_id) == "queued"
    assert cluster.events(run_id) == []
    assert "Task playbooks.execute_run" not in worker.output()  # never received as a task

    # The control: the same run, sent as JSON, runs on the same worker.
    resent = cluster.python("from playbooks_worker.cluster.app import enqueue_run\n"
                            "from playbooks_worker.config import load_settings\n"
                            f"enqueue_run({run_id!r}, load_settings())\n")
    assert resent.returncode == 0, resent
    cluster.wait_state(run_id, "succeeded")
    assert cluster.said(run_id) == ["hello, securely"]
    assert not marker.exists()


# -- Redis ACL users --------------------------------------------------------------------------------------

PASSWORD = "s3cret-acl-pw-7f3c"


def test_a_run_completes_as_an_acl_user_and_the_password_is_never_shown(
        tmp_path: Path, own_server: Callable[..., OwnServer]) -> None:
    server = own_server(
        lambda port: ["--port", str(port), "--user", "default", "off",
                      "--user", "pbw", "on", f">{PASSWORD}", "~*", "&*", "+@all"],
        lambda port: f"redis://pbw:{PASSWORD}@127.0.0.1:{port}/0")
    anonymous = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):  # the ACL is in force: no default user
        anonymous.ping()
    anonymous.close()

    with cluster_on(tmp_path / "acl", server) as cluster:
        worker = cluster.worker(concurrency=2, loglevel="DEBUG")
        cluster.write("hello.pb", HELLO)
        done = cluster.pb("run", "hello.pb")
        assert done.returncode == 0, done
        assert done.out == ["hello, securely"]
        assert f"on redis://pbw:***@127.0.0.1:{server.port}/0" in done.stderr
        run_id = done.stderr.split("📤 Submitted run ")[1].split()[0]
        listing = cluster.pb("runs", "--json")
        status = cluster.pb("status", run_id, "--json")
        wrong = cluster.pb("run", "hello.pb", env={"PLAYBOOKS_BROKER_URL":
                                                   f"redis://pbw:not-{PASSWORD}@127.0.0.1:{server.port}/0"})
        assert wrong.returncode == 2, wrong
        assert wrong.err[-2].startswith(f"❌ cannot reach Redis at redis://pbw:***@127.0.0.1:{server.port}/0: ")
        outputs = {"run": str(done), "runs": str(listing), "status": str(status), "wrong password": str(wrong),
                   "worker log": worker.output()}
    assert "connection" in outputs["worker log"].lower()  # DEBUG really logged the connection handling
    for name, text in outputs.items():
        assert PASSWORD not in text, f"the password appears in {name}"


# -- rediss:// --------------------------------------------------------------------------------------------


def make_certificates(directory: Path) -> dict[str, Path]:
    """A throwaway CA, a server certificate it signed for 127.0.0.1, and an unrelated CA."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not on PATH: cannot make a test certificate for rediss://")
    directory.mkdir()
    files = {name: directory / name for name in ("ca.key", "ca.crt", "server.key", "server.csr", "server.crt",
                                                 "ext.cnf", "other.key", "other.crt")}
    files["ext.cnf"].write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def run(*args: str | Path) -> None:
        subprocess.run([openssl, *map(str, args)], check=True, capture_output=True, timeout=30)

    for ca in ("ca", "other"):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", files[f"{ca}.key"], "-out",
            files[f"{ca}.crt"], "-days", "2", "-subj", f"/CN=playbooks-worker test {ca}")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", files["server.key"], "-out", files["server.csr"],
        "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", files["server.csr"], "-CA", files["ca.crt"], "-CAkey", files["ca.key"],
        "-CAcreateserial", "-out", files["server.crt"], "-days", "2", "-extfile", files["ext.cnf"])
    return files


def test_cluster_mode_over_rediss(tmp_path: Path, own_server: Callable[..., OwnServer]) -> None:
    certs = make_certificates(tmp_path / "tls")
    server = own_server(
        lambda port: ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(certs["server.crt"]),
                      "--tls-key-file", str(certs["server.key"]), "--tls-ca-cert-file", str(certs["ca.crt"]),
                      "--tls-auth-clients", "no"],
        lambda port: f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={certs['ca.crt']}")

    with cluster_on(tmp_path / "rediss", server) as cluster:
        cluster.worker(concurrency=2, loglevel="INFO")
        cluster.write("hello.pb", HELLO)
        done = cluster.pb("run", "hello.pb")
        assert done.returncode == 0, done
        assert done.out == ["hello, securely"]
        assert done.err[-1] == "Execution complete ✅"
        assert "insecure" not in cluster.workers[0].output()

        impostor = server.url.replace(str(certs["ca.crt"]), str(certs["other.crt"]))
        refused = cluster.pb("run", "hello.pb", env={"PLAYBOOKS_BROKER_URL": impostor})
        assert refused.returncode == 2, refused
        assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr
        assert "Traceback" not in refused.stderr


def test_the_celery_connection_verifies_rediss_certificates(tmp_path: Path,
                                                            own_server: Callable[..., OwnServer]) -> None:
    """kombu alone treats `rediss://host/0` as ssl_cert_reqs=none; the app asks it to verify, as redis-py does."""
    from kombu.exceptions import OperationalError

    from playbooks_worker.cluster.app import make_app
    from playbooks_worker.config import load_settings

    certs = make_certificates(tmp_path / "tls")
    server = own_server(
        lambda port: ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(certs["server.crt"]),
                      "--tls-key-file", str(certs["server.key"]), "--tls-ca-cert-file", str(certs["ca.crt"]),
                      "--tls-auth-clients", "no"],
        lambda port: f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={certs['ca.crt']}")

    def connect(url: str) -> None:
        app = make_app(load_settings(environ={"PLAYBOOKS_BROKER_URL": url}))
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1)
            assert connection.default_channel.client.ping()

    connect(server.url)  # the CA given in the URL: verified and trusted
    with pytest.raises(OperationalError, match="CERTIFICATE_VERIFY_FAILED"):
        connect(f"rediss://127.0.0.1:{server.port}/0")  # no CA given: the system's, which never signed this one
    connect(f"rediss://127.0.0.1:{server.port}/0?ssl_cert_reqs=none")  # opting out is still possible, explicitly


# -- local mode: the key file ----------------------------------------------------------------------------


def test_a_key_file_other_users_can_read_is_refused_by_playbooks_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAYBOOKS_")}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), HOME=str(tmp_path / "home"))
    (tmp_path / "playbooks.toml").write_text("[durability]\nenabled = true\n")
    (tmp_path / "hello.pb").write_text(HELLO)

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([*playbooks_command(), "run", "hello.pb"], cwd=tmp_path, env=env, text=True,
                              capture_output=True, stdin=subprocess.DEVNULL, timeout=30)

    first = run()
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "config" / "playbooks-worker" / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600  # made private on first use

    key_file.chmod(0o644)
    refused = run()
    assert refused.returncode == 2, refused.stderr
    assert refused.stdout == ""  # nothing ran
    assert refused.stderr.splitlines()[-1] == (
        f"❌ secret key file {key_file} has mode 0644: other users can read it and forge checkpoints. "
        f"Run: chmod 600 {key_file}")
    assert "Traceback" not in refused.stderr

    key_file.chmod(0o600)
    again = run()
    assert again.returncode == 0, again.stderr
    assert again.stdout == "hello, securely\n"


def test_the_secret_key_never_reaches_a_worker_log(cluster: Cluster) -> None:
    """The HMAC key is in every worker's environment; DEBUG logging must not print it."""
    worker = cluster.worker(concurrency=1, loglevel="DEBUG")
    cluster.write("hello.pb", HELLO)
    done = cluster.pb("run", "hello.pb")
    assert done.returncode == 0, done
    assert SECRET_KEY not in worker.output() + str(done)
