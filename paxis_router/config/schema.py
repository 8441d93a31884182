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
import difflib
import logging
import os
import types
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

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
from paxis_router.config.skill_hints import PolicySkillHints, check_library
from paxis_router.config.verifiers import VERIFIER_KINDS, VerifierSpec, build_verifier
from paxis_router.errors import ConfigError
from paxis_router.governance.gate import GatePolicy
from paxis_router.policy.outage import OutagePolicy
from paxis_router.policy.predicates import EscalationPolicy, Predicate
from paxis_router.pricing import GpuHourPrice, Price, TokenPrice, litellm_price
from paxis_router.router import Router
from paxis_router.shadow import ShadowSampling
from paxis_router.workers.destination import LOCAL, destination_for_url, host_on_premises, url_host
from paxis_router.workers.resilience import ResilienceConfig

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from paxis_router.ledger.postgres import PostgresLedger
    from paxis_router.ledger.sqlite import SQLiteLedger
    from paxis_router.workers.base import Tier

logger = logging.getLogger(__name__)

DEFAULT_ESCALATE_WHEN: Any = {"any_of": ["verdict_failed", {"confidence_below": 0.7}]}  # Any: YAML
DEFAULT_STOP_WHEN: Any = {"any_of": ["tiers_exhausted", {"spent_over": "0.05"}]}  # Any: YAML


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- tiers ----------------------------------------------------------------------------------------


def _kinds(spec: type[BaseModel]) -> tuple[str, ...]:
    """The ``kind`` values a spec class accepts (its ``Literal``)."""
    return tuple(get_args(spec.model_fields["kind"].annotation))


