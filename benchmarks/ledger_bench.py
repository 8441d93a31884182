"""Ledger write throughput and report speed, each against a plain-SQL baseline of the same run.

Writes (a fresh SQLite ledger per round, rows generated beforehand):

* baseline: a plain ``executemany`` of already converted rows into the same ``attempts`` table
  (same indexes, WAL, ``synchronous=NORMAL``), 1,000 rows a transaction;
* ``convert+executemany``: the same, converting each CallRecord to its row first;
* ``record_many``: ``SQLiteLedger.record_many`` in batches of 1,000 (conversion, rows, rollups);
* ``record``: ``SQLiteLedger.record`` one row at a time (the router's path: queued, committed in
  groups by the writer thread), timed until ``flush()`` returns.

Each is printed in rows/s and as a ratio to the baseline (median of ``--rounds`` rounds).

Reports (``report.build``, SQLite), each shape on a ledger of ``--rows`` rows (1,000,000; and
10,000,000 with ``--big``) generated with bulk ``INSERT ... SELECT`` statements, the rollups
added chunk by chunk (``rollup.add_rows_statements``), against the baseline of one plain
``SELECT team, COUNT(*), SUM(cost_ticks) FROM attempts GROUP BY team`` on the same ledger:

* ``few``: 5 teams x 6 skills x 2 tiers over 28 days, no labels, default breakdowns;
* ``labels``: the same with 83,000 labelled routes;
* ``partial``: the same, a window cutting both edge days (02 12:00 to 20 12:00);
* ``agents``: the same, ``--by tool,tag:project,tag:user`` (3 tools, 20 projects, 1,000 users);
* ``task``: the same, ``--by task``: one group per task (a task is 4 routes: 200,000 groups per
  1,000,000 rows), so its time is mostly building that many rows in Python (first size only);
* ``where``: the same, ``--where tag:project=p-3`` (reads the window's rows: no rollup);
* ``wide``: 50 teams x 934 skills x 365 days, default breakdowns.

Run: ``.venv/bin/python benchmarks/ledger_bench.py [--rows N] [--big] [--json]``
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paxis_router.ledger import rollup
from paxis_router.ledger.schema import insert_sql, record_to_row
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.reports import cost_report as report
from paxis_router.types import CallRecord, Decision, Verdict

if TYPE_CHECKING:
    from collections.abc import Callable

TEAMS = ("claims", "support", "legal", "finance", "search")
SKILLS = ("invoice-extract", "sql-help", "summarise", "triage", "translate", "contract-review")
TIERS = (("local:qwen-ft", "qwen-ft-v3"), ("frontier:gpt-4o", "gpt-4o"))
START = datetime(2026, 11, 1, tzinfo=UTC)
BATCH = 1000
LABELS = 83_000

# --- writes ---------------------------------------------------------------------------------------


def make_route(rng: random.Random, n: int) -> list[CallRecord]:
    """One route of one or two attempts (about 20 % escalate)."""
    route_id = f"r{n:09d}"
    ts = START + timedelta(seconds=n * 2)
    escalate = rng.random() < 0.2
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
                team=TEAMS[n % len(TEAMS)],
                skill=SKILLS[n % len(SKILLS)],
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


def _plain_connection(path: Path) -> sqlite3.Connection:
    """A connection to a fresh ledger file of the current schema, set up as the ledger's."""
    SQLiteLedger(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _timed(action: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    action()
    return time.perf_counter() - t0


def write_round(folder: Path, batch: list[CallRecord], tag: str) -> dict[str, float]:
    """Rows/s of each write path on fresh files."""
    n = len(batch)
    insert = insert_sql()
    rows = [record_to_row(r) for r in batch]
    conn = _plain_connection(folder / f"plain-{tag}.db")

    def plain() -> None:
        for start in range(0, n, BATCH):
            conn.execute("BEGIN")
            conn.executemany(insert, rows[start : start + BATCH])
            conn.execute("COMMIT")

    plain_s = _timed(plain)
    conn.close()
    conn = _plain_connection(folder / f"convert-{tag}.db")

    def convert() -> None:
        for start in range(0, n, BATCH):
            part = [record_to_row(r) for r in batch[start : start + BATCH]]
            conn.execute("BEGIN")
            conn.executemany(insert, part)
            conn.execute("COMMIT")

    convert_s = _timed(convert)
    conn.close()
    ledger = SQLiteLedger(folder / f"many-{tag}.db")
    many_s = _timed(lambda: [ledger.record_many(batch[s : s + BATCH]) for s in range(0, n, BATCH)])
    ledger.close()
    ledger = SQLiteLedger(folder / f"single-{tag}.db")

    def single() -> None:
        for entry in batch:
            ledger.record(entry)
        ledger.flush()

    single_s = _timed(single)
    ledger.close()
    return {
        "plain": n / plain_s,
        "convert": n / convert_s,
        "record_many": n / many_s,
        "record": n / single_s,
    }


def bench_writes(folder: Path, n_rows: int, rounds: int) -> dict[str, float]:
    batch = records(n_rows, seed=2)
    results = [write_round(folder, batch, str(k)) for k in range(rounds)]
    out = {f"{name}_rows_per_s": statistics.median(r[name] for r in results) for name in results[0]}
    for name in ("convert", "record_many", "record"):
        out[f"{name}_vs_plain"] = statistics.median(r[name] / r["plain"] for r in results)
    out["record_many_vs_convert"] = statistics.median(
        r["record_many"] / r["convert"] for r in results
    )
    return out


# --- report shapes --------------------------------------------------------------------------------

_FILL = """
INSERT INTO attempts (route_id, request_id, attempt_index, ts, team, skill, data_class, tier,
  tier_index, model, decision, reason, final, prompt_tokens, completion_tokens, latency_s,
  cost_ticks, counterfactual_ticks, verdicts, passed, error, error_type, finish_reason,
  degraded, budget_capped, cached_prompt_tokens, reasoning_tokens, tools, task_id, step, tags)
WITH RECURSIVE n(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM n WHERE i < :last),
b AS (SELECT i, i % 5 AS pos, (i / 5) * 4 + MAX(i % 5 - 1, 0) AS r, i * :step AS us FROM n),
c AS (SELECT *, 50 + (r * 7) % 850 AS p, 10 + (r * 13) % 290 AS q FROM b)
SELECT printf('r%010d', r), printf('r%010d', r), pos = 1,
  strftime('%Y-%m-%dT%H:%M:%S', :epoch + us / 1000000, 'unixepoch')
    || printf('.%06dZ', us % 1000000),
  'team-' || ((r * 2654435761) % :teams), 'skill-' || ((r * 40507) % :skills), 'internal',
  CASE WHEN pos = 1 THEN 'frontier:gpt-4o' ELSE 'local:qwen-ft' END, pos = 1,
  CASE WHEN pos = 1 THEN 'gpt-4o' ELSE 'qwen-ft-v3' END,
  CASE WHEN pos = 0 THEN 'escalate' ELSE 'accept' END,
  CASE WHEN pos = 0 THEN 'escalate: schema failed' ELSE 'accept: 1 verifier(s) passed' END,
  pos <> 0, p, q, 0.05 + ((i * 7919) % 1950) / 1000.0,
  CASE WHEN pos = 1 THEN (p + q) * 100000 ELSE (p + q) * 2000 END,
  CASE WHEN pos <> 0 THEN (p + q) * 100000 END,
  CASE WHEN pos = 0 THEN '[{"verifier":"schema","passed":false,"score":null,"reason":""}]'
       ELSE '[{"verifier":"schema","passed":true,"score":null,"reason":""}]' END,
  pos <> 0, NULL, NULL, 'stop', 0, 0,
  p / 4, CASE WHEN pos = 1 THEN q / 2 ELSE 0 END,
  CASE r % 3 WHEN 0 THEN '["search","calculator"]' WHEN 1 THEN '["search"]' END,
  'task-' || (r / 4), r % 4,
  '{"project":"p-' || (r % 20) || '","user":"u-' || (r % 1000) || '"}'
FROM c
"""


FILL_CHUNK = 500_000


def fill(path: Path, n_rows: int, teams: int, skills: int, days: int) -> None:
    """A ledger of ``n_rows`` generated rows (1 route in 4 escalated), bulk-inserted by one
    ``INSERT ... SELECT`` per chunk of 500,000 rows, each chunk's rollups added as it goes
    (``rollup.add_rows_statements``: every sort is one chunk, not the whole table)."""
    SQLiteLedger(path).close()  # the current schema
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    params = {
        "step": days * 86_400_000_000 // n_rows,
        "epoch": int(START.timestamp()),
        "teams": teams,
        "skills": skills,
    }
    top = 0
    for first in range(0, n_rows, FILL_CHUNK):
        last = min(first + FILL_CHUNK, n_rows) - 1
        conn.execute("BEGIN")
        conn.execute(_FILL, {**params, "first": first, "last": last})
        (new_top,) = conn.execute("SELECT MAX(id) FROM attempts").fetchone()
        for statement in rollup.add_rows_statements("sqlite"):
            conn.execute(statement, (top, new_top))
        conn.execute("COMMIT")
        top = new_top
    conn.close()


def add_labels(path: Path, n_labels: int) -> None:
    conn = sqlite3.connect(path)
    (finals,) = conn.execute("SELECT COUNT(*) FROM attempts WHERE final = 1").fetchone()
    every = max(1, finals // n_labels)
    conn.execute(
        "INSERT INTO labels SELECT route_id, (id % 3 > 0), (id % 10) / 10.0, 'bench', "
        f"'2026-12-01T00:00:00.000000Z' FROM attempts WHERE final = 1 AND id % {every} = 0 "
        f"LIMIT {n_labels}"
    )
    conn.commit()
    conn.close()


def _best(action: Callable[[], Any], repeat: int = 3) -> float:  # Any: what action returns
    return min(_timed(action) for _ in range(repeat))


def baseline_s(ledger: SQLiteLedger) -> float:
    sql = "SELECT team, COUNT(*), SUM(cost_ticks) FROM attempts GROUP BY team"
    return _best(lambda: ledger.query(sql), repeat=1)


def _progress(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def bench_reports(folder: Path, n_rows: int, *, listing: bool = True) -> dict[str, float]:
    out: dict[str, float] = {}
    few, wide = folder / f"few-{n_rows}.db", folder / f"wide-{n_rows}.db"
    out["fill_few_s"] = _timed(lambda: fill(few, n_rows, 5, 6, 28))
    _progress(f"{n_rows:,} rows: filled in {out['fill_few_s']:.0f} s")
    with SQLiteLedger(few, read_only=True) as ledger:
        out["baseline_few_s"] = baseline_s(ledger)
        out["few_s"] = _best(lambda: report.build(ledger))
        since, until = START + timedelta(days=2, hours=12), START + timedelta(days=20, hours=12)
        out["partial_s"] = _best(lambda: report.build(ledger, since=since, until=until))
        by = ("tool", "tag:project", "tag:user")
        out["agents_s"] = _best(lambda: report.build(ledger, by=by))
        if listing:  # 2,000,000 groups at 10M rows: a listing, timed at the first size only
            out["task_s"] = _best(lambda: report.build(ledger, by=("task",)), repeat=1)
        out["where_s"] = _best(lambda: report.build(ledger, where={"tag:project": "p-3"}))
    add_labels(few, LABELS)
    with SQLiteLedger(few, read_only=True) as ledger:
        out["labels_s"] = _best(lambda: report.build(ledger))
    _progress(f"{n_rows:,} rows: {out}")
    few.unlink()
    out["fill_wide_s"] = _timed(lambda: fill(wide, n_rows, 50, 934, 365))
    with SQLiteLedger(wide, read_only=True) as ledger:
        out["baseline_wide_s"] = baseline_s(ledger)
        out["wide_s"] = _best(lambda: report.build(ledger))
    wide.unlink()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the report ledgers")
    parser.add_argument("--big", action="store_true", help="also report over 10,000,000 rows")
    parser.add_argument("--writes", type=int, default=200_000, help="rows of each write round")
    parser.add_argument("--rounds", type=int, default=3, help="write rounds (median is shown)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {}  # Any: numbers by name, per report size
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        figures["writes"] = bench_writes(folder, args.writes, args.rounds)
        sizes = [args.rows, *([10_000_000] if args.big else [])]
        figures["reports"] = {
            str(n): bench_reports(folder, n, listing=n == sizes[0]) for n in sizes
        }
    if args.json:
        sys.stdout.write(json.dumps(figures, indent=2) + "\n")
        return 0
    w = figures["writes"]
    lines = [
        f"SQLite writes, {args.writes:,} rows, median of {args.rounds} rounds:",
        f"  plain executemany (baseline)   {w['plain_rows_per_s']:>10,.0f} rows/s",
        f"  convert + executemany          {w['convert_rows_per_s']:>10,.0f} rows/s "
        f"({w['convert_vs_plain']:.2f}x baseline)",
        f"  record_many, batches of 1,000  {w['record_many_rows_per_s']:>10,.0f} rows/s "
        f"({w['record_many_vs_plain']:.2f}x baseline, "
        f"{w['record_many_vs_convert']:.2f}x convert+executemany)",
        f"  record, one at a time + flush  {w['record_rows_per_s']:>10,.0f} rows/s "
        f"({w['record_vs_plain']:.2f}x baseline)",
    ]
    for n, r in figures["reports"].items():
        lines.append(
            f"report.build over {int(n):,} rows (fill {r['fill_few_s']:.0f} s + "
            f"{r['fill_wide_s']:.0f} s), seconds (x the plain GROUP BY of the same ledger):"
        )
        for name, label, base in (
            ("few", "few keys, no labels", "baseline_few_s"),
            ("labels", f"few keys, {LABELS:,} labels", "baseline_few_s"),
            ("partial", "window cutting partial days", "baseline_few_s"),
            ("agents", "by tool, tag:project, tag:user", "baseline_few_s"),
            ("task", "by task (a group per 5 rows)", "baseline_few_s"),
            ("where", "where tag:project=p-3", "baseline_few_s"),
            ("wide", "50 teams x 934 skills x 365 days", "baseline_wide_s"),
        ):
            if name + "_s" in r:
                lines.append(
                    f"  {label:<40} {r[name + '_s']:>7.2f} s  ({r[name + '_s'] / r[base]:.2f}x)"
                )
        lines.append(
            f"  plain GROUP BY team (baseline)           {r['baseline_few_s']:>7.2f} s (few), "
            f"{r['baseline_wide_s']:.2f} s (wide)"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
