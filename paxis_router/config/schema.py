"""Policy files: YAML -> validated :class:`RouterConfig` -> a Router.

YAML is only a serialization of these pydantic models (``extra="forbid"``, frozen).
:func:`load_config` reports every problem — unparsable YAML, an unknown key, a wrong type, an
unknown tier or verifier kind, an unknown predicate — as a ConfigError naming the file and the
dotted path of the field, at load time. Secrets never live in the file: a tier names the
environment variable that holds its key (``api_key_env``); litellm reads provider keys itself.

Relative paths (``skills.dir``, replay ``data``, verifier ``schema_file``) start at the policy
file's folder; ``ledger.path`` starts at the working directory, like a database URL would.

Example:
    >>> cfg = RouterConfig.model_validate({
    ...     "tiers": [
    ...         {"kind": "local", "name": "local:qwen", "model": "qwen",
    ...          "base_url": "http://127.0.0.1:8000/v1", "usd_per_gpu_hour": "2.50",
    ...          "throughput_tokens_per_s": 2500},
    ...         {"kind": "litellm", "model": "gpt-4o"},
    ...     ],
    ...     "verifiers": ["non_empty"],
    ...     "policy": {"escalate_when": {"any_of": ["verdict_failed", {"confidence_below": 0.7}]}},
    ... })
    >>> [t.kind for t in cfg.tiers], cfg.policy.on_exhausted
    (['local', 'litellm'], 'raise')
"""

from __future__ import annotations

import contextlib
import logging
import os
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from paxis_router.config.predicates import parse_predicate
from paxis_router.config.verifiers import VERIFIER_KINDS, VerifierSpec, build_verifier
from paxis_router.errors import ConfigError
from paxis_router.governance.gate import GatePolicy
from paxis_router.policy.outage import OutagePolicy
from paxis_router.policy.predicates import EscalationPolicy, Predicate
from paxis_router.pricing import GpuHourPrice, Price, TokenPrice, litellm_price
from paxis_router.router import Router
from paxis_router.shadow import ShadowSampling
from paxis_router.workers.resilience import ResilienceConfig

if TYPE_CHECKING:
    from collections.abc import Iterator

    from paxis_router.ledger.postgres import PostgresLedger
    from paxis_router.ledger.sqlite import SQLiteLedger
    from paxis_router.workers.base import Tier

logger = logging.getLogger(__name__)

DEFAULT_ESCALATE_WHEN: Any = {"any_of": ["verdict_failed", {"confidence_below": 0.7}]}  # Any: YAML
DEFAULT_STOP_WHEN: Any = {"any_of": ["tiers_exhausted", {"spent_over": "0.05"}]}  # Any: YAML


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- tiers ----------------------------------------------------------------------------------------


class _TierSpec(_Model):
    """What every tier kind shares: its name, where its data goes, and how it is priced.

    Pricing, at most one of: ``usd_per_gpu_hour`` (with ``gpus`` and optionally
    ``throughput_tokens_per_s``: a local GPU tier), ``usd_per_mtok_in`` + ``usd_per_mtok_out``
    (a per-token price), or ``litellm_model`` (litellm's bundled map under that name; a litellm
    tier uses its own model by default). None of them: the price is unknown (logged, never 0).
    """

    name: str | None = None
    destination: str | None = None
    max_context_tokens: int | None = Field(default=None, gt=0)
    usd_per_gpu_hour: Decimal | None = Field(default=None, ge=0)
    gpus: int = Field(default=1, ge=1)
    throughput_tokens_per_s: Decimal | None = Field(default=None, gt=0)
    usd_per_mtok_in: Decimal | None = Field(default=None, ge=0)
    usd_per_mtok_out: Decimal | None = Field(default=None, ge=0)
    litellm_model: str | None = None
    resilience: ResilienceConfig | None = None  # timeouts, retries, breaker (None: direct calls)

    @property
    def tier_name(self) -> str:
        """The tier's name: ``name``, else ``<kind prefix>:<model>``."""
        return self.name or f"{self._prefix}:{getattr(self, 'model', '')}"

    _prefix: ClassVar[str] = "tier"

    @model_validator(mode="after")
    def _one_pricing(self) -> _TierSpec:
        per_token = self.usd_per_mtok_in is not None or self.usd_per_mtok_out is not None
        if per_token and (self.usd_per_mtok_in is None or self.usd_per_mtok_out is None):
            raise ValueError("give both usd_per_mtok_in and usd_per_mtok_out")
        gpu = self.usd_per_gpu_hour is not None
        chosen = [gpu, per_token, self.litellm_model is not None]
        if sum(chosen) > 1:
            raise ValueError(
                "give one pricing: usd_per_gpu_hour, usd_per_mtok_in/out, or litellm_model"
            )
        if not gpu and (self.throughput_tokens_per_s is not None or self.gpus != 1):
            raise ValueError("gpus and throughput_tokens_per_s need usd_per_gpu_hour")
        return self

    def price(self, overrides: dict[str, PriceOverride], default_model: str | None) -> Price | None:
        """This tier's price: explicit, else the policy's override, else litellm's map."""
        if self.usd_per_gpu_hour is not None:
            return GpuHourPrice(self.usd_per_gpu_hour, self.gpus, self.throughput_tokens_per_s)
        if self.usd_per_mtok_in is not None and self.usd_per_mtok_out is not None:
            return TokenPrice.per_million(self.usd_per_mtok_in, self.usd_per_mtok_out)
        model = self.litellm_model or default_model
        if model is None:
            return None
        if model in overrides:
            return overrides[model].token_price()
        return litellm_price(model)


