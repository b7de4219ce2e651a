"""Read the deployment files under deploy/ and check them against the code.

Each check is a function from parsed documents to a list of problems (empty: fine), so the tests
run it on the real files and on small synthetic manifests that must fail.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.config import PROJECT_ROOT, Settings

DEPLOY = PROJECT_ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose.yml"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
IMAGE = "payments-support-bot"  # the project's image: compose's default and the k8s name
SECRET_EXAMPLE = "secret.example.yaml"  # the Secret's keys; not applied by kustomize

# The service an image container runs (its first argument, deploy/entrypoint.sh) and its health
# endpoint (bot/web/app.py /healthz, Rasa's /, rasa_sdk's /health).
HEALTH_PATHS = {"gateway": "/healthz", "rasa": "/", "actions": "/health"}
ROLES = (*HEALTH_PATHS, "analytics")

# Settings announced by branches not merged yet. The deployment may set them; once the code
# reads one, `test_pending_settings_are_not_in_the_code_yet` fails: delete it here.
PENDING_SETTINGS: dict[str, str] = {}

# Redis is reached through REDIS_URL or through Sentinel (the sentinels, the master set and the
# password: the product's Redis always has one, and REDIS_URL's is not used with Sentinel).
REDIS = (
    frozenset({"REDIS_URL"}),
    frozenset({"REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_PASSWORD"}),
)
# What each service cannot run without: each entry is a set of alternatives, one of which
# must be fully set.
REQUIRED: dict[str, list[tuple[frozenset[str], ...]]] = {
    "gateway": [
        REDIS,
        (frozenset({"RASA_URL"}),),
        (frozenset({"EVENTS_DB_URL"}),),
        (frozenset({"ACTION_SERVER_URL"}),),  # /healthz and the bot-unavailable path probe it
    ],
    "rasa": [REDIS, (frozenset({"EVENTS_DB_URL"}),), (frozenset({"ACTION_SERVER_URL"}),)],
    "actions": [REDIS],
    "analytics": [REDIS, (frozenset({"EVENTS_DB_URL"}),)],
}
# Shared secrets: required for these services as soon as bot/config.py has the setting.
SECRETS_FOR = {
    "ACTION_SERVER_TOKEN": ("rasa", "actions"),
    "RASA_AUTH_TOKEN": ("rasa", "gateway"),
}
# Values that carry a password or token: from a Secret in Kubernetes, from the operator's
# environment (${...}) in compose, never written into a manifest.
SECRET_VALUES = {
    "REDIS_URL",
    "REDIS_SENTINEL_PASSWORD",
    "EVENTS_DB_URL",
    *SECRETS_FOR,
    "SUPPORT_REDIS_PASSWORD",
}


# --- what the code reads ------------------------------------------------------------------


def settings_env_names(settings: type[Settings] = Settings) -> set[str]:
    """The environment variable of every field of bot.config.Settings."""
    names: set[str] = set()
    for model_field in settings.__fields__.values():
        env = model_field.field_info.extra.get("env")
        if isinstance(env, str):
            names.add(env)
        elif env:
            names.update(env)
        else:  # pydantic's default: the field name, in capitals as written in deployments
            names.add(model_field.name.upper())
    return names


def _environ_key(node: ast.AST) -> str | None:
    """The variable name when `node` reads os.environ / os.getenv with a literal name."""

    def is_environ(value: ast.AST) -> bool:
        return (isinstance(value, ast.Attribute) and value.attr == "environ") or (
            isinstance(value, ast.Name) and value.id == "environ"
        )

    def literal(arg: ast.AST) -> str | None:
        return arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None

    if isinstance(node, ast.Subscript) and is_environ(node.value):
        return literal(node.slice)
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in {"get", "pop", "setdefault"}:
            if is_environ(func.value):
                return literal(node.args[0])
        if (isinstance(func, ast.Attribute) and func.attr == "getenv") or (
            isinstance(func, ast.Name) and func.id == "getenv"
        ):
            return literal(node.args[0])
    if isinstance(node, ast.Compare) and any(is_environ(c) for c in node.comparators):
        return literal(node.left)
    return None


def environ_reads(source: str) -> set[str]:
    """Variables a Python source reads from the environment by literal name."""
    return {name for node in ast.walk(ast.parse(source)) if (name := _environ_key(node))}


def code_environ_reads(roots: Iterable[Path]) -> set[str]:
    names: set[str] = set()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            names |= environ_reads(path.read_text(encoding="utf-8"))
    return names


def rasa_config_vars(paths: Iterable[Path]) -> set[str]:
    """``${VAR}`` references in Rasa's endpoints/credentials files (Rasa expands them)."""
    return {m for p in paths if p.exists() for m in re.findall(r"\$\{(\w+)\}", p.read_text())}


