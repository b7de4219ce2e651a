"""NLU quality and speed, measured: `python -m bench.nlu` (add `--thresholds` to choose fallbacks).

The Banking77 examples of `data/nlu/banking77.yml` are split once, stratified by intent with a fixed
seed, into 80 % training and 20 % test. The NLU model is trained through Rasa itself
(`rasa.model_training.train_nlu` with the project's `config.yml`) on the training part plus every
other NLU file (conversation, out-of-scope, ...) and then parses, one message at a time:

- the test part: accuracy and macro-F1 of the classifier's top intent (before the fallback), and
  the in-scope accuracy lost to the fallback (points of correct answers turned into `nlu_fallback`);
- `eval/out_of_scope_val.yml` (CLINC's held-out out-of-scope queries, never trained on): the share
  not answered as a banking intent (predicted `out_of_scope` or `nlu_fallback`);
- latency: p50/p99 of `Agent.parse_message` for single messages on the loaded model.

It also times `rasa train nlu` with `config.yml` on ALL the data (a fresh training cache, so
nothing is reused). The table prints every figure beside its target; the JSON goes to
`.cache/reports/nlu.json`.

`--thresholds` chooses the FallbackClassifier thresholds instead: it carves a validation split
from the training part (15 % of the Banking77 training examples and 30 % of the out-of-scope
examples, stratified, fixed seed), trains on the rest, and picks the (threshold,
ambiguity_threshold) pair that, losing at most 0.5 - 0.15 = 0.35 points of validation in-scope
accuracy, catches the most validation out-of-scope queries, then the most wrong in-scope answers (a
guess becomes a request to rephrase), then loses the least. Nothing of `eval/` is used to choose
them. The 0.15-point safety margin (`--safety-margin`) is there because the validation split is
small (1200 in-scope queries: one lost answer is 0.08 points) and a pair chosen exactly at the 0.5
budget lost 0.75 points on the test part; the margin buys headroom for that sampling noise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
NLU_DIR = PROJECT_ROOT / "data" / "nlu"
BANKING_FILE = NLU_DIR / "banking77.yml"
OOS_EVAL_FILE = PROJECT_ROOT / "eval" / "out_of_scope_val.yml"
CONFIG_FILE = PROJECT_ROOT / "config.yml"
REPORT_FILE = PROJECT_ROOT / ".cache" / "reports" / "nlu.json"
SEED = 42
TEST_SHARE = 0.2
VALIDATION_SHARE = 0.15
OOS_VALIDATION_SHARE = 0.3
MAX_INSCOPE_LOSS = 0.5  # points: the target on the test part
# points kept free below the target when choosing on validation (sampling noise: at 0.5 exactly
# on validation the chosen pair lost 0.75 points on test)
SAFETY_MARGIN = 0.15
OUT_OF_SCOPE = "out_of_scope"
FALLBACK = "nlu_fallback"
LATENCY_PARSES = 500

Example = tuple[str, str]  # (text, intent)


# data -----------------------------------------------------------------------------------------


def read_examples(path: Path) -> list[Example]:
    """(text, intent) pairs of a Rasa YAML NLU file, through Rasa's own reader."""
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(path))
    return [(m.get("text"), m.get("intent")) for m in data.intent_examples]


def stratified_split(
    examples: Sequence[Example], share: float, seed: int = SEED
) -> tuple[list[Example], list[Example]]:
    """(rest, held out): `share` of every intent held out, the same every run."""
    from sklearn.model_selection import train_test_split

    if share <= 0:
        return list(examples), []
    labels = [intent for _, intent in examples]
    stratify = labels if len(set(labels)) > 1 else None
    rest, held = train_test_split(
        list(examples), test_size=share, stratify=stratify, random_state=seed
    )
    return rest, held


