"""Calibration from production: labelled ledger routes -> the same examples ``calibrate`` fits on.

A route is a *pair* when it holds an answer of the weak tier and one of the strong tier, both
labelled. The shadow sample (``Router(shadow_rate=...)``) is a seeded hash of the request id,
drawn before the answer is known, so the routes in it are an unbiased sample of all traffic:

* **shadowed**: in the sample, the worker's answer was accepted and the router also called the
  next tier (a ``shadow`` row);
* **sampled**: in the sample, the worker's answer was rejected and the strong tier answered.
  Recognised when the sampling settings are known (``sample``: the policy's ``calibration``
  section), since the ledger does not mark them;
* **escalated** (only with ``include_escalated``): rejected routes outside the sample. These are
  only the routes the current policy already doubted, a biased sample: they overstate how often
  the worker is wrong.

By default only the sample is used (shadowed and sampled routes).

Labels: ``paxis label`` with a ``tier`` (or ``attempt_index``) column labels one attempt's answer
(table ``attempt_labels``); a route's label (table ``labels``) means its final attempt.

Signals of the weak attempt: its recorded verifier verdicts (passed, score), tokens, finish
reason and cost; with the prompt and answer text (``SQLiteLedger(store_content=True)``) the
learned scorer is fitted as from a dataset file; without text, a threshold on the verifiers'
lowest score (``confidence_below``).

Example:
    >>> import pathlib, tempfile
    >>> from paxis_router.ledger.sqlite import SQLiteLedger
    >>> ledger = SQLiteLedger(pathlib.Path(tempfile.mkdtemp()) / "l.db")
    >>> found = load_pairs(ledger, weak="local:w", strong="frontier:f")
    >>> found.examples, found.tiers_seen
    ([], ())
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from paxis_router.calibration.datasets import Example
from paxis_router.errors import ConfigError, LedgerError
from paxis_router.ledger.sqlite import attempts_filter
from paxis_router.types import Decision
from paxis_router.workers.replay import Outcome

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime
    from decimal import Decimal
    from pathlib import Path

    from paxis_router.calibration.thresholds import Calibration
    from paxis_router.ledger.postgres import PostgresLedger
    from paxis_router.ledger.sqlite import SQLiteLedger
    from paxis_router.shadow import ShadowSampling
    from paxis_router.types import CallRecord, Verdict

    Ledger = SQLiteLedger | PostgresLedger

MIN_PAIRS = 30
Label = tuple[bool | None, float | None]


@dataclass(frozen=True)
class LedgerPairs:
    """The labelled pairs found in a ledger, and what was seen on the way (for error messages).

    ``examples[i].outcomes`` is keyed by the ``weak`` and ``strong`` names asked for;
    ``verdicts[i]`` are the weak attempt's recorded verdicts; ``has_text`` is True when every
    pair has its prompt and the worker's answer text.
    """

    examples: list[Example]
    verdicts: list[tuple[Verdict, ...]]
    weak_model: str = ""
    strong_model: str = ""
    has_text: bool = False
    tiers_seen: tuple[str, ...] = ()
    shadowed_routes: int = 0
    sampled_routes: int = 0
    escalated_routes: int = 0
    unlabelled_routes: int = 0
    finish_reasons: Mapping[str, int] = field(default_factory=dict)


def load_pairs(
    ledger: Ledger,
    *,
    weak: str,
    strong: str,
    since: datetime | None = None,
    until: datetime | None = None,
    skill: str | None = None,
    team: str | None = None,
    include_escalated: bool = False,
    sample: ShadowSampling | None = None,
) -> LedgerPairs:
    """Every route in [since, until) (of ``team``, having selected ``skill``) with a labelled
    answer of ``weak`` and of ``strong`` (tier or model names) in the shadow sample (shadowed,
    and escalated ones ``sample`` draws), plus other escalated ones with ``include_escalated``."""
    if weak == strong:
        raise ConfigError(f"--weak and --strong are both {weak!r}: name two different tiers")
    by_route: dict[str, list[CallRecord]] = defaultdict(list)
    tiers: set[str] = set()
    for row in ledger.rows(since=since, until=until):
        if team is not None and row.team != team:
            continue
        if skill is not None and skill not in (row.skill or "").split(","):
            continue
        tiers.update((row.tier, row.model))
        by_route[row.route_id].append(row)
    route_labels, attempt_labels = _labels(ledger, since, until)
    texts = _texts(ledger, since, until)
    examples: list[Example] = []
    verdicts: list[tuple[Verdict, ...]] = []
    models = {"weak": "", "strong": ""}
    shadowed = sampled = escalated = unlabelled = 0
    finish: dict[str, int] = defaultdict(int)
    all_text = True
    for route_id, rows in by_route.items():
        pair = _pair(rows, weak, strong, include_escalated, sample)
        if pair is None:
            continue
        low, high, kind = pair
        low_label = _label_of(low, route_labels, attempt_labels)
        high_label = _label_of(high, route_labels, attempt_labels)
        if low_label is None or high_label is None:
            unlabelled += 1
            continue
        shadowed += kind == "shadowed"
        sampled += kind == "sampled"
        escalated += kind == "escalated"
        prompt, low_text = texts.get((route_id, low.attempt_index), ("", None))
        high_text = texts.get((route_id, high.attempt_index), ("", None))[1]
        all_text = all_text and bool(prompt) and low_text is not None
        models = {"weak": models["weak"] or low.model, "strong": models["strong"] or high.model}
        finish[low.finish_reason or "(none)"] += 1
        examples.append(
            Example(
                route_id,
                prompt,
                {
                    weak: _outcome(low, low_text, low_label),
                    strong: _outcome(high, high_text, high_label),
                },
                low.team or "",
            )
        )
        verdicts.append(low.verdicts)
    return LedgerPairs(
        examples=examples,
        verdicts=verdicts,
        weak_model=models["weak"],
        strong_model=models["strong"],
        has_text=bool(examples) and all_text,
        tiers_seen=tuple(sorted(tiers)),
        shadowed_routes=shadowed,
        sampled_routes=sampled,
        escalated_routes=escalated,
        unlabelled_routes=unlabelled,
        finish_reasons=dict(finish),
    )


def _matches(row: CallRecord, name: str) -> bool:
    return name in (row.tier, row.model)


def _pair(
    rows: Sequence[CallRecord],
    weak: str,
    strong: str,
    include_escalated: bool,
    sample: ShadowSampling | None,
) -> tuple[CallRecord, CallRecord, str] | None:
    """(weak attempt, strong attempt, "shadowed" | "sampled" | "escalated") of one route."""
    low = next((r for r in rows if _matches(r, weak) and r.error is None), None)
    high = next((r for r in rows if _matches(r, strong) and r.error is None and r is not low), None)
    if low is None or high is None or high.attempt_index <= low.attempt_index:
        return None
    if low.decision is Decision.ACCEPT and high.decision is Decision.SHADOW:
        return low, high, "shadowed"
    if low.decision is not Decision.ESCALATE or not high.final:
        return None
    if sample is not None and sample.sampled(low.request_id):
        return low, high, "sampled"
    return (low, high, "escalated") if include_escalated else None


def _label_of(
    row: CallRecord,
    route_labels: Mapping[str, Label],
    attempt_labels: Mapping[tuple[str, int], Label],
) -> Label | None:
    """The attempt's own label, else the route's label when the attempt ended the route."""
    own = attempt_labels.get((row.route_id, row.attempt_index))
    if own is not None:
        return own
    return route_labels.get(row.route_id) if row.final else None


def _outcome(row: CallRecord, text: str | None, label: Label) -> Outcome:
    correct, score = label
    return Outcome(
        response=text or "",
        correct=correct,
        score=score,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cost_usd=row.cost_usd,
    )


def _window(
    since: datetime | None, until: datetime | None
) -> tuple[str, list[Any]]:  # Any: DB-API parameters
    where, params = attempts_filter(since=since, until=until, route_id=None)
    return f"route_id IN (SELECT route_id FROM attempts{where})", params


def _labels(
    ledger: Ledger, since: datetime | None, until: datetime | None
) -> tuple[dict[str, Label], dict[tuple[str, int], Label]]:
    inside, params = _window(since, until)
    routes = {
        str(r): (None if c is None else bool(c), None if s is None else float(s))
        for r, c, s in ledger.query(
            f"SELECT route_id, correct, score FROM labels WHERE {inside}", params
        )
    }
    try:
        rows = ledger.query(
            f"SELECT route_id, attempt_index, correct, score FROM attempt_labels WHERE {inside}",
            params,
        )
    except LedgerError as exc:  # pragma: no cover - every opened ledger is migrated
        raise ConfigError(f"the ledger has no attempt labels table: {exc}") from exc
    attempts = {
        (str(r), int(i)): (None if c is None else bool(c), None if s is None else float(s))
        for r, i, c, s in rows
    }
    return routes, attempts


def _texts(
    ledger: Ledger, since: datetime | None, until: datetime | None
) -> dict[tuple[str, int], tuple[str, str | None]]:
    """(route, attempt) -> (the user's query, the answer) where the ledger stored them (SQLite
    with ``store_content=True``); empty otherwise."""
    if ledger.dialect != "sqlite":
        return {}
    inside, params = _window(since, until)
    rows = ledger.query(
        f"SELECT route_id, attempt_index, messages, content FROM contents WHERE {inside}", params
    )
    out: dict[tuple[str, int], tuple[str, str | None]] = {}
    for route_id, index, messages, content in rows:
        out[str(route_id), int(index)] = (_query(messages), content)
    return out


def _query(messages: str | None) -> str:
    """The last user message of a stored prompt (what the Router's scorer reads)."""
    if not messages:
        return ""
    turns = json.loads(messages)
    for turn in reversed(turns):
        if turn.get("role") == "user":
            return str(turn.get("content") or "")
    return str(turns[-1].get("content") or "") if turns else ""


# --- fitting --------------------------------------------------------------------------------------


def too_few(found: LedgerPairs, needed: int, *, weak: str, strong: str, escalated: bool) -> str:
    """The error message for a ledger with too few labelled pairs."""
    kinds = "shadow-sampled or escalated" if escalated else "shadow-sampled"
    text = (
        f"found {len(found.examples)} labelled {kinds} route(s) with answers of both {weak!r} and "
        f"{strong!r}; calibration needs at least {needed}"
    )
    if found.unlabelled_routes:
        text += f" ({found.unlabelled_routes} more have both answers but not both labels)"
    return (
        text + ". Enable shadow sampling (policy `calibration: {shadow_rate: 0.05}` or "
        "Router(shadow_rate=0.05)) and label both tiers' answers (`paxis label` with a tier column)"
        + ("" if escalated else ", or add --include-escalated (a biased sample)")
    )


def check_tiers(found: LedgerPairs, weak: str, strong: str) -> None:
    """ConfigError naming the tiers and models seen when ``weak`` or ``strong`` is not one."""
    for name in (weak, strong):
        if name not in found.tiers_seen:
            seen = ", ".join(found.tiers_seen) or "none"
            raise ConfigError(
                f"no attempts of tier or model {name!r} in the ledger (in the window and filters "
                f"given); tiers and models seen: {seen}"
            )


def fit(
    found: LedgerPairs,
    *,
    weak: str,
    strong: str,
    target_quality: float | None,
    max_usd_per_1k: Decimal | None,
    max_escalation: float | None,
    use_verdicts: bool,
    folds: int = 5,
    seed: int = 0,
) -> Calibration:
    """The learned scorer (text recorded) or a ``confidence_below`` threshold (no text), chosen
    on cross-fitted scores exactly as for a dataset file. ``use_verdicts``: the recorded verdicts
    become scorer features (the written policy must run the same verifiers)."""
    from paxis_router.calibration.thresholds import calibrate, calibrate_scores, example_costs

    examples = found.examples
    notes: list[str] = [
        f"pairs: {found.shadowed_routes} shadowed, {found.sampled_routes} sampled escalated, "
        f"{found.escalated_routes} other escalated route(s)"
    ]
    if found.has_text:
        cal = calibrate(
            examples,
            weak=weak,
            strong=strong,
            target_quality=target_quality,
            max_usd_per_1k=max_usd_per_1k,
            max_escalation=max_escalation,
            folds=folds,
            seed=seed,
            verdicts=found.verdicts if use_verdicts else [() for _ in examples],
        )
    else:
        confidence = [_confidence(v) for v in found.verdicts]
        if all(c is None for c in confidence):
            raise ConfigError(
                "the ledger holds no prompt or answer text (open it with "
                "SQLiteLedger(store_content=True)) and no verifier scored the worker's answers: "
                "nothing to fit an escalation policy on"
            )
        from paxis_router.calibration.datasets import quality

        base = calibrate_scores(
            [2.0 if c is None else c for c in confidence],
            [quality(e.outcomes[weak]) for e in examples],
            [quality(e.outcomes[strong]) for e in examples],
            target_quality=target_quality,
            max_usd_per_1k=max_usd_per_1k,
            max_escalation=max_escalation,
            weak_cost=example_costs(examples, weak, None),
            strong_cost=example_costs(examples, strong, None),
        )
        point = replace(base.point, threshold=min(1.0, max(0.0, base.point.threshold)))
        cal = replace(base, point=point, weak=weak, strong=strong)
        notes.append("no answer text recorded: a threshold on the verifiers' lowest score")
    return replace(
        cal,
        weak=found.weak_model or weak,
        strong=found.strong_model or strong,
        notes=(*notes, *cal.notes),
    )


def _confidence(verdicts: Sequence[Verdict]) -> float | None:
    """What ``RouteState.confidence`` read from the verdicts: the lowest verifier score."""
    scores = [v.score for v in verdicts if v.score is not None]
    return min(scores) if scores else None


def policy_from_base(
    document: Mapping[str, Any], calibration: Calibration
) -> dict[str, Any]:  # Any: YAML
    """The base policy document with its ``policy.escalate_when`` replaced by the fitted one."""
    policy = dict(document.get("policy") or {})
    policy["escalate_when"] = calibration.escalate_when()
    return {**document, "policy": policy}


def sampling_of(document: Mapping[str, Any]) -> ShadowSampling | None:  # Any: YAML
    """The shadow sampling a policy document's ``calibration`` section sets, if any."""
    from paxis_router.shadow import ShadowSampling

    section = document.get("calibration")
    if not isinstance(section, dict) or not section.get("shadow_rate"):
        return None
    return ShadowSampling(float(section["shadow_rate"]), int(section.get("shadow_seed", 0)))


def read_policy(base: Path) -> dict[str, Any]:  # Any: YAML
    """The base policy file as a mapping (ConfigError naming the file when unreadable)."""
    import yaml

    try:
        document = yaml.safe_load(base.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the base policy: {exc}", source=str(base)) from exc
    if not isinstance(document, dict):
        raise ConfigError("a policy file is a mapping", source=str(base))
    return document