class OpenAICompatTierSpec(_TierSpec):
    """``kind: openai_compat`` (alias ``local``): a vLLM or other OpenAI-compatible server."""

    kind: Literal["openai_compat", "local"]
    _prefix: ClassVar[str] = "local"
    model: str = Field(min_length=1)
    base_url: str = Field(min_length=1)
    api_key_env: str | None = Field(
        default=None, description="the environment variable holding the server's API key"
    )
    timeout_s: float = Field(default=60.0, gt=0)
    logprobs: bool = False
    extra_body: dict[str, Any] | None = None  # Any: free-form JSON merged into the request body
    adapters: tuple[str, ...] | None = Field(
        default=None,
        description="LoRA adapter names the server serves (vLLM --lora-modules); a skill with "
        "metadata paxis-adapter: NAME goes to its adapter, the rest to model (LoRAWorker)",
    )
    skill_adapters: bool = Field(
        default=True, description="request a skill's `paxis-adapter` LoRA adapter as the model"
    )


class LiteLLMTierSpec(_TierSpec):
    """``kind: litellm``: a frontier provider through litellm (priced from its map by default)."""

    kind: Literal["litellm"]
    _prefix: ClassVar[str] = "frontier"
    model: str = Field(min_length=1)
    timeout_s: float = Field(default=120.0, gt=0)
    completion_kwargs: dict[str, Any] = Field(default_factory=dict)  # Any: litellm keywords


class ReplayTierSpec(_TierSpec):
    """``kind: replay``: recorded outcomes (RouteLLM GSM8K CSV) served by a ReplayWorker."""

    kind: Literal["replay"]
    _prefix: ClassVar[str] = "replay"
    model: str = Field(min_length=1, description="the model column in the data file")
    data: Path
    format: Literal["routellm_gsm8k"] = "routellm_gsm8k"
    exclude: Path | None = Field(
        default=None, description="a contaminated_prompts.jsonl whose eval_idx rows are dropped"
    )


TierSpec = Annotated[
    Union[OpenAICompatTierSpec, LiteLLMTierSpec, ReplayTierSpec],  # noqa: UP007  # discriminated
    Field(discriminator="kind"),
]


# --- policy, ledger, skills ---------------------------------------------------------------------


class PriceOverride(_Model):
    """A per-model price that replaces litellm's map (e.g. a negotiated rate)."""

    input_usd_per_mtok: Decimal = Field(ge=0)
    output_usd_per_mtok: Decimal = Field(ge=0)

    def token_price(self) -> TokenPrice:
        return TokenPrice.per_million(self.input_usd_per_mtok, self.output_usd_per_mtok)


