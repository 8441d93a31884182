"""Writing a calibrated policy file, and replaying labelled outcomes through the real Router.

``write_policy`` turns a :class:`~paxis_router.calibration.thresholds.Calibration` into a policy
YAML that
``load_config`` / ``Router.from_config`` load; ``replay`` runs examples through a Router built
from a policy with ReplayWorker tiers, the policy's real verifiers and a real SQLite ledger.

A policy written by ``paxis calibrate`` records which rows it was fitted on (``fitted_on:``, a
fingerprint of their prompts). :func:`training_overlap` counts how many rows of some data the
policy was fitted on, and :func:`check_held_out` refuses in-sample data unless told otherwise:
``replay`` calls it, and so should anything else that replays data through a policy
(``paxis demo --policy``).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from paxis_router.calibration.datasets import quality
from paxis_router.calibration.metrics import apgr, cpt, sweep
from paxis_router.errors import ConfigError, PaxisError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from paxis_router.calibration.datasets import Example
    from paxis_router.calibration.fingerprint import Overlap, RowFingerprint
    from paxis_router.calibration.thresholds import Calibration
    from paxis_router.config.schema import RouterConfig
    from paxis_router.pricing import Price

ROUTELLM_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
ROUTELLM_STRONG = "gpt-4-1106-preview"
# The local worker's price, as policies/demo.yaml states and argues it: 2 x H100 at $2.49 per
# GPU-hour serving Mixtral-8x7B at 3,000 tokens/s aggregate (= $0.46 per million tokens).
WEAK_USD_PER_GPU_HOUR = Decimal("2.49")
WEAK_GPUS = 2
WEAK_THROUGHPUT_TOKENS_PER_S = Decimal(3000)


def weak_price(
    usd_per_gpu_hour: Decimal = WEAK_USD_PER_GPU_HOUR,
    gpus: int = WEAK_GPUS,
    throughput_tokens_per_s: Decimal = WEAK_THROUGHPUT_TOKENS_PER_S,
) -> Price:
    """The worker priced as a local GPU tier."""
    from paxis_router.pricing import GpuHourPrice

    return GpuHourPrice(usd_per_gpu_hour, gpus, throughput_tokens_per_s)


def _tiers(
    data: Sequence[Path], out_dir: Path, weak: str, strong: str, gpu: tuple[Decimal, int, Decimal]
) -> list[dict[str, Any]]:  # Any: YAML
    usd, gpus, throughput = gpu
    pricing: dict[str, Any] = {  # Any: YAML
        "usd_per_gpu_hour": str(usd),
        "gpus": gpus,
        "throughput_tokens_per_s": int(throughput),
    }
    csv_file = data[0] if len(data) == 1 else None
    if csv_file is not None and csv_file.suffix == ".csv" and csv_file.is_file():
        header = csv_file.read_text(encoding="utf-8").split("\n", 1)[0]
        if "_response" in header:  # RouteLLM GSM8K: the Router can replay it as it is
            rel = Path(os.path.relpath(csv_file.resolve(), out_dir.resolve()))
            common: dict[str, Any] = {"kind": "replay", "data": str(rel)}  # Any: YAML
            excluded = csv_file.parent / "contaminated_prompts.jsonl"
            if excluded.is_file():
                common["exclude"] = str(
                    Path(os.path.relpath(excluded.resolve(), out_dir.resolve()))
                )
            return [
                {"name": "local:worker", "model": weak, **common, **pricing},
                {
                    "name": "frontier:top",
                    "model": strong,
                    **common,
                    "destination": "openai",
                    "litellm_model": strong,
                },
            ]
    return [
        {
            "kind": "local",
            "name": "local:worker",
            "model": weak,
            "base_url": "http://127.0.0.1:8000/v1",
            **pricing,
        },
        {"kind": "litellm", "name": "frontier:top", "model": strong},
    ]


def policy_document(
    calibration: Calibration,
    *,
    data: Sequence[Path],
    out_dir: Path,
    verifiers: Sequence[dict[str, Any]],  # Any: verifier specs in YAML form
    gpu: tuple[Decimal, int, Decimal] = (
        WEAK_USD_PER_GPU_HOUR,
        WEAK_GPUS,
        WEAK_THROUGHPUT_TOKENS_PER_S,
    ),
    scorer_file: str | None = None,
    fitted_on: RowFingerprint | None = None,
) -> dict[str, Any]:  # Any: YAML
    """The policy file's content (tiers, verifiers, policy, fitted_on) as a mapping.

    ``scorer_file``: the path the policy names for its scorer (a kNN scorer's JSON file, saved
    by the caller) instead of the scorer inline. ``fitted_on``: the fingerprint of the rows the
    policy was fitted on (written as the ``fitted_on:`` section).
    """
    document: dict[str, Any] = {  # Any: YAML
        "tiers": _tiers(data, out_dir, calibration.weak, calibration.strong, gpu),
        "verifiers": list(verifiers),
        "policy": {
            "escalate_when": calibration.escalate_when(scorer_file),
            "stop_when": "tiers_exhausted",
            "on_exhausted": "return_best",
        },
    }
    if fitted_on is not None:
        document["fitted_on"] = fitted_on.to_dict()
    return document


def write_policy(path: Path, document: dict[str, Any], calibration: Calibration) -> None:  # Any
    """Write the policy YAML with a header that records the chosen point and the targets met."""
    from paxis_router.calibration.knn import FORMAT as KNN_FORMAT, KnnScorer

    s = calibration.summary()
    p = calibration.point
    scorer_line = [
        "# The scorer below is the learned escalation scorer (paxis-scorer/1): logistic heads over",
        "# answer features, verifier verdicts and hashed TF-IDF;",
        "# see paxis_router.calibration.thresholds.",
    ]
    if isinstance(calibration.scorer, KnnScorer):
        mixed = " mixed 50/50 with the learned scorer" if calibration.scorer.learned else ""
        scorer_line = [
            f"# The scorer file is an embedding-neighbour scorer ({KNN_FORMAT}: JSON + .npz "
            f"beside it){mixed}; see paxis_router.calibration.thresholds.",
        ]
    usd = "unknown" if p.usd_per_1k is None else f"${p.usd_per_1k}"
    header = [
        "# Written by `paxis calibrate`: an escalation policy fitted on labelled outcomes.",
        f"# weak: {calibration.weak}   strong: {calibration.strong}   n: {calibration.n}",
        f"# chosen point (cross-fitted): strong-call share {p.strong_call_share:.4f}, "
        f"quality {p.quality:.4f} = {p.quality_share:.4f} of the strong model's, {usd} per 1,000",
        f"# curve: APGR {s['apgr']:.4f}, CPT(50%) {s['cpt50']}, CPT(80%) {s['cpt80']}",
        *scorer_line,
        *_fitted_line(document),
        *(f"# note: {n}" for n in calibration.notes),
    ]
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=100)
    path.write_text("\n".join(header) + "\n" + body, encoding="utf-8")


def _fitted_line(document: dict[str, Any]) -> list[str]:  # Any: YAML
    section = document.get("fitted_on")
    if not isinstance(section, dict):
        return []
    return [
        f"# fitted on {section.get('rows')} rows; `fitted_on:` fingerprints their prompts, so "
        "`paxis replay` refuses them (in-sample) unless --allow-in-sample or --exclude-fitted.",
    ]


# --- in-sample detection --------------------------------------------------------------------------


def fitted_rows(cfg: RouterConfig) -> RowFingerprint | None:
    """The fingerprint of the rows the policy was fitted on; None when it records none.

    Example:
        >>> from paxis_router.config.schema import RouterConfig
        >>> fitted_rows(RouterConfig.model_validate({"tiers": [{"kind": "litellm", "model": "m"}]}))
    """
    from paxis_router.calibration.fingerprint import RowFingerprint

    if cfg.fitted_on is None:
        return None
    return RowFingerprint.from_dict(cfg.fitted_on.model_dump(), source=cfg.source or "<policy>")


def training_overlap(cfg: RouterConfig, prompts: Iterable[str]) -> Overlap | None:
    """How many rows (by prompt) of some data the policy ``cfg`` was fitted on.

    None when the policy records no ``fitted_on`` fingerprint (hand-written policies, policies
    written before it existed): then nothing is known either way.

    Example:
        >>> from paxis_router.calibration.fingerprint import RowFingerprint
        >>> from paxis_router.config.schema import RouterConfig
        >>> cfg = RouterConfig.model_validate({
        ...     "tiers": [{"kind": "litellm", "model": "m"}],
        ...     "fitted_on": RowFingerprint.of_prompts(["a?", "b?"]).to_dict()})
        >>> training_overlap(cfg, ["a?", "c?"]).fitted
        1
    """
    fingerprint = fitted_rows(cfg)
    return None if fingerprint is None else fingerprint.overlap(prompts)


def check_held_out(
    cfg: RouterConfig, prompts: Iterable[str], *, allow_in_sample: bool = False
) -> Overlap | None:
    """:func:`training_overlap`, raising when the data holds rows the policy was fitted on.

    A policy scores the rows it was fitted on better than it will score any new one (on GSM8K
    in-sample replay shows APGR 1.09 where held-out rows show 0.82), so figures measured on
    them say nothing about production. Refusing is the default; ``allow_in_sample`` returns the
    overlap instead, for the caller to label its figures with.

    Raises:
        ConfigError: some rows were fitted on and ``allow_in_sample`` is false; the message says
            how many, and how to replay held-out data instead.
    """
    overlap = training_overlap(cfg, prompts)
    if overlap is not None and overlap.in_sample and not allow_in_sample:
        raise ConfigError(
            f"{overlap.describe()}. Replay rows the policy was not fitted on (paxis calibrate "
            "--holdout 0.5 writes them beside the policy), drop the fitted rows with "
            "--exclude-fitted, or pass --allow-in-sample to replay them anyway, labelled "
            "in-sample",
            source=cfg.source or "<policy>",
            field="fitted_on",
        )
    return overlap


# --- replay ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayReport:
    """What a replay measured. ``accuracy`` is the mean quality of the answering tier (for
    score-labelled data, the mean score); ``strong_call_share`` the share of routes that
    reached the last tier; ``usd_per_1k`` the spend per 1,000 routes (None: a price unknown).

    ``in_sample_rows``: how many replayed rows the policy was fitted on (None: the policy
    records no fingerprint, so nobody knows); ``excluded_fitted_rows``: fitted rows dropped
    before replaying (``exclude_fitted``)."""

    n: int
    accuracy: float
    strong_call_share: float
    usd_per_1k: Decimal | None
    weak_accuracy: float
    strong_accuracy: float
    ledger_rows: int
    weak_only_usd_per_1k: Decimal | None = None
    strong_only_usd_per_1k: Decimal | None = None
    apgr: float | None = None
    cpt50: float | None = None
    cpt80: float | None = None
    in_sample_rows: int | None = None
    excluded_fitted_rows: int = 0

    @property
    def in_sample(self) -> bool:
        """True when some replayed rows were rows the policy was fitted on."""
        return bool(self.in_sample_rows)

    def to_dict(self, *, curve: bool) -> dict[str, Any]:  # Any: JSON values
        out: dict[str, Any] = {  # Any: JSON values
            "in_sample": self.in_sample,
            "in_sample_rows": self.in_sample_rows,
            "excluded_fitted_rows": self.excluded_fitted_rows,
            "n": self.n,
            "accuracy": self.accuracy,
            "strong_call_share": self.strong_call_share,
            "usd_per_1k": _float(self.usd_per_1k),
            "weak_accuracy": self.weak_accuracy,
            "strong_accuracy": self.strong_accuracy,
            "ledger_rows": self.ledger_rows,
            "weak_only_usd_per_1k": _float(self.weak_only_usd_per_1k),
            "strong_only_usd_per_1k": _float(self.strong_only_usd_per_1k),
        }
        if curve:
            out.update(apgr=self.apgr, cpt50=self.cpt50, cpt80=self.cpt80)
        return out


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _per_1k(costs: Sequence[Decimal | None]) -> Decimal | None:
    if not costs or any(c is None for c in costs):
        return None
    total = sum((c for c in costs if c is not None), Decimal(0))
    return (total * 1000 / len(costs)).quantize(Decimal("0.000001"))


def _tier_model(cfg: RouterConfig, index: int) -> str | None:
    model = getattr(cfg.tiers[index], "model", None)
    return str(model) if model else None


def replay(
    cfg: RouterConfig,
    examples: Sequence[Example],
    *,
    weak: str | None = None,
    strong: str | None = None,
    ledger_path: Path | None = None,
    curve: bool = False,
    concurrency: int = 16,
    allow_in_sample: bool = False,
    exclude_fitted: bool = False,
) -> ReplayReport:
    """Route every example through the Router ``cfg`` describes, its tiers replaced by
    ReplayWorkers serving the examples' recorded outcomes (priced as the policy's tiers).

    Rows the policy was fitted on (its ``fitted_on`` fingerprint) are refused (ConfigError, see
    :func:`check_held_out`), dropped with ``exclude_fitted``, or replayed with
    ``allow_in_sample`` and counted in the report's ``in_sample_rows``.
    """
    from paxis_router.calibration.thresholds import example_costs
    from paxis_router.config.schema import LiteLLMTierSpec
    from paxis_router.config.verifiers import build_verifier
    from paxis_router.governance.audit import AuditLog
    from paxis_router.governance.gate import Gate
    from paxis_router.ledger.sqlite import SQLiteLedger
    from paxis_router.router import Router
    from paxis_router.types import ChatRequest
    from paxis_router.workers.base import Tier
    from paxis_router.workers.replay import ReplayWorker

    if len(cfg.tiers) != 2:
        raise ConfigError(f"replay needs a two-tier policy (worker, top), got {len(cfg.tiers)}")
    if not examples:
        raise ConfigError("no examples to replay")
    excluded = 0
    fingerprint = fitted_rows(cfg)
    if exclude_fitted and fingerprint is not None:
        kept = [e for e in examples if not fingerprint.contains(e.prompt)]
        excluded = len(examples) - len(kept)
        if not kept:
            raise ConfigError(
                f"all {len(examples)} rows were fitted on: nothing held out to replay",
                source=cfg.source or "<policy>",
                field="fitted_on",
            )
        examples = kept
    overlap = check_held_out(cfg, (e.prompt for e in examples), allow_in_sample=allow_in_sample)
    weak = weak or _tier_model(cfg, 0) or ROUTELLM_WEAK
    strong = strong or _tier_model(cfg, 1) or ROUTELLM_STRONG
    for model in (weak, strong):
        if model not in examples[0].outcomes:
            raise ConfigError(
                f"the data has no outcomes for model {model!r}; it has "
                f"{sorted(examples[0].outcomes)} (use --weak / --strong)"
            )
    overrides = cfg.policy.price_overrides
    tiers = []
    for spec, model in zip(cfg.tiers, (weak, strong), strict=True):
        default = spec.model if isinstance(spec, LiteLLMTierSpec) else None
        price = spec.price(overrides, default)
        outcomes = {e.id: e.outcomes[model] for e in examples}
        worker = ReplayWorker(spec.tier_name, outcomes, model=model, price=price)
        tiers.append(Tier(worker, price, spec.destination or "local"))
    # Script verifiers still run under the policy's gate and audit log, replay or not.
    gate = Gate(cfg.gate) if cfg.gate is not None else None
    audit = None
    if cfg.audit is not None:
        audit = AuditLog(
            cfg.audit.path, include_payload=cfg.audit.include_payload, fsync=cfg.audit.fsync
        )
    verifiers = [build_verifier(v, cfg.base_dir, gate=gate, audit=audit) for v in cfg.verifiers]
    with tempfile.TemporaryDirectory() as tmp:
        path = ledger_path or Path(tmp) / "replay-ledger.db"
        ledger = SQLiteLedger(path)
        try:
            router = Router(
                tiers=tiers, verifiers=verifiers, policy=cfg.policy.build(), ledger=ledger
            )
            requests = [ChatRequest.from_text(e.prompt, replay_id=e.id) for e in examples]
            results = asyncio.run(router.route_many(requests, concurrency=concurrency))
            rows = ledger.count()  # after the rows still queued are written
        finally:
            ledger.close()
    top = tiers[1].name
    qualities: list[float] = []
    escalated = 0
    spent: Decimal | None = Decimal(0)
    for example, result in zip(examples, results, strict=True):
        if isinstance(result, PaxisError):
            raise result
        model = strong if result.tier == top else weak
        qualities.append(quality(example.outcomes[model]))
        escalated += any(a.tier == top for a in result.attempts)
        spent = None if spent is None or result.cost_usd is None else spent + result.cost_usd
    n = len(examples)
    weak_q = [quality(e.outcomes[weak]) for e in examples]
    strong_q = [quality(e.outcomes[strong]) for e in examples]
    report = ReplayReport(
        n=n,
        accuracy=sum(qualities) / n,
        strong_call_share=escalated / n,
        usd_per_1k=None if spent is None else (spent * 1000 / n).quantize(Decimal("0.000001")),
        weak_accuracy=sum(weak_q) / n,
        strong_accuracy=sum(strong_q) / n,
        ledger_rows=rows,
        weak_only_usd_per_1k=_per_1k(example_costs(examples, weak, tiers[0].price)),
        strong_only_usd_per_1k=_per_1k(example_costs(examples, strong, tiers[1].price)),
        in_sample_rows=None if overlap is None else overlap.fitted,
        excluded_fitted_rows=excluded,
    )
    if not curve:
        return report
    scores = _policy_scores(cfg, examples, weak, verifiers)
    c = sweep(scores, weak_q, strong_q)
    return ReplayReport(
        **{**report.__dict__, "apgr": apgr(c), "cpt50": cpt(c, 0.5), "cpt80": cpt(c, 0.8)}
    )


def _policy_scores(
    cfg: RouterConfig, examples: Sequence[Example], weak: str, verifiers: Sequence[Any]
) -> list[float]:  # Any: Verifier instances
    from paxis_router.calibration.thresholds import find_score_below, load_scorer, worker_verdicts

    spec = find_score_below(cfg.policy.escalate_when)
    if spec is None:
        raise ConfigError(
            "--curve sweeps the learned scorer's threshold: the policy has no score_below "
            "predicate (write one with `paxis calibrate`)"
        )
    from paxis_router.calibration.knn import KnnScorer

    scorer = load_scorer(spec["scorer"])
    verdicts = worker_verdicts(examples, weak, verifiers)
    if isinstance(scorer, KnnScorer):  # one batched encode instead of one per example
        responses = [e.outcomes[weak].response for e in examples]
        return scorer.score_many([e.prompt for e in examples], responses, verdicts)
    return [
        scorer.score(e.prompt, e.outcomes[weak].response, v)
        for e, v in zip(examples, verdicts, strict=True)
    ]
