"""Ledger -> SFT / DPO / distillation JSONL for the worker's next fine-tune.

The ledger holds what a worker needs to get better: answers that passed verification (targets)
and worker answers that failed (negatives). Text is in the ledger only where it was switched on
(``SQLiteLedger(path, store_content=True)``); ``export`` reads it back and writes:

========  ==============================================================================
kind      one JSON object per line
========  ==============================================================================
``sft``   ``{"messages": [...prompt, {"role": "assistant", "content": <accepted answer>}]}``
          (TRL ``SFTTrainer`` and OpenAI-style chat fine-tuning both take it)
``dpo``   ``{"prompt": [...], "chosen": [{assistant: accepted}], "rejected": [{assistant:
          the worker's failed answer of the same route}]}`` — only routes that have both
``gkd``   ``{"prompt": [...]}`` — prompts only, for on-policy distillation (TRL GKD / GRPO)
========  ==============================================================================

Rules, in order: a route needs stored text; a route labelled incorrect is dropped; its accepted
answer must have passed at least one verifier and failed none ("verified"); PII is redacted with
the gate's detector (one placeholder mapping per route, so a prompt and its answer agree); a
route whose text cannot be redacted safely is dropped; duplicates by normalised prompt keep the
first; ``eval_percent`` of the prompts go to ``eval.jsonl`` by a hash of the normalised prompt
(deterministic: the same prompt always lands on the same side). ``data_card.json`` and
``data_card.md`` say what came out: counts per skill, the date range, what the routes cost.

Example:
    >>> import tempfile, pathlib
    >>> from paxis_router.ledger.sqlite import SQLiteLedger
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> ledger = SQLiteLedger(folder / "paxis.db", store_content=True)
    >>> card = export(ledger, folder / "sft", kind="sft")
    >>> card.rows_train, card.rows_eval
    (0, 0)
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from paxis_router.errors import ConfigError, LedgerError, RedactionError
from paxis_router.governance.pii import BuiltinPiiDetector, PiiDetector, Redactor
from paxis_router.ledger.sqlite import format_ts
from paxis_router.training.card import render_card_markdown
from paxis_router.types import CallRecord, Decision, Message

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import datetime

    from paxis_router.ledger.sqlite import SQLiteLedger

logger = logging.getLogger(__name__)

DistillKind = Literal["sft", "dpo", "gkd"]
KINDS: tuple[str, ...] = get_args(DistillKind)
NO_SKILL = "(none)"

JsonRow = dict[str, Any]  # Any: one JSONL row (free-form JSON)


@dataclass(frozen=True, slots=True)
class Example:
    """One exported row: its JSON, the route it came from, its skill and its split."""

    row: JsonRow
    route_id: str
    skill: str
    split: Literal["train", "eval"]


@dataclass(frozen=True)
class DataCard:
    """What an export holds: counts per skill and split, the date range, what it cost.

    ``cost_usd`` sums every attempt of the exported routes (rejected ones included);
    ``unpriced_attempts`` counts attempts whose price was unknown (left out of the sum).
    ``dropped`` counts routes left out, by reason.
    """

    kind: str
    rows_train: int
    rows_eval: int
    per_skill: Mapping[str, Mapping[str, int]]
    first_ts: datetime | None
    last_ts: datetime | None
    cost_usd: Decimal
    unpriced_attempts: int
    dropped: Mapping[str, int]
    eval_percent: int
    skill: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    redacted_values: int = 0
    files: tuple[str, ...] = field(default=())

    def to_json(self) -> JsonRow:
        """The card as JSON-ready data (money as a string, times as ISO UTC)."""
        return {
            "kind": self.kind,
            "rows": {"train": self.rows_train, "eval": self.rows_eval},
            "per_skill": {k: dict(v) for k, v in sorted(self.per_skill.items())},
            "date_range": {"first": _iso(self.first_ts), "last": _iso(self.last_ts)},
            "cost_usd": str(self.cost_usd),
            "unpriced_attempts": self.unpriced_attempts,
            "dropped": dict(sorted(self.dropped.items())),
            "eval_percent": self.eval_percent,
            "filters": {"skill": self.skill, "since": _iso(self.since), "until": _iso(self.until)},
            "redacted_values": self.redacted_values,
            "files": list(self.files),
        }


def read_records(
    ledger: SQLiteLedger, *, since: datetime | None = None, until: datetime | None = None
) -> list[CallRecord]:
    """The ledger's attempts in [since, until) with their stored prompt and answer text.

    Raises LedgerError when the ledger has no ``contents`` table (not a SQLite ledger of schema
    3 or later).
    """
    from dataclasses import replace

    records = ledger.rows(since=since, until=until)
    clauses: list[str] = []
    params: list[str] = []
    if since is not None:
        clauses.append("a.ts >= ?")
        params.append(format_ts(since))
    if until is not None:
        clauses.append("a.ts < ?")
        params.append(format_ts(until))
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = (
        "SELECT c.route_id, c.attempt_index, c.messages, c.content FROM contents c "
        "JOIN attempts a ON a.route_id = c.route_id AND a.attempt_index = c.attempt_index" + where
    )
    try:
        stored = ledger.query(sql, params)
    except LedgerError as exc:
        raise LedgerError(
            f"ledger {getattr(ledger, 'path', '?')} keeps no prompt/answer text ({exc}); "
            "record with SQLiteLedger(path, store_content=True) to export training data"
        ) from exc
    texts = {(r[0], int(r[1])): (r[2], r[3]) for r in stored}
    out: list[CallRecord] = []
    for record in records:
        text = texts.get((record.route_id, record.attempt_index))
        if text is None:
            out.append(record)
            continue
        messages_json, content = text
        messages = (
            None
            if messages_json is None
            else tuple(Message.model_validate(m) for m in json.loads(messages_json))
        )
        out.append(replace(record, messages=messages, content=content))
    return out


def read_labels(ledger: SQLiteLedger) -> dict[str, bool]:
    """route_id -> correct, for the routes labelled correct or incorrect."""
    rows = ledger.query("SELECT route_id, correct FROM labels WHERE correct IS NOT NULL")
    return {str(r[0]): bool(r[1]) for r in rows}


def build_examples(
    records: Iterable[CallRecord],
    kind: DistillKind,
    *,
    skill: str | None = None,
    labels: Mapping[str, bool] | None = None,
    eval_percent: int = 10,
    detector: PiiDetector | None = None,
) -> tuple[list[Example], DataCard]:
    """Turn ledger rows (with their text) into training rows and their data card. Pure.

    Args:
        records: attempts, any order; grouped by route here.
        kind: ``"sft"``, ``"dpo"`` or ``"gkd"``.
        skill: keep only routes that selected this skill id.
        labels: route_id -> correct; a route labelled incorrect is dropped.
        eval_percent: the share of prompts (0-100) that go to the eval split.
        detector: the PII detector (default: the gate's built-in one).
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown export kind {kind!r}; use one of: {', '.join(KINDS)}")
    if not 0 <= eval_percent <= 100:
        raise ConfigError(f"eval_percent must be within 0..100, got {eval_percent}")
    detector = detector or BuiltinPiiDetector()
    labels = labels or {}
    routes: dict[str, list[CallRecord]] = defaultdict(list)
    for record in records:
        routes[record.route_id].append(record)

    examples: list[Example] = []
    dropped: Counter[str] = Counter()
    seen: set[str] = set()
    cost = Decimal(0)
    unpriced = 0
    redacted = 0
    stamps: list[datetime] = []
    for attempts in routes.values():
        attempts.sort(key=lambda r: r.attempt_index)
    # Oldest route first, whatever the input order: a duplicate keeps its first occurrence.
    ordered = sorted(routes.items(), key=lambda item: (item[1][0].ts, item[0]))
    for route_id, attempts in ordered:
        skills = _skills_of(attempts[0])
        if skill is not None and skill not in skills:
            continue
        built = _route_row(attempts, kind)
        if isinstance(built, str):
            dropped[built] += 1
            continue
        if labels.get(route_id) is False:
            dropped["labelled_incorrect"] += 1
            continue
        redactor = Redactor(detector=detector)
        try:
            row = _redact_row(built, redactor)
        except RedactionError as exc:
            logger.warning("route %s left out: cannot redact its text: %s", route_id, exc)
            dropped["unredactable"] += 1
            continue
        key = _normalised_prompt(row)
        if key in seen:
            dropped["duplicate"] += 1
            continue
        seen.add(key)
        redacted += len(redactor.placeholders)
        split: Literal["train", "eval"] = "eval" if _in_eval(key, eval_percent) else "train"
        examples.append(Example(row, route_id, skills[0] if skills else NO_SKILL, split))
        for attempt in attempts:
            stamps.append(attempt.ts)
            if attempt.cost_usd is None:
                unpriced += 1
            else:
                cost += attempt.cost_usd
    per_skill: dict[str, dict[str, int]] = {}
    for example in examples:
        counts = per_skill.setdefault(example.skill, {"train": 0, "eval": 0})
        counts[example.split] += 1
    card = DataCard(
        kind=kind,
        rows_train=sum(e.split == "train" for e in examples),
        rows_eval=sum(e.split == "eval" for e in examples),
        per_skill=per_skill,
        first_ts=min(stamps) if stamps else None,
        last_ts=max(stamps) if stamps else None,
        cost_usd=cost,
        unpriced_attempts=unpriced,
        dropped=dict(dropped),
        eval_percent=eval_percent,
        skill=skill,
        redacted_values=redacted,
    )
    return examples, card


def export(
    ledger: SQLiteLedger,
    out_dir: str | Path,
    *,
    kind: DistillKind,
    skill: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    eval_percent: int = 10,
    detector: PiiDetector | None = None,
) -> DataCard:
    """Write ``train.jsonl``, ``eval.jsonl``, ``data_card.json`` and ``data_card.md`` to
    ``out_dir`` (created) from the ledger's verified routes in [since, until).

    Example:
        ``export(SQLiteLedger("paxis-ledger.db"), "data/sft", kind="sft", skill="invoices")``
    """
    from dataclasses import replace

    records = read_records(ledger, since=since, until=until)
    examples, card = build_examples(
        records,
        kind,
        skill=skill,
        labels=read_labels(ledger),
        eval_percent=eval_percent,
        detector=detector,
    )
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    files = ("train.jsonl", "eval.jsonl", "data_card.json", "data_card.md")
    card = replace(card, since=since, until=until, files=files)
    for split in ("train", "eval"):
        lines = [json.dumps(e.row, ensure_ascii=False) + "\n" for e in examples if e.split == split]
        (folder / f"{split}.jsonl").write_text("".join(lines), encoding="utf-8")
    (folder / "data_card.json").write_text(
        json.dumps(card.to_json(), indent=2) + "\n", encoding="utf-8"
    )
    (folder / "data_card.md").write_text(render_card_markdown(card.to_json()), encoding="utf-8")
    logger.info("exported %d %s rows to %s", card.rows_train + card.rows_eval, kind, folder)
    return card


# --- helpers ------------------------------------------------------------------------------------


def _skills_of(record: CallRecord) -> list[str]:
    return [s for s in (record.skill or "").split(",") if s]


def _verified(record: CallRecord) -> bool:
    return (
        record.decision is Decision.ACCEPT
        and record.passed
        and bool(record.verdicts)
        and all(v.passed for v in record.verdicts)
        and record.content is not None
        and record.messages is not None
    )


def _messages_json(messages: Sequence[Message]) -> list[JsonRow]:
    return [m.model_dump(exclude_none=True) for m in messages]


def _assistant(text: str) -> list[JsonRow]:
    return [{"role": "assistant", "content": text}]


def _route_row(attempts: Sequence[CallRecord], kind: DistillKind) -> JsonRow | str:
    """The row one route gives, or the reason it gives none."""
    if all(a.messages is None and a.content is None for a in attempts):
        return "no_text"
    accepted = [a for a in attempts if _verified(a)]
    if not accepted:
        return "unverified"
    target = accepted[-1]
    assert target.messages is not None and target.content is not None
    prompt = _messages_json(target.messages)
    if kind == "sft":
        return {"messages": [*prompt, *_assistant(target.content)]}
    if kind == "gkd":
        return {"prompt": prompt}
    failed = [
        a
        for a in attempts
        if a.attempt_index < target.attempt_index and a.content is not None and not a.passed
    ]
    if not failed:
        return "no_rejected_answer"
    rejected = failed[0]  # the cheapest tier's failed answer: the worker's
    assert rejected.content is not None
    return {
        "prompt": prompt,
        "chosen": _assistant(target.content),
        "rejected": _assistant(rejected.content),
    }


def _redact_row(row: JsonRow, redactor: Redactor) -> JsonRow:
    """The row with every message's content redacted through one mapping."""
    return {
        key: [{**m, "content": redactor.redact(m["content"])} for m in messages]
        for key, messages in row.items()
    }


def _normalised_prompt(row: JsonRow) -> str:
    """The row's prompt (all turns but a final assistant answer), case- and space-folded."""
    messages = row["prompt"] if "prompt" in row else row["messages"][:-1]
    return "\n".join(f"{m['role']}: {' '.join(m['content'].split()).lower()}" for m in messages)


def _in_eval(key: str, eval_percent: int) -> bool:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 100 < eval_percent


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else format_ts(ts)
