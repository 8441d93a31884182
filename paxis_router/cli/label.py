"""``paxis label FILE.csv``: join ground-truth quality labels that arrived later to routes.

The CSV has a header with ``route_id`` or ``request_id`` (your own id, as sent in
``ChatRequest.request_id``), and ``correct`` (true/false, 1/0, yes/no) and/or ``score`` (a
number); ``source`` is optional (default: the file's name). A later label replaces an earlier one.
A label grades the route's answer (its final attempt) unless the row names one attempt: an optional
``tier`` column (a tier or model name, e.g. the worker's answer of an escalated route, or the
``shadow`` call's answer) or ``attempt_index`` column; ``paxis calibrate --ledger`` needs both
tiers' answers graded. Rows whose id (or tier) matches no route are listed and the exit status is
1; the others are still written.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import TYPE_CHECKING

from paxis_router.cli._output import emit, plain
from paxis_router.errors import ConfigError

if TYPE_CHECKING:
    from paxis_router.ledger.postgres import PostgresLedger
    from paxis_router.ledger.sqlite import SQLiteLedger

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``paxis label``."""
    parser = sub.add_parser(
        "label",
        help="attach ground-truth labels (CSV) to routes in the ledger",
        description=plain((__doc__ or "").split("\n\n", 1)[1]),
        epilog="examples:\n  paxis label labels.csv\n"
        "  paxis label labels.csv --ledger postgresql://paxis@db/ledger",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "file", type=Path, help="CSV: route_id|request_id, correct and/or score, [tier], [source]"
    )
    parser.add_argument(
        "--ledger",
        default="paxis-ledger.db",
        help="SQLite path or postgresql:// URL (default: paxis-ledger.db)",
    )
    parser.add_argument("--source", default=None, help="label source (default: the file name)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``paxis label``."""
    from paxis_router.ledger import open_ledger

    labels = read_labels(args.file, default_source=args.source or args.file.name)
    location = str(args.ledger)
    if "://" not in location and not Path(location).exists():
        raise ConfigError(f"no ledger at {location}; give --ledger PATH or a postgresql:// URL")
    ledger = open_ledger(location)
    written, missing = 0, []
    try:
        for id_column, key, correct, score, source, tier, index in labels:
            routes = _routes(ledger, id_column, key)
            if not routes:
                missing.append(key)
            for route_id in routes:
                targets: list[int | None] = [None]
                if tier is not None or index is not None:
                    targets = list(_attempts(ledger, route_id, tier, index))
                    if not targets:
                        missing.append(f"{key} ({tier if tier is not None else index})")
                for target in targets:
                    ledger.label(
                        route_id, correct=correct, score=score, source=source, attempt_index=target
                    )
                    written += 1
    finally:
        ledger.close()
    emit(f"labelled {written} route(s) from {args.file}")
    if missing:
        emit(f"{len(missing)} id(s) match no route in the ledger: {', '.join(missing[:20])}")
        return 1
    return 0


# (id column, id, correct, score, source, tier, attempt_index)
Label = tuple[str, str, bool | None, float | None, str, str | None, int | None]


def read_labels(path: Path, *, default_source: str) -> list[Label]:
    """Validate the whole file first: ConfigError names the file and line of a bad row."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
            header = rows[0].keys() if rows else set()
    except OSError as exc:
        raise ConfigError(f"cannot read labels: {exc}", source=str(path)) from exc
    id_column = "route_id" if "route_id" in header else "request_id"
    if rows and id_column not in header:
        raise ConfigError("the header needs a route_id or request_id column", source=str(path))
    if rows and not {"correct", "score"} & set(header):
        raise ConfigError("the header needs a correct and/or score column", source=str(path))
    out: list[Label] = []
    for line, row in enumerate(rows, start=2):
        where = f"line {line}"
        key = (row.get(id_column) or "").strip()
        if not key:
            raise ConfigError(f"empty {id_column}", source=str(path), field=where)
        correct = _bool(row.get("correct"), str(path), where)
        score = _float(row.get("score"), str(path), where)
        if correct is None and score is None:
            raise ConfigError("give correct or score", source=str(path), field=where)
        source = (row.get("source") or "").strip() or default_source
        tier = (row.get("tier") or "").strip() or None
        index = _index(row.get("attempt_index"), str(path), where)
        if tier is not None and index is not None:
            raise ConfigError("give tier or attempt_index, not both", source=str(path), field=where)
        out.append((id_column, key, correct, score, source, tier, index))
    return out


def _routes(ledger: SQLiteLedger | PostgresLedger, id_column: str, key: str) -> list[str]:
    column = "route_id" if id_column == "route_id" else "request_id"
    rows = ledger.query(f"SELECT DISTINCT route_id FROM attempts WHERE {column} = ?", (key,))
    return sorted(str(r[0]) for r in rows)


def _attempts(
    ledger: SQLiteLedger | PostgresLedger, route_id: str, tier: str | None, index: int | None
) -> list[int]:
    """The attempt indexes of ``route_id`` on ``tier`` (its name or model), or ``index``."""
    if tier is not None:
        sql = "SELECT attempt_index FROM attempts WHERE route_id = ? AND (tier = ? OR model = ?)"
        params: tuple[str | int, ...] = (route_id, tier, tier)
    else:
        assert index is not None
        sql = "SELECT attempt_index FROM attempts WHERE route_id = ? AND attempt_index = ?"
        params = (route_id, index)
    return sorted(int(r[0]) for r in ledger.query(sql + " ORDER BY attempt_index", params))


def _index(value: str | None, source: str, where: str) -> int | None:
    text = (value or "").strip()
    if not text:
        return None
    if not text.isdigit():
        message = f"attempt_index must be a whole number >= 0, got {value!r}"
        raise ConfigError(message, source=source, field=where)
    return int(text)


def _bool(value: str | None, source: str, where: str) -> bool | None:
    text = (value or "").strip().lower()
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"correct must be true or false, got {value!r}", source=source, field=where)


def _float(value: str | None, source: str, where: str) -> float | None:
    text = (value or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError as exc:
        message = f"score must be a number, got {value!r}"
        raise ConfigError(message, source=source, field=where) from exc
