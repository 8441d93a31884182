"""Ledger throughput and report speed.

Measures, on a fresh SQLite ledger in a temporary folder:

* ``rows_per_s_single``: ``SQLiteLedger.record`` one row per transaction (the router's path);
* ``rows_per_s_batched``: ``SQLiteLedger.record_many`` in batches of 1,000 (target >= 50,000);
* ``report_s_1m``: ``report.build`` with the default breakdowns (team, skill, tier, model, day)
  over 1,000,000 rows (target <= 3 s). The rows are generated with direct ``executemany``.

Baseline named in the output: the single-row path, so ``batched_vs_single`` is the speed-up of
batching measured in the same run.

Run: ``.venv/bin/python benchmarks/ledger_bench.py [--rows 1000000] [--json]``
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from paxis_router.ledger.sqlite import _INSERT, MIGRATIONS, SQLiteLedger, record_to_row
from paxis_router.reports import cost_report as report
from paxis_router.types import CallRecord, Decision, Verdict

TEAMS = ("claims", "support", "legal", "finance", "search")
SKILLS = ("invoice-extract", "sql-help", "summarise", "triage", "translate", "contract-review")
TIERS = (("local:qwen-ft", "qwen-ft-v3"), ("frontier:gpt-4o", "gpt-4o"))
START = datetime(2026, 11, 1, tzinfo=UTC)


def make_route(rng: random.Random, n: int) -> list[CallRecord]:
    """One route of one or two attempts (about 20 % escalate)."""
    route_id = f"r{n:09d}"
    ts = START + timedelta(seconds=n * 2)
    escalate = rng.random() < 0.2
    team = TEAMS[n % len(TEAMS)]
    skill = SKILLS[n % len(SKILLS)]
    prompt, completion = rng.randint(50, 900), rng.randint(10, 300)
    records = []
    for index in range(2 if escalate else 1):
        tier, model = TIERS[index]
        final = index == (1 if escalate else 0)
        passed = not (escalate and index == 0)
        cost = Decimal(prompt + completion) * (
            Decimal("0.0000002") if index == 0 else Decimal("0.00001")
        )
        records.append(
            CallRecord(
                route_id=route_id,
                request_id=route_id,
                attempt_index=index,
                ts=ts,
                tier=tier,
                tier_index=index,
                model=model,
                decision=Decision.ACCEPT if final else Decision.ESCALATE,
                reason="accept: 1 verifier(s) passed" if final else "escalate: schema failed",
                final=final,
                team=team,
                skill=skill,
                data_class="internal",
                prompt_tokens=prompt,
                completion_tokens=completion,
                latency_s=rng.uniform(0.05, 2.0),
                cost_usd=cost,
                counterfactual_usd=Decimal(prompt + completion) * Decimal("0.00001")
                if final
                else None,
                verdicts=(Verdict("schema", passed, None, ""),),
                passed=passed,
                finish_reason="stop",
            )
        )
    return records


def records(n_rows: int, seed: int = 7) -> list[CallRecord]:
    rng = random.Random(seed)
    out: list[CallRecord] = []
    n = 0
    while len(out) < n_rows:
        out.extend(make_route(rng, n))
        n += 1
    return out[:n_rows]


def bench_single(folder: Path, n_rows: int) -> float:
    ledger = SQLiteLedger(folder / "single.db")
    batch = records(n_rows, seed=1)
    t0 = time.perf_counter()
    for entry in batch:
        ledger.record(entry)
    elapsed = time.perf_counter() - t0
    ledger.close()
    return n_rows / elapsed


def bench_batched(folder: Path, n_rows: int, batch_size: int = 1000) -> float:
    ledger = SQLiteLedger(folder / "batched.db")
    batch = records(n_rows, seed=2)
    t0 = time.perf_counter()
    for start in range(0, n_rows, batch_size):
        ledger.record_many(batch[start : start + batch_size])
    elapsed = time.perf_counter() - t0
    ledger.close()
    return n_rows / elapsed


def fill_fast(path: Path, n_rows: int) -> None:
    """Write ``n_rows`` generated rows with direct executemany at schema 1, then let
    ``SQLiteLedger`` migrate: the migration builds the daily rollups exactly as ``record_many``
    would have kept them (test data, not a measurement)."""
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0].split(";"):  # schema 1: attempts and labels only
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    template = [record_to_row(r) for r in records(20_000, seed=3)]
    width = 10_000  # route numbers per template copy, so route ids stay unique
    done = 0
    copy = 0
    while done < n_rows:
        rows = []
        for row in template[: n_rows - done]:
            shifted = list(row)
            shifted[0] = shifted[1] = f"{row[0]}-{copy}"
            ts = START + timedelta(days=copy % 28, seconds=int(row[0][1:]) % width)
            shifted[3] = ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            rows.append(tuple(shifted))
        conn.executemany(_INSERT, rows)
        done += len(rows)
        copy += 1
    conn.commit()
    conn.close()
    SQLiteLedger(path).close()  # migrates forward: builds the daily rollups from the rows


def bench_report(folder: Path, n_rows: int) -> tuple[float, report.CostReport]:
    path = folder / "report.db"
    fill_fast(path, n_rows)
    ledger = SQLiteLedger(path)
    t0 = time.perf_counter()
    built = report.build(ledger)
    elapsed = time.perf_counter() - t0
    ledger.close()
    return elapsed, built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the report timing")
    parser.add_argument("--single", type=int, default=5_000, help="rows written one by one")
    parser.add_argument("--batched", type=int, default=200_000, help="rows written in batches")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        single = bench_single(folder, args.single)
        batched = bench_batched(folder, args.batched)
        report_s, built = bench_report(folder, args.rows)
    figures = {
        "rows_per_s_batched": round(batched),
        "rows_per_s_single": round(single),
        "report_s_1m": round(report_s * 1_000_000 / args.rows, 3),
    }
    if args.json:
        sys.stdout.write(json.dumps(figures) + "\n")
        return 0
    lines = [
        f"SQLite record(), one row per transaction: {single:,.0f} rows/s (baseline)",
        f"SQLite record_many(), batches of 1,000:   {batched:,.0f} rows/s "
        f"({batched / single:.1f}x the baseline; target >= 50,000)",
        f"report.build over {args.rows:,} rows ({built.attempts:,} counted): {report_s:.2f} s "
        f"(target <= 3 s per 1,000,000 rows)",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
