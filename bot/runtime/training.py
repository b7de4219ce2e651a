"""The trained Rasa model, cached on the content of what it is trained from.

`ensure_model()` returns the model for the current `config.yml`, `domain/`, `data/` and NLU
component code, training it only when no model for exactly that content exists. The launcher
and the test fixtures both call it, so a model is trained once and reused until something it
depends on changes. `python -m bot.runtime.training` does the same from the shell and prints the
path.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from bot.config import PROJECT_ROOT, get_settings

MODEL_INPUTS = ("config.yml", "domain", "data", "bot/nlu")
# Rasa's and spaCy's imports print pages of third-party deprecation warnings; keep the output readable.
QUIET_ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def _input_files(root: Path) -> Iterable[Path]:
    for name in MODEL_INPUTS:
        path = root / name
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts
            )


def content_fingerprint(root: Path = PROJECT_ROOT) -> str:
    """A hash of every file the model is trained from (paths and bytes)."""
    digest = hashlib.sha256()
    for path in _input_files(root):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def build_spacy_model() -> None:
    """Build the project's spaCy pipeline (idempotent) that config.yml loads."""
    subprocess.run(
        [sys.executable, "-m", "bot.nlu.spacy_model", "build"],
        cwd=PROJECT_ROOT,
        env=QUIET_ENV,
        check=True,
    )


def ensure_model(models_dir: Path | None = None, *, quiet: bool = False) -> Path:
    """Return the model trained from the current inputs, training it first if missing."""
    models_dir = models_dir or get_settings().models_dir
    models_dir.mkdir(parents=True, exist_ok=True)
    build_spacy_model()
    name = f"support-{content_fingerprint()}"
    model = models_dir / f"{name}.tar.gz"
    with open(models_dir / ".train.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one training at a time, others wait and reuse it
        if model.exists():
            return model
        _train(models_dir, name, quiet=quiet)
    if not model.exists():
        raise RuntimeError(f"rasa train finished but {model} is missing")
    return model


def _train(models_dir: Path, name: str, *, quiet: bool) -> None:
    rasa = Path(sys.executable).with_name("rasa")
    cmd = [
        str(rasa),
        "train",
        "--config",
        "config.yml",
        "--domain",
        "domain",
        "--data",
        "data",
        "--out",
        str(models_dir),
        "--fixed-model-name",
        name,
    ]
    print(f"training the Rasa model {name} (content changed or no model yet) ...", flush=True)
    started = time.monotonic()
    log = models_dir / f"{name}.train.log"
    with open(log, "w") as out:
        result = subprocess.run(
            cmd,
            cwd=PROJECT_ROOT,
            env=QUIET_ENV,
            stdout=out if quiet else None,
            stderr=subprocess.STDOUT,
        )
    if result.returncode != 0:
        raise RuntimeError(f"rasa train failed (exit {result.returncode}); see {log}")
    print(f"trained {name} in {time.monotonic() - started:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="send rasa's output to a log file")
    args = parser.parse_args()
    print(ensure_model(quiet=args.quiet))


if __name__ == "__main__":
    main()