def known_env_names() -> set[str]:
    """Every variable the project's processes read: settings, os.environ reads, Rasa's files."""
    return (
        settings_env_names()
        | code_environ_reads([PROJECT_ROOT / "bot", PROJECT_ROOT / "actions"])
        | rasa_config_vars([PROJECT_ROOT / "endpoints.yml", PROJECT_ROOT / "credentials.yml"])
    )


# --- loading ------------------------------------------------------------------------------


def yaml_files(root: Path = DEPLOY) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in {".yml", ".yaml"})


def load_all(path: Path) -> list[Any]:
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def k8s_objects(root: Path = K8S) -> list[dict[str, Any]]:
    """Every Kubernetes object under deploy/k8s (the kustomization file is not one)."""
    return [
        doc
        for path in yaml_files(root)
        for doc in load_all(path)
        if doc.get("kind") != "Kustomization"
    ]


# --- services and their environment --------------------------------------------------------


@dataclass
class ServiceEnv:
    """One process of the project's image in a deployment, and what its environment holds."""

    where: str  # e.g. "compose service gateway-1" or "k8s Deployment/gateway container gateway"
    role: str  # gateway | rasa | actions | analytics (the entrypoint's argument)
    env: set[str] = field(default_factory=set)
    literal_secrets: set[str] = field(default_factory=set)  # secret names with a literal value
    problems: list[str] = field(default_factory=list)  # dangling references


def _role(args: Any) -> str:
    if isinstance(args, str):
        args = args.split()
    return str(args[0]) if args else "gateway"  # the image's CMD


def compose_services(compose: dict[str, Any]) -> list[ServiceEnv]:
    """The services of a compose file that run the project's image."""
    found = []
    for name, service in (compose.get("services") or {}).items():
        image = str(service.get("image", ""))
        if IMAGE not in image and "SUPPORT_IMAGE" not in image:
            continue
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(
                item.split("=", 1) if "=" in item else (item, "") for item in environment
            )
        entry = ServiceEnv(f"compose service {name}", _role(service.get("command")))
        entry.env = set(environment)
        entry.literal_secrets = {
            k for k, v in environment.items() if k in SECRET_VALUES and "${" not in str(v)
        }
        if service.get("env_file"):
            entry.problems.append(f"{entry.where}: env_file hides its variables from this check")
        found.append(entry)
    return found


def _pod_specs(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = obj.get("spec") or {}
    if obj.get("kind") in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        yield spec["template"]["spec"]
    elif obj.get("kind") == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]
    elif obj.get("kind") == "Pod":
        yield spec


def _data_keys(objects: list[dict[str, Any]], kind: str) -> dict[str, set[str]]:
    return {
        o["metadata"]["name"]: set(o.get("data") or {}) | set(o.get("stringData") or {})
        for o in objects
        if o.get("kind") == kind
    }


def k8s_services(objects: list[dict[str, Any]]) -> list[ServiceEnv]:
    """The containers of the project's image in the Kubernetes objects, with their variables
    (env, and envFrom expanded from the ConfigMaps and Secrets defined alongside)."""
    config_maps = _data_keys(objects, "ConfigMap")
    secrets = _data_keys(objects, "Secret")
    found = []
    for obj in objects:
        for pod in _pod_specs(obj):
            for container in pod.get("containers", []):
                if str(container.get("image", "")).split(":")[0].split("/")[-1] != IMAGE:
                    continue
                where = f"k8s {obj['kind']}/{obj['metadata']['name']} container {container['name']}"
                entry = ServiceEnv(where, _role(container.get("args")))
                for source in container.get("envFrom", []):
                    for kind, table in (("configMapRef", config_maps), ("secretRef", secrets)):
                        if kind in source:
                            ref = source[kind]["name"]
                            if ref not in table:
                                entry.problems.append(f"{where}: {kind} {ref!r} is not defined")
                            keys = table.get(ref, set())
                            entry.env |= keys
                            if kind == "configMapRef":
                                entry.literal_secrets |= keys & SECRET_VALUES
                for var in container.get("env", []):
                    entry.env.add(var["name"])
                    value_from = var.get("valueFrom") or {}
                    if "value" in var and var["name"] in SECRET_VALUES:
                        entry.literal_secrets.add(var["name"])
                    for kind, table in (
                        ("secretKeyRef", secrets),
                        ("configMapKeyRef", config_maps),
                    ):
                        if kind in value_from:
                            ref = value_from[kind]
                            if ref["key"] not in table.get(ref["name"], set()):
                                entry.problems.append(
                                    f"{where}: {var['name']} refers to {kind} "
                                    f"{ref['name']}/{ref['key']}, which is not defined"
                                )
                            if kind == "configMapKeyRef" and var["name"] in SECRET_VALUES:
                                entry.literal_secrets.add(var["name"])
                found.append(entry)
    return found


