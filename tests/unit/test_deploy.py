"""deploy/ agrees with the code: every manifest parses, and each value that must match the runtime is
compared with the runtime's own value, read from the code (settings defaults, key names, the Celery app,
the CLI's options, exit codes, the heartbeat writer) — so a change on either side fails here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import socket
import threading
import time
import tomllib
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any
from urllib.parse import urlparse

import click
import fakeredis
import pytest
import yaml
from click.testing import CliRunner

from playbooks_cli.main import cli as cli_main
from playbooks_cli.run import run as run_command
from playbooks_cli.worker import worker as worker_command
from playbooks_worker.checkpoints.signing import load_secret_key
from playbooks_worker.cluster.app import _hand_off, make_app
from playbooks_worker.cluster.heartbeat import heartbeat
from playbooks_worker.cluster.keys import Keys
from playbooks_worker.config import ClusterSettings, LLMSettings, Settings, load_settings
from playbooks_worker.errors import ConfigError, InputUnavailable, ProgramError, SecretKeyError
from playbooks_worker.runner import RunOutcome

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"
SECRET_NAME = "PLAYBOOKS_SECRET_KEY"
BROKER_NAME = "PLAYBOOKS_BROKER_URL"
VALID_KEY = "a-valid-test-key-0123456789abcdef"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's PLAYBOOKS_* settings, playbooks.toml or home."""
    for name in [n for n in os.environ if n.startswith("PLAYBOOKS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.chdir(tmp_path)


# -- parsing ------------------------------------------------------------------------------------------


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def k8s(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml_docs(path)
             if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''} in deploy/k8s, found {len(found)}"
    return found[0]


def compose() -> dict[str, Any]:
    return yaml_docs(DEPLOY / "docker-compose.yml")[0]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        word, _, rest = text.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def instruction(name: str) -> str:
    values = [rest for word, rest in final_stage() if word == name]
    assert len(values) == 1, f"deploy/Dockerfile's final stage should have one {name}, has {len(values)}"
    return values[0]


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit: section -> key -> values (a key may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in (SYSTEMD / name).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{name}: not a key=value line: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(section: dict[str, list[str]], key: str) -> str:
    values = section.get(key, [])
    assert len(values) == 1, f"expected one {key}=, found {values}"
    return values[0]


def env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def seconds(duration: str | int) -> float:
    """Compose durations: 120, "120s", "2m", "1m30s"."""
    if isinstance(duration, int):
        return float(duration)
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert parts and any(parts.groups()), f"not a duration: {duration!r}"
    h, m, s = (int(g or 0) for g in parts.groups())
    return float(h * 3600 + m * 60 + s)


def load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def worker_params(args: list[str]) -> dict[str, Any]:
    """`playbooks worker ARGS` parsed by the real command: unknown options fail here."""
    assert args[0] == "worker", args
    with worker_command.make_context("worker", list(args[1:])) as ctx:
        return dict(ctx.params)


# -- what the code says -------------------------------------------------------------------------------


def expected_list_name(env: dict[str, str] | None = None) -> str:
    """The Celery queue's Redis list: the kombu prefix of the app the workers build + the queue they consume."""
    settings = load_settings(cwd=Path("/nonexistent"), environ={BROKER_NAME: "redis://h:6379/0", **(env or {})})
    app = make_app(settings)
    prefix = app.conf.broker_transport_options["global_keyprefix"]
    assert prefix == Keys(settings.cluster.key_prefix).celery_prefix
    return f"{prefix}{app.conf.task_default_queue}"


def test_the_queue_list_is_where_the_code_puts_it() -> None:
    defaults = ClusterSettings()
    assert expected_list_name() == Keys(defaults.key_prefix).celery_prefix + defaults.queue == "pbw-celery:playbooks"


# -- every file parses -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted([*K8S.glob("*.yaml"), DEPLOY / "docker-compose.yml"]),
                         ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    docs = yaml_docs(path)
    assert docs
    for doc in docs:
        assert isinstance(doc, dict)
        if path.parent == K8S:
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), doc


def test_the_deploy_files_exist() -> None:
    files = {str(p.relative_to(DEPLOY)) for p in DEPLOY.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert files >= {"Dockerfile", "docker-compose.yml", "README.md", "healthcheck.py",
                     "flower/pbw_celeryconfig.py", "k8s/secret.yaml", "k8s/configmap.yaml",
                     "k8s/worker-deployment.yaml", "k8s/keda-scaledobject.yaml", "k8s/hpa.yaml",
                     "systemd/playbooks-worker.service", "systemd/playbooks-run@.service", "systemd/README.md"}


# -- Kubernetes --------------------------------------------------------------------------------------


def deployment() -> dict[str, Any]:
    return k8s("Deployment", "playbooks-worker")


def worker_container() -> dict[str, Any]:
    containers = deployment()["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def container_env() -> dict[str, Any]:
    """The worker container's environment as KEDA and the worker see it: envFrom ConfigMaps, then env."""
    env: dict[str, Any] = {}
    for source in worker_container().get("envFrom", []):
        env.update(k8s("ConfigMap", source["configMapRef"]["name"])["data"])
    for item in worker_container().get("env", []):
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env


def test_keda_scales_the_workers_on_the_queue_they_consume() -> None:
    scaled = k8s("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment()["metadata"]["name"]
    assert scaled["spec"]["envSourceContainerName"] == worker_container()["name"]
    (trigger,) = [t for t in scaled["spec"]["triggers"] if t["type"] == "redis"]
    meta = trigger["metadata"]
    overrides = {k: v for k, v in container_env().items() if k.startswith("PLAYBOOKS_CLUSTER__")}
    assert meta["listName"] == expected_list_name(overrides)
    assert int(meta["listLength"]) >= 1
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]


def test_keda_reads_the_workers_redis() -> None:
    meta = next(t for t in k8s("ScaledObject")["spec"]["triggers"] if t["type"] == "redis")["metadata"]
    env = container_env()
    assert "address" not in meta, "take the address from the workers' environment (addressFromEnv)"
    address = env[meta["addressFromEnv"]]
    broker = urlparse(env[BROKER_NAME])
    assert address == f"{broker.hostname}:{broker.port or 6379}"
    assert meta["databaseIndex"] == (broker.path.strip("/") or "0")


def test_the_deployment_environment_is_what_the_worker_reads(tmp_path: Path) -> None:
    env = {k: v for k, v in container_env().items() if isinstance(v, str)}
    ref = container_env()[SECRET_NAME]["secretKeyRef"]
    secret = k8s("Secret", ref["name"])
    assert ref["key"] in secret["stringData"]
    settings = load_settings(cwd=tmp_path, environ=env)
    assert settings.cluster_mode and settings.cluster.broker_url == env[BROKER_NAME]
    assert load_secret_key(environ={SECRET_NAME: VALID_KEY}, key_file=tmp_path / "none", create=False)


def test_the_secret_placeholder_is_not_a_usable_key(tmp_path: Path) -> None:
    placeholder = k8s("Secret")["stringData"][SECRET_NAME]
    with pytest.raises(SecretKeyError):
        load_secret_key(environ={SECRET_NAME: placeholder}, key_file=tmp_path / "none", create=False)


def test_the_deployment_runs_the_worker_command_of_the_image() -> None:
    container = worker_container()
    assert "command" not in container, "keep the image's ENTRYPOINT (playbooks)"
    params = worker_params(container["args"])
    assert params["queues"] in (None, ClusterSettings().queue)
    assert params["pool"] == "threads"
    pod = deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == dockerfile_uid()
    assert "cpu" not in container["resources"].get("limits", {}), "CPU throttling delays the heartbeat"
    assert "livenessProbe" not in container and "preStop" not in str(container.get("lifecycle", ""))


def test_selectors_match_their_pods() -> None:
    pod_labels = deployment()["spec"]["template"]["metadata"]["labels"]
    for selector in (deployment()["spec"]["selector"], k8s("PodDisruptionBudget")["spec"]["selector"]):
        assert selector["matchLabels"].items() <= pod_labels.items()
    redis_pods = k8s("StatefulSet", "redis")["spec"]["template"]["metadata"]["labels"]
    assert k8s("Service", "redis")["spec"]["selector"].items() <= redis_pods.items()


def test_the_redis_service_is_the_one_in_the_broker_url() -> None:
    broker = urlparse(container_env()[BROKER_NAME])
    service = k8s("Service", broker.hostname)
    (port,) = service["spec"]["ports"]
    assert port["port"] == (broker.port or 6379)
    (redis,) = k8s("StatefulSet", "redis")["spec"]["template"]["spec"]["containers"]
    (container_port,) = redis["ports"]
    assert port["targetPort"] in (container_port["name"], container_port["containerPort"])
    assert container_port["containerPort"] == 6379  # redis-server's default: the args set no --port
    assert "--port" not in redis["args"]
    assert_durable_redis(redis["args"])


def test_hpa_is_the_cpu_alternative_on_the_same_deployment() -> None:
    hpa = k8s("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment()["metadata"]["name"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"


# -- stopping: one signal, one grace period everywhere -------------------------------------------------


def grace_periods() -> dict[str, float]:
    return {
        "k8s terminationGracePeriodSeconds": float(
            deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]),
        "systemd TimeoutStopSec": float(one(unit("playbooks-worker.service")["Service"], "TimeoutStopSec")),
        "compose stop_grace_period": seconds(compose()["services"]["worker"]["stop_grace_period"]),
    }


def test_one_grace_period_everywhere() -> None:
    periods = grace_periods()
    assert len(set(periods.values())) == 1, periods


def test_the_grace_period_outlasts_an_llm_call() -> None:
    # A handoff waits for the call in flight; the built-in bound on an LLM call is [llm] timeout_s per attempt.
    grace = next(iter(grace_periods().values()))
    assert grace >= 2 * LLMSettings().timeout_s
    assert grace > 10 * ClusterSettings().lease_seconds


def test_sigterm_everywhere() -> None:
    assert instruction("STOPSIGNAL") == "SIGTERM"
    assert compose()["services"]["worker"]["stop_signal"] == "SIGTERM"
    service = unit("playbooks-worker.service")["Service"]
    assert one(service, "KillSignal") == "SIGTERM"
    assert one(service, "KillMode") == "mixed"  # the signal goes to the worker, as Docker and the kubelet do


def test_sigterm_is_the_handoff() -> None:
    # Celery turns SIGTERM into a warm shutdown, whose worker_shutting_down signal starts the handoff.
    from celery import signals

    receivers = [ref() for _key, ref in signals.worker_shutting_down.receivers]
    assert _hand_off in receivers


# -- the environment variables the CLI reads ------------------------------------------------------------


def test_the_worker_needs_exactly_these_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    unreachable = "redis://127.0.0.1:1/0"
    result = runner.invoke(cli_main, ["worker"], env={SECRET_NAME: None, BROKER_NAME: unreachable})
    assert result.exit_code == 2 and SECRET_NAME in result.output
    result = runner.invoke(cli_main, ["worker"], env={SECRET_NAME: VALID_KEY, BROKER_NAME: None})
    assert result.exit_code == 2 and "no broker configured" in result.output
    result = runner.invoke(cli_main, ["worker"], env={SECRET_NAME: VALID_KEY, BROKER_NAME: unreachable})
    assert result.exit_code == 2 and "127.0.0.1:1" in result.output  # it read the broker URL, and tried it


def test_compose_gives_the_worker_its_variables(tmp_path: Path) -> None:
    worker = compose()["services"]["worker"]
    env = dict(worker["environment"])
    assert re.fullmatch(r"\$\{" + SECRET_NAME + r":\?.+\}", env[SECRET_NAME]), "required, from .env or the shell"
    env[SECRET_NAME] = VALID_KEY
    settings = load_settings(cwd=tmp_path, environ=env)
    assert settings.cluster_mode
    assert load_secret_key(environ=env, key_file=tmp_path / "none", create=False) == VALID_KEY.encode()


def test_systemd_worker_env_file(tmp_path: Path) -> None:
    service = unit("playbooks-worker.service")["Service"]
    assert one(service, "EnvironmentFile") == "/etc/playbooks/worker.env"
    env = env_file(SYSTEMD / "worker.env.example")
    assert {SECRET_NAME, BROKER_NAME} <= env.keys()
    with pytest.raises(SecretKeyError):  # the example's placeholder is refused
        load_secret_key(environ=env, key_file=tmp_path / "none", create=False)
    assert load_settings(cwd=tmp_path, environ=env).cluster_mode


# -- Docker --------------------------------------------------------------------------------------------


def dockerfile_uid() -> int:
    user = instruction("USER")
    assert user.isdigit(), "a numeric USER lets Kubernetes' runAsNonRoot verify it"
    return int(user)


def test_dockerfile() -> None:
    froms = [rest for word, rest in dockerfile() if word == "FROM"]
    assert all(rest.split()[0] == "python:3.11-slim" for rest in froms)
    assert dockerfile_uid() != 0
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    entrypoint = json.loads(instruction("ENTRYPOINT"))
    assert len(entrypoint) == 1 and entrypoint[0] in scripts
    cmd = json.loads(instruction("CMD"))
    assert worker_params(cmd)["concurrency"] == 50
    assert compose()["services"]["worker"]["command"] == cmd


def test_dockerfile_copies_every_package_and_the_health_check() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    copied = {Path(part).name for word, rest in dockerfile() if word == "COPY" and "--from" not in rest
              for part in rest.split()[:-1]}
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()
                and any(p.match(pattern) for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"])}
    assert packages and packages <= copied
    assert {"pyproject.toml", project["project"]["readme"], "healthcheck.py"} <= copied
    health = json.loads(instruction("HEALTHCHECK").split("CMD", 1)[1])
    copy_target = next(rest.split()[-1] for word, rest in dockerfile() if word == "COPY" and "healthcheck.py" in rest)
    assert health[-1] == copy_target


def test_dockerfile_installs_the_redis_transport_dependencies() -> None:
    # kombu's Redis transport imports `packaging`, which only the kombu[redis] extra declares.
    install = next(rest for word, rest in final_stage() if word == "RUN" and "pip install" in rest)
    assert "kombu[redis]" in install or "celery[redis]" in install


# -- compose ---------------------------------------------------------------------------------------------


def assert_durable_redis(args: list[str]) -> None:
    text = " ".join(str(a) for a in args)
    assert "--appendonly yes" in text
    assert "--appendfsync always" in text
    assert "--maxmemory-policy noeviction" in text


def test_compose_services() -> None:
    services = compose()["services"]
    assert_durable_redis(services["redis"]["command"])
    worker = services["worker"]
    assert worker["deploy"]["replicas"] == 2
    assert (DEPLOY / worker["build"]["context"] / worker["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    broker = urlparse(worker["environment"][BROKER_NAME])
    assert broker.hostname == "redis" and (broker.port or 6379) == 6379
    assert "--port" not in " ".join(services["redis"]["command"])


def test_flower_uses_the_workers_broker_port_and_key_prefix() -> None:
    services = compose()["services"]
    flower = services["flower"]
    options = dict(arg.split("=", 1) for arg in flower["command"] if arg.startswith("--"))
    assert options["--broker"] == services["worker"]["environment"][BROKER_NAME]
    published = {str(p).rsplit(":", 1)[-1] for p in flower["ports"]}
    assert published == {options["--port"]} == {"5555"}
    # --config names a module on PYTHONPATH: deploy/flower/<module>.py, mounted there.
    mount_source, mount_target = flower["volumes"][0].split(":")[:2]
    assert flower["environment"]["PYTHONPATH"] == mount_target
    module = DEPLOY / mount_source / f"{options['--config']}.py"
    config = load_module(module, "pbw_celeryconfig_under_test")
    app = make_app(Settings(cluster=ClusterSettings(broker_url="redis://redis:6379/0")))
    assert config.broker_transport_options["global_keyprefix"] == \
        app.conf.broker_transport_options["global_keyprefix"] == Keys(ClusterSettings().key_prefix).celery_prefix


# -- systemd -------------------------------------------------------------------------------------------


def exec_args(section: dict[str, list[str]]) -> list[str]:
    argv = shlex.split(one(section, "ExecStart"))
    assert argv[0] == "/usr/local/bin/playbooks"
    return argv[1:]


def test_systemd_worker_unit() -> None:
    service = unit("playbooks-worker.service")["Service"]
    assert one(service, "Type") == "simple"
    assert one(service, "Restart") == "always"
    params = worker_params(exec_args(service))
    assert params["queues"] in (None, ClusterSettings().queue)


def test_systemd_run_unit_resumes_and_knows_the_exit_codes() -> None:
    sections = unit("playbooks-run@.service")
    service = sections["Service"]
    argv = exec_args(service)
    assert argv[0] == "run" and argv[1] in ("%i", "%I")
    with run_command.make_context("run", argv[1:]) as ctx:
        assert ctx.params["resume"] == ""  # --resume without RUN_ID: the newest unfinished run
    assert one(service, "Restart") == "on-failure"
    no_restart = {int(code) for code in one(service, "RestartPreventExitStatus").split()}
    assert no_restart == {ConfigError.exit_code, ProgramError.exit_code, InputUnavailable.exit_code} == {2, 3}
    interrupted = RunOutcome.exit_code.fget(SimpleNamespace(status="interrupted"))  # type: ignore[attr-defined]
    assert one(service, "KillSignal") == "SIGINT"  # what the CLI turns into a resumable stop
    assert one(service, "SuccessExitStatus").split() == [str(interrupted)]
    assert one(service, "WorkingDirectory")
    assert sections["Unit"]["ConditionPathExists"] == ["!/var/lib/playbooks-run/%i.done"]
    assert "/var/lib/playbooks-run/%i.done" in one(service, "ExecStopPost")
    assert one(service, "StateDirectory") == "playbooks-run"


# -- Procfile ------------------------------------------------------------------------------------------


def test_procfile_runs_a_worker_on_the_default_queue() -> None:
    lines = [line for line in (ROOT / "Procfile").read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    (line,) = [line for line in lines if line.startswith("worker:")]
    command = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", line.split(":", 1)[1])  # ${VAR:-default} -> default
    argv = shlex.split(command)
    assert argv[0] == "exec", "honcho runs lines through sh -c: without exec the shell, not the worker, gets SIGTERM"
    assert argv[1] == "playbooks"
    params = worker_params(argv[2:])
    assert params["queues"] in (None, ClusterSettings().queue)


# -- the health check ------------------------------------------------------------------------------------


@pytest.fixture
def health() -> ModuleType:
    return load_module(DEPLOY / "healthcheck.py", "pbw_healthcheck_under_test")


def beat(client: fakeredis.FakeRedis, *, draining: bool = False) -> None:
    """The real heartbeat writer, for a worker process of this host."""
    event = threading.Event()
    if draining:
        event.set()
    executor = SimpleNamespace(
        store=SimpleNamespace(owner=f"{socket.gethostname()}:4242", owned={}, renew_all=lambda: None),
        client=client, keys=Keys(ClusterSettings().key_prefix), draining=event)
    heartbeat(executor)  # type: ignore[arg-type]


def test_health_check_passes_on_a_fresh_heartbeat(health: ModuleType) -> None:
    client = fakeredis.FakeRedis()
    prefix, lease, host = ClusterSettings().key_prefix, ClusterSettings().lease_seconds, socket.gethostname()
    assert health.check(client, prefix, lease, host, time.time()) is not None  # no heartbeat yet
    beat(client)
    assert health.check(client, prefix, lease, host, time.time()) is None
    assert health.check(client, prefix, lease, "another-host", time.time()) is not None
    assert "old" in health.check(client, prefix, lease, host, time.time() + 3 * lease + 1)


def test_health_check_fails_while_draining(health: ModuleType) -> None:
    client = fakeredis.FakeRedis()
    beat(client, draining=True)
    settings = ClusterSettings()
    assert health.check(client, settings.key_prefix, settings.lease_seconds, socket.gethostname(), time.time())


def test_health_check_reports_an_unreachable_redis(health: ModuleType, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(BROKER_NAME, "redis://:hunter2@127.0.0.1:1/0")
    assert health.main() == 1
    err = capsys.readouterr().err
    assert "cannot reach Redis" in err and "hunter2" not in err


def test_click_is_the_cli_parser() -> None:
    # worker_params relies on make_context rejecting unknown options; keep that true.
    with pytest.raises(click.NoSuchOption):
        worker_params(["worker", "--no-such-option"])