def write_nlu_yaml(examples: Sequence[Example], path: Path) -> None:
    """Rasa YAML NLU data written by Rasa's own writer (which escapes what its reader parses)."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    messages = [Message(data={"text": text, "intent": intent}) for text, intent in examples]
    path.write_text(RasaYAMLWriter().dumps(TrainingData(training_examples=messages)))


@dataclass
class Split:
    train: list[Example]
    test: list[Example]  # banking only

    @property
    def banking_intents(self) -> set[str]:
        return {intent for _, intent in self.test}


def benchmark_split() -> Split:
    """Banking77 80/20 (stratified, fixed seed); every other NLU file goes to training."""
    banking = read_examples(BANKING_FILE)
    train, test = stratified_split(banking, TEST_SHARE)
    for path in sorted(NLU_DIR.glob("*.yml")):
        if path != BANKING_FILE:
            train += read_examples(path)
    return Split(train=train, test=test)


def validation_split(split: Split) -> tuple[Split, list[Example]]:
    """(training minus validation, validation out-of-scope) carved from the training part."""
    banking = split.banking_intents
    train_banking = [e for e in split.train if e[1] in banking]
    train_oos = [e for e in split.train if e[1] == OUT_OF_SCOPE]
    others = [e for e in split.train if e[1] not in banking and e[1] != OUT_OF_SCOPE]
    rest_banking, val_banking = stratified_split(train_banking, VALIDATION_SHARE)
    rest_oos, val_oos = stratified_split(train_oos, OOS_VALIDATION_SHARE)
    return Split(train=rest_banking + rest_oos + others, test=val_banking), val_oos


# model ----------------------------------------------------------------------------------------


def train_model(examples: Sequence[Example], workdir: Path, config: Path = CONFIG_FILE) -> Path:
    """Train an NLU model with `config` through Rasa on `examples`; returns the model archive."""
    from rasa.model_training import train_nlu

    data = workdir / "nlu.yml"
    write_nlu_yaml(examples, data)
    model = train_nlu(str(config), str(data), str(workdir / "models"), fixed_model_name="nlu")
    if model is None:
        raise RuntimeError("rasa did not produce a model")
    return Path(model)


@dataclass
class Parse:
    intent: str  # after the fallback
    ranking: list[tuple[str, float]]  # the classifier's ranking, without nlu_fallback
    seconds: float


class Parser:
    def __init__(self, model: Path) -> None:
        from rasa.core.agent import Agent

        self._loop = asyncio.new_event_loop()
        self._agent = Agent.load(str(model))

    def parse(self, text: str) -> Parse:
        start = time.perf_counter()
        result = self._loop.run_until_complete(self._agent.parse_message(text))
        seconds = time.perf_counter() - start
        ranking = [
            (entry["name"], float(entry["confidence"]))
            for entry in result.get("intent_ranking") or []
            if entry["name"] != FALLBACK
        ]
        return Parse(result["intent"]["name"], ranking, seconds)

    def close(self) -> None:
        self._loop.close()


def falls_back(ranking: Sequence[tuple[str, float]], threshold: float, ambiguity: float) -> bool:
    """What FallbackClassifier decides for a classifier ranking."""
    top = ranking[0][1]
    second = ranking[1][1] if len(ranking) > 1 else 0.0
    return top < threshold or top - second < ambiguity


# measures -------------------------------------------------------------------------------------


def macro_f1(gold: Sequence[str], predicted: Sequence[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(gold, predicted, labels=sorted(set(gold)), average="macro"))


def percentile_ms(seconds: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000, q))


def fallback_config() -> dict[str, float]:
    config = yaml.safe_load(CONFIG_FILE.read_text())
    fallback = next(c for c in config["pipeline"] if c["name"] == "FallbackClassifier")
    return {
        "threshold": fallback["threshold"],
        "ambiguity_threshold": fallback["ambiguity_threshold"],
    }


def time_full_training() -> float:
    """Seconds of `rasa train nlu` with config.yml on all the data and an empty training cache."""
    rasa = Path(sys.executable).with_name("rasa")
    with tempfile.TemporaryDirectory(prefix="bench-nlu-full-") as tmp:
        env = {**os.environ, "RASA_CACHE_DIRECTORY": str(Path(tmp) / "cache")}
        cmd = [
            str(rasa), "train", "nlu", "--config", str(CONFIG_FILE), "--nlu", str(NLU_DIR),
            "--domain", str(PROJECT_ROOT / "domain"), "--out", str(Path(tmp) / "models"),
        ]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, check=True, capture_output=True)
        return time.perf_counter() - start


@dataclass
class Report:
    accuracy: float  # %
    macro_f1: float  # %
    oos_not_banking: float  # % of out-of-scope queries answered out_of_scope / nlu_fallback
    inscope_lost_to_fallback: float  # points
    accuracy_after_fallback: float  # %
    fallback_rate_inscope: float  # % of in-scope messages sent to the fallback
    train_seconds_full: float | None
    train_seconds_split: float
    latency_p50_ms: float
    latency_p99_ms: float
    test_examples: int
    oos_examples: int
    train_examples_split: int
    threshold: float
    ambiguity_threshold: float


TARGETS = {
    "accuracy": (">=", 94.0, "%"),
    "macro_f1": ("", None, "%"),
    "oos_not_banking": (">=", 90.0, "%"),
    "inscope_lost_to_fallback": ("<=", 0.5, "points"),
    "train_seconds_full": ("<=", 300.0, "s"),
    "latency_p50_ms": ("<=", 15.0, "ms"),
    "latency_p99_ms": ("", None, "ms"),
}


def evaluate(*, full_training: bool = True) -> Report:
    split = benchmark_split()
    oos_eval = read_examples(OOS_EVAL_FILE)
    with tempfile.TemporaryDirectory(prefix="bench-nlu-") as tmp:
        os.environ["RASA_CACHE_DIRECTORY"] = str(Path(tmp) / "cache")
        start = time.perf_counter()
        model = train_model(split.train, Path(tmp))
        train_seconds = time.perf_counter() - start
        parser = Parser(model)
        parser.parse("warm up")
        test = [parser.parse(text) for text, _ in split.test]
        oos = [parser.parse(text) for text, _ in oos_eval]
        parser.close()
    gold = [intent for _, intent in split.test]
    raw = [p.ranking[0][0] for p in test]
    final = [p.intent for p in test]
    accuracy = 100 * np.mean([r == g for r, g in zip(raw, gold, strict=True)])
    after = 100 * np.mean([f == g for f, g in zip(final, gold, strict=True)])
    latencies = [p.seconds for p in test][:LATENCY_PARSES]
    return Report(
        accuracy=round(float(accuracy), 2),
        macro_f1=round(100 * macro_f1(gold, raw), 2),
        oos_not_banking=round(
            100 * float(np.mean([p.intent in (OUT_OF_SCOPE, FALLBACK) for p in oos])), 1
        ),
        inscope_lost_to_fallback=round(float(accuracy - after), 2),
        accuracy_after_fallback=round(float(after), 2),
        fallback_rate_inscope=round(100 * float(np.mean([f == FALLBACK for f in final])), 2),
        train_seconds_full=round(time_full_training(), 1) if full_training else None,
        train_seconds_split=round(train_seconds, 1),
        latency_p50_ms=round(percentile_ms(latencies, 50), 2),
        latency_p99_ms=round(percentile_ms(latencies, 99), 2),
        test_examples=len(split.test),
        oos_examples=len(oos_eval),
        train_examples_split=len(split.train),
        **fallback_config(),
    )


def choose_thresholds(safety_margin: float = SAFETY_MARGIN) -> dict[str, Any]:
    """Train on the training part minus a validation split; grid-search the fallback thresholds."""
    split, val_oos = validation_split(benchmark_split())
    with tempfile.TemporaryDirectory(prefix="bench-nlu-val-") as tmp:
        os.environ["RASA_CACHE_DIRECTORY"] = str(Path(tmp) / "cache")
        parser = Parser(train_model(split.train, Path(tmp)))
        inscope = [(parser.parse(text).ranking, intent) for text, intent in split.test]
        oos = [parser.parse(text).ranking for text, _ in val_oos]
        parser.close()
    budget = round(MAX_INSCOPE_LOSS - safety_margin, 4)
    return pick_thresholds(inscope, oos, max_loss=budget) | {
        "validation_inscope_examples": len(inscope),
        "validation_oos_examples": len(oos),
        "max_inscope_loss_points": MAX_INSCOPE_LOSS,
        "safety_margin_points": safety_margin,
        "validation_loss_budget_points": budget,
    }


Ranking = Sequence[tuple[str, float]]


def pick_thresholds(
    inscope: Sequence[tuple[Ranking, str]],
    oos: Sequence[Ranking],
    max_loss: float = MAX_INSCOPE_LOSS - SAFETY_MARGIN,
) -> dict[str, float]:
    """The (threshold, ambiguity) pair losing at most `max_loss` points of in-scope accuracy that
    catches the most out-of-scope queries, then the most wrong in-scope answers (guesses turned into
    a request to rephrase), then loses the least."""
    correct = np.array([ranking[0][0] == gold for ranking, gold in inscope])
    best: tuple[float, ...] | None = None
    for threshold in np.round(np.arange(0.0, 0.951, 0.05), 2):
        for ambiguity in np.round(np.arange(0.0, 0.3001, 0.005), 3):
            fell = np.array([falls_back(r, threshold, ambiguity) for r, _ in inscope])
            loss = 100 * float(np.mean(correct & fell))
            if loss > max_loss + 1e-9:
                continue
            caught = 100 * float(
                np.mean(
                    [r[0][0] == OUT_OF_SCOPE or falls_back(r, threshold, ambiguity) for r in oos]
                )
            )
            errors = 100 * float(np.mean(fell[~correct])) if (~correct).any() else 0.0
            candidate = (caught, errors, -loss, float(threshold), float(ambiguity))
            if best is None or candidate > best:
                best = candidate
    assert best is not None  # (0, 0) never falls back, so it is always within the budget
    caught, errors, negative_loss, threshold, ambiguity = best
    return {
        "threshold": threshold,
        "ambiguity_threshold": ambiguity,
        "validation_inscope_loss_points": round(-negative_loss, 2),
        "validation_oos_caught_percent": round(caught, 1),
        "validation_wrong_answers_caught_percent": round(errors, 1),
    }


# output ---------------------------------------------------------------------------------------


def table(report: Report) -> str:
    lines = [f"{'measure':<28}{'value':>10}  target", "-" * 52]
    for key, (op, target, unit) in TARGETS.items():
        value = getattr(report, key)
        shown = "-" if value is None else f"{value:.2f}"
        goal = f"{op} {target:g} {unit}" if target is not None else unit
        verdict = ""
        if target is not None and value is not None:
            met = value >= target if op == ">=" else value <= target
            verdict = "  ok" if met else "  MISSED"
        lines.append(f"{key:<28}{shown:>10}  {goal}{verdict}")
    lines.append(
        f"(test {report.test_examples} Banking77 examples, {report.oos_examples} CLINC out-of-scope; "
        f"fallback threshold {report.threshold}, ambiguity {report.ambiguity_threshold}; "
        f"split training {report.train_seconds_split:.0f} s; accuracy after fallback "
        f"{report.accuracy_after_fallback:.2f} %)"
    )
    return "\n".join(lines)


def quiet_rasa() -> None:
    """Rasa logs every parse at debug level unless told otherwise; that would time the logging."""
    import logging

    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    configure_logging_and_warnings(logging.WARNING)
    configure_structlog(logging.WARNING)


def write_json(payload: dict[str, Any], path: Path = REPORT_FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nlu", description=__doc__.split("\n")[0])
    parser.add_argument("--thresholds", action="store_true", help="choose the fallback thresholds")
    parser.add_argument(
        "--safety-margin",
        type=float,
        default=SAFETY_MARGIN,
        help=f"with --thresholds: points of in-scope loss kept free below the {MAX_INSCOPE_LOSS} "
        f"target on validation (default {SAFETY_MARGIN})",
    )
    parser.add_argument(
        "--skip-full-training", action="store_true", help="do not time the training on all data"
    )
    args = parser.parse_args(argv)
    quiet_rasa()
    os.chdir(PROJECT_ROOT)  # config.yml names the spaCy pipeline relative to the project
    subprocess.run([sys.executable, "-m", "bot.nlu.spacy_model", "build"], check=True)
    if args.thresholds:
        chosen = choose_thresholds(args.safety_margin)
        print(json.dumps(chosen, indent=2))
        write_json(chosen, REPORT_FILE.with_name("nlu-thresholds.json"))
        return 0
    report = evaluate(full_training=not args.skip_full_training)
    print(table(report))
    write_json(asdict(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