# --- checks -------------------------------------------------------------------------------


def env_problems(
    services: list[ServiceEnv],
    known: set[str],
    pending: Iterable[str] = (),
    secrets_for: dict[str, tuple[str, ...]] | None = None,
) -> list[str]:
    """Unknown variables (typos), missing required ones, secrets written in clear, dangling refs."""
    allowed = known | set(pending)
    secrets_for = SECRETS_FOR if secrets_for is None else secrets_for
    problems: list[str] = []
    for service in services:
        problems += service.problems
        if service.role not in ROLES:
            problems.append(f"{service.where}: runs {service.role!r}, not one of {ROLES}")
            continue
        for name in sorted(service.env - allowed):
            problems.append(f"{service.where}: sets {name}, which no code reads (a typo?)")
        for alternatives in REQUIRED[service.role]:
            if not any(option <= service.env for option in alternatives):
                wanted = " or ".join("+".join(sorted(option)) for option in alternatives)
                problems.append(f"{service.where}: {wanted} must be set")
        for secret, roles in secrets_for.items():
            if secret in known and service.role in roles and secret not in service.env:
                problems.append(f"{service.where}: the shared secret {secret} must be set")
        for name in sorted(service.literal_secrets):
            problems.append(f"{service.where}: {name} is written in the manifest, not a secret")
    return problems


def object_problems(objects: list[dict[str, Any]]) -> list[str]:
    """Kubernetes objects are complete; Deployments are probed, sized and have a PDB; HPAs and
    Services point at existing Deployments."""
    problems: list[str] = []
    for obj in objects:
        for key in ("apiVersion", "kind"):
            if not obj.get(key):
                problems.append(f"an object has no {key}: {str(obj)[:80]}")
        if not (obj.get("metadata") or {}).get("name"):
            problems.append(f"a {obj.get('kind')} has no metadata.name")
    deployments = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "Deployment"}
    for name, deployment in deployments.items():
        spec = deployment["spec"]
        labels = spec["template"]["metadata"].get("labels", {})
        if not _subset(spec["selector"].get("matchLabels", {}), labels):
            problems.append(f"Deployment/{name}: its selector does not match its pods")
        for container in spec["template"]["spec"]["containers"]:
            where = f"Deployment/{name} container {container['name']}"
            role = _role(container.get("args"))
            for probe in ("readinessProbe", "livenessProbe"):
                path = ((container.get(probe) or {}).get("httpGet") or {}).get("path")
                if path is None:
                    problems.append(f"{where}: no HTTP {probe}")
                elif role in HEALTH_PATHS and path != HEALTH_PATHS[role]:
                    problems.append(
                        f"{where}: {probe} on {path}, but {role}'s health is {HEALTH_PATHS[role]}"
                    )
            requests = (container.get("resources") or {}).get("requests") or {}
            for resource in ("cpu", "memory"):
                if resource not in requests:
                    problems.append(f"{where}: no {resource} request")
        if not any(
            o.get("kind") == "PodDisruptionBudget"
            and _subset(o["spec"].get("selector", {}).get("matchLabels", {}), labels)
            for o in objects
        ):
            problems.append(f"Deployment/{name}: no PodDisruptionBudget selects its pods")
    for hpa in (o for o in objects if o.get("kind") == "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        if target.get("kind") != "Deployment" or target.get("name") not in deployments:
            problems.append(
                f"HorizontalPodAutoscaler/{hpa['metadata']['name']}: targets "
                f"{target.get('kind')}/{target.get('name')}, which is not a Deployment here"
            )
    for service in (o for o in objects if o.get("kind") == "Service"):
        selector = service["spec"].get("selector", {})
        if not any(
            _subset(selector, d["spec"]["template"]["metadata"].get("labels", {}))
            for d in deployments.values()
        ):
            problems.append(f"Service/{service['metadata']['name']}: selects no Deployment's pods")
    return problems


def _subset(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def memory_bytes(quantity: str) -> float:
    """A Kubernetes memory quantity ("1200Mi", "2Gi", "512M") in bytes."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 1e3, "M": 1e6, "G": 1e9}
    match = re.fullmatch(r"([0-9.]+)([KMGT]i?)?", str(quantity))
    if not match:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return float(match.group(1)) * units.get(match.group(2) or "", 1)
