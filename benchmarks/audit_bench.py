"""Audit log write path: appends per second and the append after an 8 MB record.

Baseline, measured in the same run: the old write path (``paxis_router`` before the group-commit
change, copied below as ``BaselineLog``): per record, open the file, take an exclusive ``flock``,
re-read the tail 8 KiB at a time to find the previous hash, one ``write``, one ``fsync``, close.
That is the simplest correct hash-chained append.

Figures (each the median of ``--repeat`` alternating runs, on a fresh file in a temporary
folder on the filesystem of ``--dir``):

* ``baseline_appends_per_s``: BaselineLog.append, fsync per record;
* ``new_appends_per_s`` / ``new_keyed_appends_per_s``: ``AuditLog(fsync=True).append`` for every
  record, then one ``flush()`` (so every record counted is on disk), unkeyed / HMAC-keyed;
* ``*_call_p50_us`` / ``*_call_p99_us``: how long one append call blocks its caller (the event
  loop, in the router);
* ``baseline_after_8mb_s``: the baseline's next append after an 8 MB record;
* ``new_after_8mb_s``: the new path's next append after an 8 MB record it wrote itself;
* ``new_after_8mb_other_writer_s``: the same when another writer wrote the 8 MB record (the tail
  must be read back once: 8 MB read backwards in doubling blocks, parsed and checked).

Ratios are new / baseline throughput and baseline / new latency. The machine is shared and
noisy: compare the ratios, not the absolute figures.

Run: ``.venv/bin/python benchmarks/audit_bench.py [--records 2000] [--repeat 3] [--json]``
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from paxis_router.governance.audit import GENESIS, AuditLog, canonical_json, record_hash

KEY = "benchmark key: 32 bytes or more, not secret"
EIGHT_MB = "x" * (8 * 1024 * 1024)
FIELDS: dict[str, Any] = {  # Any: JSON values; a typical routing record
    "kind": "route",
    "request_id": "req-0123456789abcdef",
    "route_id": "route-0123456789abcdef",
    "principal": "claims",
    "action": "call_tier",
    "target": "local:qwen-ft-v3",
    "model": "qwen2.5-7b-instruct-ft",
    "destination": "local",
    "data_class": "internal",
    "decision": "accept",
    "reason": "accept: every verifier passed (json_schema, non_empty)",
    "cost_usd": "0.000184",
}


class BaselineLog:
    """The old append: flock, tail re-read 8 KiB at a time, one write, one fsync per record."""

    def __init__(self, path: Path, *, include_payload: bool = False) -> None:
        self.path, self.include_payload = path, include_payload

    def append(self, payload: str | None = None, **fields: Any) -> dict[str, Any]:  # Any: JSON
        import hashlib

        record: dict[str, Any] = {**fields, "ts": "2026-11-28T12:00:00+00:00"}
        if payload is not None:
            record["payload_sha256"] = hashlib.sha256(payload.encode()).hexdigest()
            if self.include_payload:
                record["payload"] = payload
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            seq, prev = _baseline_tail(fd)
            record["seq"], record["prev"] = seq + 1, prev
            record["hash"] = record_hash(record)
            os.write(fd, canonical_json(record) + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        return record


def _baseline_tail(fd: int) -> tuple[int, str]:
    size = os.fstat(fd).st_size
    if size == 0:
        return -1, GENESIS
    end, buffer = size, b""
    while True:
        start = max(0, end - 8192)
        buffer = os.pread(fd, end - start, start) + buffer
        end = start
        cut = buffer.rfind(b"\n", 0, len(buffer) - 1)
        if cut >= 0 or start == 0:
            last = buffer[cut + 1 :]
            break
    record = json.loads(last)
    return int(record["seq"]), str(record["hash"])


def _throughput(append: Any, finish: Any, n: int) -> tuple[float, list[float]]:  # Any: callables
    calls: list[float] = []
    t0 = time.perf_counter()
    for i in range(n):
        c0 = time.perf_counter()
        append(payload=f"answer {i}", **FIELDS)
        calls.append(time.perf_counter() - c0)
    finish()
    return n / (time.perf_counter() - t0), calls


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6


def run_throughput(folder: Path, n: int, repeat: int) -> dict[str, float]:
    runs: dict[str, list[tuple[float, list[float]]]] = {"baseline": [], "new": [], "new_keyed": []}
    for r in range(repeat):  # alternate, so drift in the machine's load hits every variant
        base = BaselineLog(folder / f"base-{r}.jsonl")
        runs["baseline"].append(_throughput(base.append, lambda: None, n))
        for name, key in (("new", None), ("new_keyed", KEY)):
            log = AuditLog(folder / f"{name}-{r}.jsonl", key=key, key_env=None)
            runs[name].append(_throughput(log.append, log.flush, n))
            log.close()
    figures: dict[str, float] = {}
    for name, results in runs.items():
        figures[f"{name}_appends_per_s"] = statistics.median(r[0] for r in results)
        calls = [c for r in results for c in r[1]]
        figures[f"{name}_call_p50_us"] = _pct(calls, 0.50)
        figures[f"{name}_call_p99_us"] = _pct(calls, 0.99)
    return figures


def run_after_big(folder: Path, repeat: int) -> dict[str, float]:
    base, own, other = [], [], []
    for r in range(repeat):
        baseline = BaselineLog(folder / f"big-base-{r}.jsonl", include_payload=True)
        baseline.append(**FIELDS)
        baseline.append(payload=EIGHT_MB, **FIELDS)
        t0 = time.perf_counter()
        baseline.append(**FIELDS)
        base.append(time.perf_counter() - t0)

        log = AuditLog(folder / f"big-new-{r}.jsonl", include_payload=True, key_env=None)
        log.append(**FIELDS)
        log.append(payload=EIGHT_MB, **FIELDS)
        t0 = time.perf_counter()
        log.append(**FIELDS)
        own.append(time.perf_counter() - t0)
        log.close()

        path = folder / f"big-other-{r}.jsonl"
        mine = AuditLog(path, key_env=None)
        mine.append(**FIELDS)
        writer = AuditLog(path, include_payload=True, key_env=None)
        writer.append(payload=EIGHT_MB, **FIELDS)
        writer.close()
        t0 = time.perf_counter()
        mine.append(**FIELDS)
        other.append(time.perf_counter() - t0)
        mine.close()
    return {
        "baseline_after_8mb_s": statistics.median(base),
        "new_after_8mb_s": statistics.median(own),
        "new_after_8mb_other_writer_s": statistics.median(other),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=2000, help="records per throughput run")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs per figure")
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (a disk)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        figures = run_throughput(folder, args.records, args.repeat)
        figures |= run_after_big(folder, args.repeat)
    figures["new_vs_baseline_throughput"] = (
        figures["new_appends_per_s"] / figures["baseline_appends_per_s"]
    )
    figures["new_keyed_vs_baseline_throughput"] = (
        figures["new_keyed_appends_per_s"] / figures["baseline_appends_per_s"]
    )
    figures["baseline_vs_new_call_p50"] = (
        figures["baseline_call_p50_us"] / figures["new_call_p50_us"]
    )
    figures["baseline_vs_new_after_8mb"] = (
        figures["baseline_after_8mb_s"] / figures["new_after_8mb_s"]
    )
    figures["baseline_vs_new_after_8mb_other_writer"] = (
        figures["baseline_after_8mb_s"] / figures["new_after_8mb_other_writer_s"]
    )
    if args.json:
        sys.stdout.write(json.dumps(figures) + "\n")
        return 0
    out = sys.stdout.write
    out(f"audit log write path: {args.records} records x {args.repeat} runs, fsync on\n")
    for name in ("baseline", "new", "new_keyed"):
        out(
            f"  {name:<10} {figures[f'{name}_appends_per_s']:>10,.0f} appends/s  "
            f"call p50 {figures[f'{name}_call_p50_us']:>8.1f} us  "
            f"p99 {figures[f'{name}_call_p99_us']:>8.1f} us\n"
        )
    out(
        f"  throughput: new {figures['new_vs_baseline_throughput']:.1f}x baseline, keyed "
        f"{figures['new_keyed_vs_baseline_throughput']:.1f}x; a call blocks "
        f"{figures['baseline_vs_new_call_p50']:.0f}x less (p50)\n"
    )
    base_ms, new_ms = figures["baseline_after_8mb_s"] * 1e3, figures["new_after_8mb_s"] * 1e3
    out(
        f"append after an 8 MB record: baseline {base_ms:.1f} ms, new {new_ms:.3f} ms "
        f"({figures['baseline_vs_new_after_8mb']:.0f}x), written by another writer "
        f"{figures['new_after_8mb_other_writer_s'] * 1e3:.1f} ms "
        f"({figures['baseline_vs_new_after_8mb_other_writer']:.1f}x)\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