def _check_predicate(value: object) -> object:
    try:
        parse_predicate(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return value


class PolicySpec(_Model):
    """``policy:``: when to escalate, when to stop, what to do when the ladder runs out.

        ``escalate_when`` / ``stop_when`` are predicates in YAML form (see
    ``paxis_router.policy.predicates``);
        ``price_overrides`` maps a model name to ``{input_usd_per_mtok, output_usd_per_mtok}``.
    """

    escalate_when: Any = DEFAULT_ESCALATE_WHEN  # Any: a predicate's YAML form
    stop_when: Any = DEFAULT_STOP_WHEN  # Any: a predicate's YAML form
    on_exhausted: Literal["raise", "return_best"] = "raise"
    price_overrides: dict[str, PriceOverride] = Field(default_factory=dict)
    outage: OutagePolicy = Field(default_factory=OutagePolicy)  # per skill: degrade or refuse

    _validate_escalate = field_validator("escalate_when", "stop_when")(_check_predicate)

    def build(self) -> EscalationPolicy:
        """The EscalationPolicy this spec describes."""
        escalate: Predicate = parse_predicate(self.escalate_when, field="policy.escalate_when")
        stop: Predicate = parse_predicate(self.stop_when, field="policy.stop_when")
        return EscalationPolicy(
            escalate_when=escalate, stop_when=stop, on_exhausted=self.on_exhausted
        )


class LedgerSpec(_Model):
    """``ledger:``: where attempts are recorded — a SQLite file (``path``, relative to the working
    directory) or a database URL (``url: postgresql://...``, shared by a fleet of routers)."""

    kind: Literal["sqlite", "postgres"] = "sqlite"
    path: Path = Path("paxis-ledger.db")
    url: str | None = None

    @model_validator(mode="after")
    def _url_for_postgres(self) -> LedgerSpec:
        if self.kind == "postgres" and not self.url:
            raise ValueError("kind: postgres needs url: postgresql://user@host/db")
        return self

    def open(self) -> SQLiteLedger | PostgresLedger:
        """Open the ledger this section names."""
        from paxis_router.ledger import open_ledger

        return open_ledger(self.url if self.url is not None else self.path)


class AuditSpec(_Model):
    """``audit:``: the hash-chained audit log (relative to the working directory).

    ``include_payload`` stores prompts and answers in the log (off: hashes only); ``fsync``
    flushes every record to disk before the route goes on.
    """

    path: Path = Path("paxis-audit.jsonl")
    include_payload: bool = False
    fsync: bool = True


class SkillsSpec(_Model):
    """``skills:``: a folder of Agent Skills selected with BM25 (relative to the policy file)."""

    dir: Path
    k: int = Field(default=3, ge=1)
    min_score: float | None = None
    fallback: str | None = None


class CalibrationSpec(_Model):
    """``calibration:``: shadow sampling for ``paxis calibrate --ledger`` (off by default).

    ``shadow_rate`` of the routes whose lower-tier answer was accepted also call the next tier
    (a ``shadow`` ledger row at its real cost; the answer returned never changes); sampled by a
    hash of the request id and ``shadow_seed``. The gate and budgets still apply. The shadow
    call runs in the background (``inline: true`` makes the sampled route wait for it), at most
    ``max_pending`` at once; a sample that finds the backlog full is skipped and counted.
    """

    shadow_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    shadow_seed: int = 0
    inline: bool = False
    max_pending: int = Field(default=64, ge=1)


class FittedOnSpec(_Model):
    """``fitted_on:``: the rows ``paxis calibrate`` fitted this policy on, as a fingerprint of
    their prompts (``paxis_router.calibration.fingerprint``). ``paxis replay`` uses it to tell
    held-out data from data the policy was fitted on; the Router itself ignores it.
    """

    format: Literal["paxis-fitted-rows/1"]
    key: Literal["prompt"] = "prompt"
    rows: int = Field(ge=0)
    unique_rows: int = Field(ge=0)
    digest: str
    bits: int = Field(ge=1, le=64)
    modulus: int = Field(ge=1)
    hashes: str


class RouterConfig(_Model):
    """A whole policy file. ``Router.from_config(cfg)`` builds the Router it describes.

    Sections owned by other components travel in the same file: ``gate`` (a GatePolicy) and
    ``proxy`` (validated by ``paxis_router.proxy`` when the proxy serves this policy).

    Example:
        >>> cfg = RouterConfig.model_validate({"tiers": [{"kind": "litellm", "model": "gpt-4o"}]})
        >>> cfg.tiers[0].model, cfg.ledger is None
        ('gpt-4o', True)
    """

    skills: SkillsSpec | None = None
    tiers: list[TierSpec] = Field(min_length=1)
    verifiers: list[VerifierSpec] = Field(default_factory=list)
    policy: PolicySpec = Field(default_factory=PolicySpec)
    ledger: LedgerSpec | None = None
    gate: GatePolicy | None = None
    audit: AuditSpec | None = None
    budgets: dict[str, Any] | None = None  # Any: validated by Budgets.from_config, file named
    calibration: CalibrationSpec | None = None
    proxy: dict[str, Any] | None = None  # Any: the proxy section, validated by the proxy
    fitted_on: FittedOnSpec | None = None  # written by paxis calibrate

    _base_dir: Path | None = PrivateAttr(default=None)
    _source: str | None = PrivateAttr(default=None)

    @property
    def source(self) -> str | None:
        """The policy file this config was loaded from (None: built in code)."""
        return self._source

    @property
    def base_dir(self) -> Path:
        """The folder relative paths start at: the policy file's, else the working directory."""
        return self._base_dir if self._base_dir is not None else Path.cwd()

    def build_router(self, *, base_dir: str | Path | None = None) -> Router:
        """The Router this policy describes (``Router.from_config(cfg)`` calls this)."""
        return build_router(self, base_dir=base_dir)


# --- loading ------------------------------------------------------------------------------------


_TAGS = frozenset({"openai_compat", "local", "litellm", "replay", *VERIFIER_KINDS})


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(previous, int) and part in _TAGS:
            pass  # pydantic's discriminated-union segment (the kind), not a key the user wrote
        else:
            out += f".{part}" if out else str(part)
        previous = part
    return out


def config_from_mapping(raw: object, *, source: str = "<dict>") -> RouterConfig:
    """Validate an already-parsed mapping; failures are ConfigError naming ``source`` and field."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"a policy file must be a mapping with at least 'tiers', got {type(raw).__name__}",
            source=source,
        )
    policy = raw.get("policy")
    if isinstance(policy, dict):  # checked first for the exact path inside a predicate
        for key in ("escalate_when", "stop_when"):
            if key in policy:
                parse_predicate(policy[key], source=source, field=f"policy.{key}")
    try:
        cfg = RouterConfig.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key; check its spelling and the section it is in"
        raise ConfigError(
            message + more, source=source, field=_dotted(first["loc"]) or None
        ) from exc
    cfg._source = source
    return cfg


def load_config(path: str | Path) -> RouterConfig:
    """Read a policy file: ``yaml.safe_load`` then ``RouterConfig.model_validate``.

    Raises:
        ConfigError: naming the file and the dotted field for any problem.

    Example:
        >>> cfg = load_config("policies/default.yaml")  # doctest: +SKIP
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read policy file: {exc}", source=source) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=source) from exc
    cfg = config_from_mapping(raw, source=source)
    cfg._base_dir = Path(path).resolve().parent
    return cfg


# --- building -----------------------------------------------------------------------------------


def build_tier(spec: TierSpec, cfg: RouterConfig, base_dir: Path) -> Tier:
    """The Tier one spec describes (worker, price, destination)."""
    from paxis_router.workers.base import Tier

    overrides = cfg.policy.price_overrides
    if isinstance(spec, OpenAICompatTierSpec):
        from paxis_router.workers.openai_compat import OpenAICompatWorker

        api_key = None
        if spec.api_key_env is not None:
            api_key = os.environ.get(spec.api_key_env)
            if api_key is None:
                raise ConfigError(
                    f"api_key_env: environment variable {spec.api_key_env} is not set; export "
                    "it with the server's API key"
                )
        price = spec.price(overrides, None)
        if spec.adapters is not None:
            from paxis_router.workers.lora import LoRAWorker

            lora = LoRAWorker(
                spec.tier_name,
                spec.model,
                spec.base_url,
                adapters=spec.adapters,
                price=price,
                destination=spec.destination or "local",
                timeout_s=spec.timeout_s,
                logprobs=spec.logprobs,
                api_key=api_key,
                extra_body=spec.extra_body,
                max_context_tokens=spec.max_context_tokens,
                connect_timeout_s=spec.resilience.connect_timeout_s if spec.resilience else None,
                read_timeout_s=spec.resilience.read_timeout_s if spec.resilience else None,
            )
            return Tier(lora, price, lora.destination, spec.max_context_tokens)
        worker_oc = OpenAICompatWorker(
            spec.tier_name,
            spec.model,
            spec.base_url,
            api_key=api_key,
            price=price,
            destination=spec.destination or "local",
            timeout_s=spec.timeout_s,
            logprobs=spec.logprobs,
            extra_body=spec.extra_body,
            max_context_tokens=spec.max_context_tokens,
            skill_adapters=spec.skill_adapters,
            connect_timeout_s=spec.resilience.connect_timeout_s if spec.resilience else None,
            read_timeout_s=spec.resilience.read_timeout_s if spec.resilience else None,
        )
        return Tier(worker_oc, price, worker_oc.destination, spec.max_context_tokens)
    if isinstance(spec, LiteLLMTierSpec):
        from paxis_router.workers.litellm import LiteLLMWorker

        price = spec.price(overrides, spec.model)
        worker_ll = LiteLLMWorker(
            spec.model,
            name=spec.tier_name,
            price=price,
            destination=spec.destination,
            timeout_s=spec.timeout_s,
            completion_kwargs=spec.completion_kwargs,
        )
        window = spec.max_context_tokens or worker_ll.max_context_tokens
        return Tier(worker_ll, price, worker_ll.destination, window)
    from paxis_router.workers.replay import (
        ReplayWorker,
        drop_ids,
        load_routellm_gsm8k,
        routellm_contaminated_ids,
    )

    outcomes = load_routellm_gsm8k(base_dir / spec.data, spec.model)
    if spec.exclude is not None:
        outcomes = drop_ids(outcomes, routellm_contaminated_ids(base_dir / spec.exclude))
    price = spec.price(overrides, None)
    worker_rp = ReplayWorker(
        spec.tier_name,
        outcomes,
        model=spec.model,
        price=price,
        destination=spec.destination or "local",
    )
    return Tier(worker_rp, price, worker_rp.destination, spec.max_context_tokens)


def build_router(cfg: RouterConfig, *, base_dir: str | Path | None = None) -> Router:
    """The Router a config describes; what ``Router.from_config`` calls.

    ``base_dir`` is where relative paths start (default: the policy file's folder).
    """
    root = Path(base_dir) if base_dir is not None else cfg.base_dir
    tiers = []
    for i, tier_spec in enumerate(cfg.tiers):
        with _located(cfg, f"tiers[{i}]"):
            tier = build_tier(tier_spec, cfg, root)
            if tier_spec.resilience is not None:
                from dataclasses import replace

                from paxis_router.workers.resilience import Resilience

                tier = replace(tier, resilience=Resilience(tier_spec.resilience))
            tiers.append(tier)
    verifiers = []
    for i, verifier_spec in enumerate(cfg.verifiers):
        with _located(cfg, f"verifiers[{i}]"):
            verifiers.append(build_verifier(verifier_spec, root))
    ledger = None
    if cfg.ledger is not None:
        ledger = cfg.ledger.open()
    budgets = None
    if cfg.budgets is not None:
        from paxis_router.governance.budgets import Budgets

        budgets = Budgets.from_config(cfg.budgets, ledger=ledger, source=cfg._source)
    skills = None
    skills_k = 3
    if cfg.skills is not None:
        from paxis_router.skills.library import SkillLibrary

        skills = SkillLibrary.from_dir(
            root / cfg.skills.dir, fallback=cfg.skills.fallback, min_score=cfg.skills.min_score
        )
        skills_k = cfg.skills.k
    gate = None
    if cfg.gate is not None:
        from paxis_router.governance.gate import Gate

        gate = Gate(cfg.gate)
    audit = None
    if cfg.audit is not None:
        from paxis_router.governance.audit import AuditLog

        spec = cfg.audit
        audit = AuditLog(spec.path, include_payload=spec.include_payload, fsync=spec.fsync)
    calibration = cfg.calibration or CalibrationSpec()
    return Router(
        tiers=tiers,
        verifiers=verifiers,
        policy=cfg.policy.build(),
        ledger=ledger,
        skills=skills,
        skills_k=skills_k,
        gate=gate,
        audit=audit,
        outage=cfg.policy.outage,
        budgets=budgets,
        shadow=ShadowSampling(
            rate=calibration.shadow_rate,
            seed=calibration.shadow_seed,
            inline=calibration.inline,
            max_pending=calibration.max_pending,
        ),
    )


@contextlib.contextmanager
def _located(cfg: RouterConfig, field: str) -> Iterator[None]:
    """Re-raise a ConfigError from building a section with the policy file and field named."""
    try:
        yield
    except ConfigError as exc:
        if exc.source is not None:
            raise
        raise ConfigError(str(exc), source=cfg._source, field=exc.field or field) from exc
