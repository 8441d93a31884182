"""How well the arithmetic verifier predicts a correct GSM8K answer.

Runs ``ArithmeticVerifier`` over the recorded GSM8K responses of RouteLLM's two models
(``benchmarks/data/routellm/gsm8k_responses.csv``: per-query response and correctness) and
reports, per model and per verifier set-up:

* ``pass_share``: share of responses the verifier passes (answered locally in a router);
* ``precision``: share of passed responses that are correct (the routed accuracy of the
  locally-kept answers);
* ``recall``: share of correct responses that pass (cheap answers not wasted on escalation);
* ``precision_vs_accept_all``: precision divided by the baseline measured in the same run,
  *accept everything* (whose precision is the model's plain accuracy);
* ``routed_accuracy`` (Mixtral only): accuracy of a two-tier ladder that keeps Mixtral's
  answer when the verifier passes it and otherwise takes GPT-4's recorded answer to the same
  question, beside ``frontier_accuracy`` (GPT-4 alone) and ``frontier_share`` (escalations).

Set-ups: ``final_answer_only`` (only a final answer is required), ``arithmetic`` (the default
verifier), ``arithmetic+no_hedge`` (AllOf with a RegexVerifier rejecting hedging phrases).

Run: ``.venv/bin/python benchmarks/verifier_gsm8k.py [--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
import time
from pathlib import Path

from paxis_router.types import ChatRequest, Completion
from paxis_router.verifiers import (
    AllOf,
    ArithmeticVerifier,
    CallableVerifier,
    RegexVerifier,
    Verifier,
)
from paxis_router.verifiers.arithmetic import find_final_answer

DATA = Path(__file__).parent / "data" / "routellm" / "gsm8k_responses.csv"
MODELS = ("mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview")
FRONTIER = MODELS[1]
HEDGES = r"(?i)\b(however|not possible|mistake|assum(e|ing|ption))\b"


def setups() -> dict[str, Verifier]:
    return {
        "final_answer_only": CallableVerifier(
            lambda _r, c: find_final_answer(c.content) is not None
        ),
        "arithmetic": ArithmeticVerifier(),
        "arithmetic+no_hedge": AllOf(ArithmeticVerifier(), RegexVerifier(must_not_match=HEDGES)),
    }


async def measure(
    verifier: Verifier, rows: list[dict[str, str]], model: str
) -> dict[str, float | int]:
    request = ChatRequest.from_text("gsm8k")
    tp = fp = fn = routed_correct = 0
    for row in rows:
        verdict = await verifier.verify(request, Completion(row[f"{model}_response"], model))
        correct = row[model] == "True"
        tp += verdict.passed and correct
        fp += verdict.passed and not correct
        fn += (not verdict.passed) and correct
        routed_correct += correct if verdict.passed else row[FRONTIER] == "True"
    n = len(rows)
    accuracy = (tp + fn) / n
    precision = tp / (tp + fp) if tp + fp else 0.0
    routed: dict[str, float | int] = {}
    if model != FRONTIER:
        routed = {
            "routed_accuracy": round(routed_correct / n, 4),
            "frontier_accuracy": round(sum(r[FRONTIER] == "True" for r in rows) / n, 4),
            "frontier_share": round(1 - (tp + fp) / n, 4),
        }
    return {
        **routed,
        "n": n,
        "accuracy": round(accuracy, 4),
        "pass_share": round((tp + fp) / n, 4),
        "precision": round(precision, 4),
        "recall": round(tp / (tp + fn), 4) if tp + fn else 0.0,
        "precision_vs_accept_all": round(precision / accuracy, 4) if accuracy else 0.0,
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with DATA.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    results: dict[str, dict[str, dict[str, float | int]]] = {}
    t0 = time.perf_counter()
    for model in MODELS:
        results[model] = {name: await measure(v, rows, model) for name, v in setups().items()}
    elapsed_s = time.perf_counter() - t0
    verified = len(rows) * len(MODELS) * len(setups())
    if args.json:
        json.dump({"results": results, "responses_per_s": round(verified / elapsed_s)}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    for model, by_setup in results.items():
        sys.stdout.write(f"{model} (baseline accept-all precision = accuracy)\n")
        for name, m in by_setup.items():
            sys.stdout.write(
                f"  {name:22s} pass {m['pass_share']:.3f}  precision {m['precision']:.3f}  "
                f"recall {m['recall']:.3f}  precision/accept-all "
                f"{m['precision_vs_accept_all']:.3f}  (accuracy {m['accuracy']:.3f})\n"
            )
            if "routed_accuracy" in m:
                sys.stdout.write(
                    f"  {'':22s} routed accuracy {m['routed_accuracy']:.3f} with "
                    f"{m['frontier_share']:.1%} sent to {FRONTIER} (alone: "
                    f"{m['frontier_accuracy']:.3f})\n"
                )
    sys.stdout.write(f"{verified / elapsed_s:,.0f} responses verified per second\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
