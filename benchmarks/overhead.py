"""The router's own cost per route, beside litellm's own cost per (mocked) call.

Measures, in one run:

* ``route_us``: one ``await Router.route(...)`` with a FakeWorker tier (no model time), one
  RegexVerifier and a real SQLite ledger in a temporary folder (one committed row per route) —
  everything the router adds to a call: prompt preparation, the attempt, verification, the policy,
  pricing, the ledger write and the result;
* ``litellm_mock_us`` (the named baseline): one
  ``litellm.completion(model="gpt-4o", messages=..., mock_response=...)`` — litellm's own
  per-call cost with no network;
* ``ratio`` = route_us / litellm_mock_us (target < 0.2);
* ``import_s``: ``import paxis_router`` in a fresh interpreter (target < 0.3 s), median of runs.

Both paths are warmed up first; each figure is the median over batches of the per-call mean.

Run: ``.venv/bin/python benchmarks/overhead.py [--batches 15] [--batch-size 200] [--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from paxis_router import ChatRequest, Router, SQLiteLedger, TokenPrice
from paxis_router.testing import FakeWorker
from paxis_router.verifiers import RegexVerifier

if TYPE_CHECKING:
    from collections.abc import Callable

MESSAGES = [{"role": "user", "content": "What is 6*7? Answer with a number."}]


def _median_us(batch_seconds: list[float], batch_size: int) -> float:
    return statistics.median(s / batch_size for s in batch_seconds) * 1e6


def measure_route_us(batches: int, batch_size: int, folder: Path) -> float:
    """Median per-route wall time (µs) of the router's own work."""
    ledger = SQLiteLedger(folder / "overhead.db")
    router = Router(
        tiers=[FakeWorker(["42"], name="local:fake", price=TokenPrice.per_million("0.2", "0.2"))],
        verifiers=[RegexVerifier(must_match=r"\d")],
        ledger=ledger,
    )
    request = ChatRequest.from_text(MESSAGES[0]["content"], team="bench")

    async def run() -> list[float]:
        for _ in range(batch_size):  # warm-up
            await router.route(request)
        out = []
        for _ in range(batches):
            t0 = time.perf_counter()
            for _ in range(batch_size):
                await router.route(request)
            out.append(time.perf_counter() - t0)
        return out

    try:
        return _median_us(asyncio.run(run()), batch_size)
    finally:
        ledger.close()


def measure_litellm_mock_us(batches: int, batch_size: int) -> float:
    """Median per-call wall time (µs) of litellm.completion with a mock response."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    def call() -> object:
        return litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="42")

    return _median_us(_timed_batches(call, batches, batch_size), batch_size)


def _timed_batches(fn: Callable[[], object], batches: int, batch_size: int) -> list[float]:
    for _ in range(batch_size):  # warm-up
        fn()
    out = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(batch_size):
            fn()
        out.append(time.perf_counter() - t0)
    return out


def measure_import_s(runs: int) -> float:
    """Median seconds of ``import paxis_router`` in a fresh interpreter."""
    code = (
        "import time; t = time.perf_counter(); import paxis_router; print(time.perf_counter() - t)"
    )
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        times.append(float(out))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--import-runs", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        route_us = measure_route_us(args.batches, args.batch_size, Path(folder))
    litellm_us = measure_litellm_mock_us(args.batches, args.batch_size)
    import_s = measure_import_s(args.import_runs)
    figures = {
        "route_us": round(route_us, 1),
        "litellm_mock_us": round(litellm_us, 1),
        "ratio": round(route_us / litellm_us, 3),
        "import_s": round(import_s, 3),
    }
    if args.json:
        sys.stdout.write(json.dumps(figures) + "\n")
        return 0
    sys.stdout.write(
        f"router overhead per route (FakeWorker + 1 verifier + SQLite ledger): "
        f"{figures['route_us']:.1f} µs\n"
        f"baseline: litellm.completion(mock_response=...) per call:           "
        f"{figures['litellm_mock_us']:.1f} µs\n"
        f"ratio route / litellm mock: {figures['ratio']:.3f} (target < 0.2)\n"
        f"import paxis_router: {figures['import_s']:.3f} s (target < 0.3 s)\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
