"""The circuit breaker's cost per recorded outcome under heavy, flaky traffic.

Measures, in one run, on a fake clock: 2,000 calls/s for ``--seconds`` of traffic with
``--error-rate`` of the calls failing (the breaker's thresholds set so that it stays closed, the
worst case: every failure asks whether to open), for

* ``paxis``: ``CircuitBreaker`` as shipped (fixed buckets, O(1) per outcome);
* ``deque_scan`` (the named baseline): the previous algorithm, a deque of every outcome in the
  window scanned on each failure.

Prints the mean cost per outcome and per failure of each, the ratio, and how many entries each
keeps in memory at the end (the baseline grows with call rate x window).

Run: ``.venv/bin/python benchmarks/breaker_bench.py [--seconds 120] [--json]``
"""

from __future__ import annotations

import argparse
import collections
import json
import time
from typing import TYPE_CHECKING

from paxis_router.workers.breaker import BreakerConfig, CircuitBreaker

if TYPE_CHECKING:
    from collections.abc import Callable

RATE = 2_000  # calls per second


class DequeScanBreaker:
    """The previous error-rate window: every outcome kept, the window scanned per failure."""

    def __init__(self, config: BreakerConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.window: collections.deque[tuple[float, bool]] = collections.deque()
        self.consecutive = 0

    def _note(self, ok: bool) -> None:
        now = self.clock()
        self.window.append((now, ok))
        horizon = now - self.config.window_s
        while self.window and self.window[0][0] < horizon:
            self.window.popleft()

    def record_success(self) -> None:
        self.consecutive = 0
        self._note(True)

    def record_failure(self, reason: str) -> None:
        self.consecutive += 1
        self._note(False)
        rate = self.config.error_rate
        if self.consecutive >= self.config.failure_threshold or rate is None:
            return
        if len(self.window) >= self.config.min_calls:
            failed = sum(1 for _, ok in self.window if not ok)
            _ = failed / len(self.window) >= rate


def _drive(
    breaker: CircuitBreaker | DequeScanBreaker, now: list[float], n: int, every: int
) -> float:
    start = time.perf_counter()
    for i in range(n):
        now[0] = i / RATE
        if i % every:
            breaker.record_success()
        else:
            breaker.record_failure("503")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="traffic to simulate")
    parser.add_argument("--error-rate", type=float, default=0.1, help="share of calls failing")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    config = BreakerConfig(failure_threshold=10**9, error_rate=0.99, min_calls=20, window_s=60)
    n = int(args.seconds * RATE)
    every = round(1 / args.error_rate)
    now = [0.0]
    shipped = CircuitBreaker(config, clock=lambda: now[0])
    baseline = DequeScanBreaker(config, clock=lambda: now[0])
    t_shipped = _drive(shipped, now, n, every)
    t_base = _drive(baseline, now, n, every)
    failures = n // every
    out = {
        "calls": n,
        "failures": failures,
        "paxis_us_per_call": round(t_shipped / n * 1e6, 3),
        "deque_scan_us_per_call": round(t_base / n * 1e6, 3),
        "deque_scan_us_per_failure": round(t_base / failures * 1e6, 1),
        "speedup": round(t_base / t_shipped, 1),
        "paxis_entries_kept": len(shipped._window._calls),
        "deque_scan_entries_kept": len(baseline.window),
    }
    if args.json:
        print(json.dumps(out))
        return
    for key, value in out.items():
        print(f"{key:28} {value}")


if __name__ == "__main__":
    main()
