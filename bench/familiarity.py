"""Calibrate the familiarity guard: `python -m bench.familiarity [--budget 1.0]`.

The guard (`bot.nlu.familiarity`) scores a message by the mean cosine similarity of its MiniLM
embedding to the 3 nearest training examples of the predicted intent; under
`failed_turns.unfamiliar_below` (escalation_policy.yml) the bot does not give a routine answer.
This chooses that threshold on a validation split, never on the NLU test part or on any
conversation set:

- index: the training part of `bench.nlu`'s validation split (Banking77 minus its 20 % test part
  minus 15 % validation, with every other NLU file);
- in scope: the 15 % Banking77 validation examples, each scored against its own (gold) intent,
  i.e. the score a correct routine answer would have;
- out of scope: the 30 % validation part of CLINC's out-of-scope training queries plus
  `eval/unanswerable_banking.yml` (realistic banking messages no routine answer answers), each
  scored against its NEAREST routine intent: the highest score any prediction could give it, so the
  share caught is a lower bound.

The threshold is the highest one that turns at most `--budget` % (default 1.0) of the in-scope
validation answers into a request to rephrase. The table shows the trade-off around it; the JSON
goes to `.cache/reports/familiarity.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bench import nlu
from bot.nlu.familiarity import ExampleIndex

UNANSWERABLE_FILE = nlu.PROJECT_ROOT / "eval" / "unanswerable_banking.yml"
REPORT_FILE = nlu.PROJECT_ROOT / ".cache" / "reports" / "familiarity.json"
DEFAULT_BUDGET = 1.0  # % of correct in-scope answers the guard may turn into a question


def nearest_routine_score(index: ExampleIndex, vector: np.ndarray, routine: list[str]) -> float:
    """The highest familiarity score of `vector` over the routine intents."""
    return max(index.score(vector, intent).score or 0.0 for intent in routine)


def choose(in_scope: np.ndarray, budget: float) -> float:
    """The highest threshold (3 decimals) below which at most `budget` % of `in_scope` falls."""
    candidates = np.round(np.arange(0.0, 1.0, 0.005), 3)
    allowed = [t for t in candidates if 100.0 * float(np.mean(in_scope < t)) <= budget]
    return float(max(allowed))


def calibrate(budget: float = DEFAULT_BUDGET) -> dict[str, object]:
    from bot.nlu.sentence_encoder import shared_encoder

    split, val_oos = nlu.validation_split(nlu.benchmark_split())
    unanswerable = nlu.read_examples(UNANSWERABLE_FILE)
    encoder = shared_encoder()
    train_vectors = encoder.encode([text for text, _ in split.train])
    index = ExampleIndex.fit(train_vectors, [intent for _, intent in split.train])
    routine = sorted(split.banking_intents)
    in_vectors = encoder.encode([text for text, _ in split.test])
    in_scope = np.asarray(
        [
            index.score(v, intent).score
            for v, (_, intent) in zip(in_vectors, split.test, strict=True)
        ]
    )
    oos_vectors = encoder.encode([text for text, _ in val_oos])
    oos = np.asarray([nearest_routine_score(index, v, routine) for v in oos_vectors])
    un_vectors = encoder.encode([text for text, _ in unanswerable])
    un = np.asarray([nearest_routine_score(index, v, routine) for v in un_vectors])
    threshold = choose(in_scope, budget)
    rows = []
    for t in sorted({round(threshold + d, 3) for d in (-0.1, -0.05, 0.0, 0.05, 0.1)}):
        rows.append(
            {
                "threshold": t,
                "in_scope_lost_pct": round(100 * float(np.mean(in_scope < t)), 2),
                "oos_caught_pct": round(100 * float(np.mean(oos < t)), 2),
                "unanswerable_caught_pct": round(100 * float(np.mean(un < t)), 2),
            }
        )
    return {
        "budget_pct": budget,
        "threshold": threshold,
        "in_scope_validation": len(in_scope),
        "oos_validation": len(oos),
        "unanswerable": len(un),
        "trade_off": rows,
    }


def table(result: dict[str, object]) -> str:
    lines = [
        f"Familiarity threshold: {result['threshold']} (in-scope budget {result['budget_pct']} %; "
        f"{result['in_scope_validation']} in-scope, {result['oos_validation']} out-of-scope, "
        f"{result['unanswerable']} unanswerable banking validation messages)",
        f"  {'threshold':>9} {'in-scope lost %':>16} {'OOS caught %':>13} {'unanswerable %':>15}",
    ]
    for row in result["trade_off"]:  # type: ignore[attr-defined]
        lines.append(
            f"  {row['threshold']:>9} {row['in_scope_lost_pct']:>16} {row['oos_caught_pct']:>13} "
            f"{row['unanswerable_caught_pct']:>15}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET)
    parser.add_argument("--json", type=Path, default=REPORT_FILE)
    args = parser.parse_args(argv)
    result = calibrate(args.budget)
    print(table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