class _TierSpec(_Model):
    """What every tier kind shares: its name, where its data goes, and how it is priced.

    Pricing, at most one of: ``usd_per_gpu_hour`` (with ``gpus`` and optionally
    ``throughput_tokens_per_s``: a local GPU tier), ``usd_per_mtok_in`` + ``usd_per_mtok_out``
    (a per-token price), or ``litellm_model`` (litellm's bundled map under that name; a litellm
    tier uses its own model by default). None of them: the price is unknown (logged, never 0).

    ``destination`` (for the action gate) may be omitted: an ``openai_compat`` tier's is derived
    from its ``base_url`` (``local`` for loopback or a ``gate.on_premises_hosts`` host, else
    ``remote:<host>``), a litellm tier's is its provider. A label on the premises on a tier that
    connects elsewhere is refused at load (:func:`check_tier_destinations`).
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
        "metadata paxis-adapter: NAME goes to its adapter, the rest to model",
    )
    skill_adapters: bool = Field(
        default=True, description="request a skill's `paxis-adapter` LoRA adapter as the model"
    )
    accepts_images: bool = Field(
        default=False, description="the served model reads image parts (else they are refused)"
    )
    max_response_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1, description="cap on a response body (a stream's total)"
    )

    def build(self, cfg: RouterConfig, base_dir: Path) -> Tier:
        """An ``OpenAICompatWorker`` tier (with its LoRA adapters when ``adapters`` is given)."""
        from paxis_router.workers.base import Tier
        from paxis_router.workers.openai_compat import OpenAICompatWorker

        api_key = None
        if self.api_key_env is not None:
            api_key = os.environ.get(self.api_key_env)
            if api_key is None:
                raise ConfigError(
                    f"api_key_env: environment variable {self.api_key_env} is not set; export "
                    "it with the server's API key"
                )
        price = self.price(cfg.policy.price_overrides, None)
        hosts = cfg.gate.hosts if cfg.gate is not None else None
        resilience = self.resilience
        worker = OpenAICompatWorker(
            self.tier_name,
            self.model,
            self.base_url,
            api_key=api_key,
            price=price,
            destination=self.destination or destination_for_url(self.base_url, hosts),
            timeout_s=self.timeout_s,
            logprobs=self.logprobs,
            extra_body=self.extra_body,
            max_context_tokens=self.max_context_tokens,
            skill_adapters=self.skill_adapters or self.adapters is not None,
            connect_timeout_s=resilience.connect_timeout_s if resilience else None,
            read_timeout_s=resilience.read_timeout_s if resilience else None,
            adapters=self.adapters,
            accepts_images=self.accepts_images,
            max_response_bytes=self.max_response_bytes,
        )
        return Tier(worker, price, worker.destination, self.max_context_tokens)


class LiteLLMTierSpec(_TierSpec):
    """``kind: litellm``: a frontier provider through litellm (priced from its map by default)."""

    kind: Literal["litellm"]
    _prefix: ClassVar[str] = "frontier"
    model: str = Field(min_length=1)
    timeout_s: float = Field(default=120.0, gt=0)
    completion_kwargs: dict[str, Any] = Field(default_factory=dict)  # Any: litellm keywords
    accepts_images: bool | None = Field(
        default=None, description="the model reads images; default: litellm's map says"
    )

    def build(self, cfg: RouterConfig, base_dir: Path) -> Tier:
        """A ``LiteLLMWorker`` tier, priced from the map under its model by default."""
        from paxis_router.workers.base import Tier
        from paxis_router.workers.litellm import LiteLLMWorker

        price = self.price(cfg.policy.price_overrides, self.model)
        worker = LiteLLMWorker(
            self.model,
            name=self.tier_name,
            price=price,
            destination=self.destination,
            timeout_s=self.timeout_s,
            completion_kwargs=self.completion_kwargs,
            accepts_images=self.accepts_images,
        )
        window = self.max_context_tokens or worker.max_context_tokens
        return Tier(worker, price, worker.destination, window)


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

    def build(self, cfg: RouterConfig, base_dir: Path) -> Tier:
        """A ``ReplayWorker`` tier serving the recorded outcomes of ``model``."""
        from paxis_router.workers.base import Tier
        from paxis_router.workers.replay import (
            ReplayWorker,
            drop_ids,
            load_routellm_gsm8k,
            routellm_contaminated_ids,
        )

        outcomes = load_routellm_gsm8k(base_dir / self.data, self.model)
        if self.exclude is not None:
            outcomes = drop_ids(outcomes, routellm_contaminated_ids(base_dir / self.exclude))
        price = self.price(cfg.policy.price_overrides, None)
        worker = ReplayWorker(
            self.tier_name,
            outcomes,
            model=self.model,
            price=price,
            destination=self.destination or "local",
        )
        return Tier(worker, price, worker.destination, self.max_context_tokens)


# Every tier kind: adding one is a spec class with ``kind`` and ``build``, listed here.
TIER_SPECS: tuple[type[_TierSpec], ...] = (OpenAICompatTierSpec, LiteLLMTierSpec, ReplayTierSpec)
TierSpec = Annotated[
    Union[OpenAICompatTierSpec, LiteLLMTierSpec, ReplayTierSpec],  # noqa: UP007  # discriminated
    Field(discriminator="kind"),
]
TIER_KINDS: tuple[str, ...] = tuple(k for spec in TIER_SPECS for k in _kinds(spec))


# --- policy, ledger, skills ---------------------------------------------------------------------


class PriceOverride(_Model):
    """A per-model price that replaces the price map (e.g. a negotiated rate). Cached prompt
    tokens cost ``cached_input_usd_per_mtok`` (default: the input rate), reasoning tokens
    ``reasoning_usd_per_mtok`` (default: the output rate)."""

    input_usd_per_mtok: Decimal = Field(ge=0)
    output_usd_per_mtok: Decimal = Field(ge=0)
    cached_input_usd_per_mtok: Decimal | None = Field(default=None, ge=0)
    reasoning_usd_per_mtok: Decimal | None = Field(default=None, ge=0)

    def token_price(self) -> TokenPrice:
        return TokenPrice.per_million(
            self.input_usd_per_mtok,
            self.output_usd_per_mtok,
            cached_input=self.cached_input_usd_per_mtok,
            reasoning=self.reasoning_usd_per_mtok,
        )


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
    """``audit:``: the tamper-evident audit log (paths relative to the working directory).

    ``include_payload`` stores prompts and answers in the log (off: hashes only); ``fsync``
    makes records durable in the background (one fsync per batch). The HMAC key is read from
    ``key_file``, else from the environment variable ``key_env``; never from this file. A keyed
    log writes a signed checkpoint every ``checkpoint_every`` records (and on close) to
    ``checkpoints`` (default: ``<path>.checkpoints``).
    """

    path: Path = Path("paxis-audit.jsonl")
    include_payload: bool = False
    fsync: bool = True
    key_file: Path | None = None
    key_env: str = "PAXIS_AUDIT_KEY"
    checkpoints: Path | None = None
    checkpoint_every: int = Field(default=256, ge=0)


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
    reports: dict[str, Any] | None = None  # Any: paxis report reads it (reports/settings.py)
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


_TAGS = frozenset({*TIER_KINDS, *VERIFIER_KINDS})


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
        raise config_error(exc, source=source) from exc
    cfg._source = source
    _check_unique_tier_names(cfg, source=source)
    check_tier_destinations(cfg, source=source)
    return cfg


_MORE_SHOWN = 3


def config_error(exc: ValidationError, *, source: str | None = None) -> ConfigError:
    """One ConfigError for a failed validation: the real cause first, the rest after it.

    An unknown key comes first, with the nearest valid key (``difflib``) when one is close; a
    "Field required" that only repeats it (the key it was probably meant to be) is left out; an
    unknown ``kind`` names the nearest one and lists the valid ones.

    Example:
        >>> try:
        ...     RouterConfig.model_validate({"tiers": [{"kind": "local", "model": "q",
        ...                                             "baseurl": "http://127.0.0.1:8000/v1"}]})
        ... except ValidationError as exc:
        ...     print(config_error(exc, source="policy.yaml"))
        policy.yaml: tiers[0].baseurl: unknown key; did you mean 'base_url'?
    """
    errors = list(exc.errors())
    suggested: set[tuple[int | str, ...]] = set()
    described: list[tuple[int, str, str]] = []  # (rank, field, message)
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            message, nearest = _unknown_key(loc)
            if nearest is not None:
                suggested.add((*loc[:-1], nearest))
            described.append((0, _dotted(loc), message))
        elif error["type"] == "union_tag_invalid":
            ctx = error.get("ctx") or {}
            described.append((1, _dotted(loc), _unknown_kind(ctx)))
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            rank = 3 if error["type"] == "missing" else 2
            described.append((rank, _dotted(loc), message))
    kept = [
        (rank, field, message)
        for (rank, field, message), error in zip(described, errors, strict=True)
        if not (error["type"] == "missing" and tuple(error["loc"]) in suggested)
    ]
    kept.sort(key=lambda item: item[0])  # stable: the file's order within a rank
    _, field, message = kept[0]
    rest = [f"{f}: {m}" if f else m for _, f, m in kept[1 : 1 + _MORE_SHOWN]]
    if len(kept) > 1 + _MORE_SHOWN:
        rest.append(f"{len(kept) - 1 - _MORE_SHOWN} more")
    if rest:
        message += f" (also: {'; '.join(rest)})"
    return ConfigError(message, source=source, field=field or None)


def _unknown_key(loc: tuple[int | str, ...]) -> tuple[str, str | None]:
    """The message for an unknown key at ``loc`` and the nearest valid key, if one is close."""
    key = str(loc[-1])
    valid = sorted(_keys_at(loc[:-1]))
    nearest = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if nearest:
        return f"unknown key; did you mean {nearest[0]!r}?", nearest[0]
    if valid:
        return f"unknown key; the keys here are: {', '.join(valid)}", None
    return "unknown key; check its spelling and the section it is in", None


def _unknown_kind(ctx: dict[str, Any]) -> str:  # Any: pydantic's error context
    tag = str(ctx.get("tag", ""))
    expected = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
    expected = [t for t in expected if t]
    nearest = difflib.get_close_matches(tag, expected, n=1, cutoff=0.6)
    hint = f"did you mean {nearest[0]!r}? " if nearest else ""
    return f"unknown kind {tag!r}; {hint}kind is one of: {', '.join(expected)}"


def _alternatives(annotation: Any) -> list[Any]:  # Any: a type annotation
    """The types an annotation allows (Annotated, Optional and unions unwrapped)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _alternatives(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [alt for arg in get_args(annotation) for alt in _alternatives(arg)]
    return [annotation]


def _models(options: list[Any]) -> list[type[BaseModel]]:  # Any: type annotations
    return [t for t in options if isinstance(t, type) and issubclass(t, BaseModel)]


def _keys_at(loc: tuple[int | str, ...]) -> set[str]:
    """The keys the config models accept at ``loc`` (a pydantic error location)."""
    options: list[Any] = [RouterConfig]  # Any: type annotations
    for part in loc:
        tagged = [
            m
            for m in _models(options)
            if "kind" in m.model_fields
            and part not in m.model_fields
            and part in get_args(m.model_fields["kind"].annotation)
        ]
        if tagged:  # pydantic's discriminated-union segment: the kind the input named
            options = list(tagged)
            continue
        following: list[Any] = []  # Any: type annotations
        for option in options:
            origin = get_origin(option)
            if isinstance(part, int) and origin in (list, tuple, set, frozenset):
                args = [a for a in get_args(option) if a is not Ellipsis]
                following += [alt for arg in args for alt in _alternatives(arg)]
            elif origin is dict and len(get_args(option)) == 2:
                following += _alternatives(get_args(option)[1])
            elif isinstance(option, type) and issubclass(option, BaseModel):
                field = option.model_fields.get(str(part))
                if field is not None:
                    following += _alternatives(field.annotation)
        options = following
    return {name for m in _models(options) for name in m.model_fields}


def _check_unique_tier_names(cfg: RouterConfig, *, source: str | None) -> None:
    seen: dict[str, int] = {}
    for i, spec in enumerate(cfg.tiers):
        name = spec.tier_name
        if name in seen:
            raise ConfigError(
                f"tier name {name!r} is already used by tiers[{seen[name]}]; ledger rows and "
                "reports key on it: give one of them another `name`",
                source=source,
                field=f"tiers[{i}].name",
            )
        seen[name] = i


def check_tier_destinations(cfg: RouterConfig, *, source: str | None = None) -> None:
    """Refuse a tier labelled on-premises (``destination: local``, or a ``gate.premises``
    pattern) whose URL's host is neither loopback nor in ``gate.on_premises_hosts``: a label
    cannot send data elsewhere (see ``paxis_router.workers.destination``)."""
    gate = cfg.gate
    hosts = gate.hosts if gate is not None else None
    for i, spec in enumerate(cfg.tiers):
        label = spec.destination
        if label is None or not (gate.on_premises(label) if gate else label == LOCAL):
            continue
        if isinstance(spec, OpenAICompatTierSpec):
            url, where = spec.base_url, "base_url"
        elif isinstance(spec, LiteLLMTierSpec):
            kwargs = spec.completion_kwargs
            url = str(kwargs.get("api_base") or kwargs.get("base_url") or "")
            where = "completion_kwargs.api_base"
        else:
            continue  # a replay tier connects nowhere
        host = url_host(url) if url else None
        if host is not None and host_on_premises(host, hosts):
            continue
        connects = (
            f"its {where} {url!r} connects to {host!r}"
            if host is not None
            else f"it names no {where} of an on-premises server (it calls the provider's API)"
        )
        raise ConfigError(
            f"destination {label!r} says this tier stays on the premises, but {connects}, which "
            "is neither loopback nor declared in gate.on_premises_hosts. Remove `destination` "
            "(it is derived from base_url) or declare the host (a name, a CIDR network or a "
            ".domain suffix) under gate.on_premises_hosts",
            source=source,
            field=f"tiers[{i}].destination",
        )


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (plain YAML keeps the
    last one silently, so a second ``tiers:`` would replace the first). Keys brought in by a
    ``<<`` merge may still be overridden, as YAML intends.

    Example:
        >>> yaml.load("a: 1\\nb: 2\\na: 3\\n", Loader=UniqueKeyLoader)
        Traceback (most recent call last):
        ...
        yaml.constructor.ConstructorError: while constructing a mapping
        found duplicate key 'a' (first at line 1)
          in "<unicode string>", line 3, column 1:
            a: 3
            ^
    """

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:  # Any: YAML
        if isinstance(node, yaml.MappingNode):
            seen: dict[object, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line)
                except TypeError:  # an unhashable key: SafeLoader reports it itself
                    continue
                if first != key_node.start_mark.line:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        None,
                        f"found duplicate key {key!r} (first at line {first + 1})",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]


def load_config(path: str | Path) -> RouterConfig:
    """Read a policy file: YAML (a duplicate key is an error) then ``RouterConfig.model_validate``.

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
        raw = yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader subclass: safe
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", source=source) from exc
    cfg = config_from_mapping(raw, source=source)
    cfg._base_dir = Path(path).resolve().parent
    return cfg


# --- building -----------------------------------------------------------------------------------


def build_router(cfg: RouterConfig, *, base_dir: str | Path | None = None) -> Router:
    """The Router a config describes; what ``Router.from_config`` calls.

    ``base_dir`` is where relative paths start (default: the policy file's folder).
    """
    root = Path(base_dir) if base_dir is not None else cfg.base_dir
    tiers = []
    for i, tier_spec in enumerate(cfg.tiers):
        with _located(cfg, f"tiers[{i}]"):
            tier = tier_spec.build(cfg, root)
            if tier_spec.resilience is not None:
                from dataclasses import replace

                from paxis_router.workers.resilience import Resilience

                tier = replace(tier, resilience=Resilience(tier_spec.resilience))
            tiers.append(tier)
    gate = None
    if cfg.gate is not None:
        from paxis_router.governance.gate import Gate

        gate = Gate(cfg.gate)
    audit = None
    if cfg.audit is not None:
        from paxis_router.governance.audit import AuditLog

        spec = cfg.audit
        audit = AuditLog(
            spec.path,
            include_payload=spec.include_payload,
            fsync=spec.fsync,
            key_file=spec.key_file,
            key_env=spec.key_env,
            checkpoints=spec.checkpoints,
            checkpoint_every=spec.checkpoint_every,
        )
    verifiers = []  # built under the gate and audit log: script verifiers run under both
    for i, verifier_spec in enumerate(cfg.verifiers):
        with _located(cfg, f"verifiers[{i}]"):
            verifiers.append(build_verifier(verifier_spec, root, gate=gate, audit=audit))
    ledger = None
    if cfg.ledger is not None:
        ledger = cfg.ledger.open()
    budgets = None
    if cfg.budgets is not None:
        from paxis_router.governance.budgets import Budgets

        budgets = Budgets.from_config(cfg.budgets, ledger=ledger, source=cfg._source)
    hints = PolicySkillHints(_build_policy_section, gate=gate, audit=audit)
    skills = None
    skills_k = 3
    if cfg.skills is not None:
        from paxis_router.skills.library import SkillLibrary

        skills = SkillLibrary.from_dir(
            root / cfg.skills.dir, fallback=cfg.skills.fallback, min_score=cfg.skills.min_score
        )
        skills_k = cfg.skills.k
        with _located(cfg, "skills"):
            check_library(skills, hints)
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
        skill_hints=hints,
        shadow=ShadowSampling(
            rate=calibration.shadow_rate,
            seed=calibration.shadow_seed,
            inline=calibration.inline,
            max_pending=calibration.max_pending,
        ),
    )


def _build_policy_section(section: Mapping[str, object]) -> EscalationPolicy:
    """A skill's ``paxis-policy`` (a ``policy:`` section) -> its EscalationPolicy."""
    return PolicySpec.model_validate(dict(section)).build()


@contextlib.contextmanager
def _located(cfg: RouterConfig, field: str) -> Iterator[None]:
    """Re-raise a ConfigError from building a section with the policy file and field named (an
    error about another file, such as a schema file, keeps that file's name after them)."""
    try:
        yield
    except ConfigError as exc:
        if exc.source is not None and (exc.source == cfg._source or cfg._source is None):
            raise
        inner = field if exc.source is not None else exc.field or field  # str(exc) has its own
        raise ConfigError(str(exc), source=cfg._source, field=inner) from exc
