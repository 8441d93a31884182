"""``paxis policy check FILE``: validate a policy file without routing anything.

Loads the file exactly as ``paxis serve`` and ``paxis route`` do, builds every tier, verifier,
skill library and gate it names (no request is sent, no ledger or audit file is created), and
prints what it loaded: each tier with where its data goes and what it costs (and where that price
comes from), the verifiers, the escalation policy, the gate, the audit log and the ledger.
Exit 0 when the policy loads, 1 with the first problem (file, field and what to do) otherwise.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paxis_router.cli._output import emit, emit_json, plain, usd

if TYPE_CHECKING:
    from paxis_router.config.schema import RouterConfig
    from paxis_router.pricing import Price
    from paxis_router.router import Router

_EPILOG = """\
examples:
  paxis policy check policy.yaml
  paxis policy check policy.yaml --json

exit status: 0 when the policy loads, 1 when it does not (the error names file and field).
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``paxis policy`` and its ``check`` action."""
    parser = sub.add_parser(
        "policy",
        help="check a policy file without routing",
        description="Work with policy files (tiers, verifiers, escalation, gate, ledger).",
    )
    actions = parser.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="validate a policy file and print what it loads (exit 0/1)",
        description=plain(__doc__),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("file", type=Path, metavar="FILE", help="the policy file (YAML)")
    check.add_argument("--json", action="store_true", help="print what was loaded as JSON")
    check.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Handler of ``paxis policy check``: 0 when the policy loads, 1 (and why) when not."""
    import sys

    from paxis_router.errors import ConfigError, PaxisError

    source = str(args.file)
    try:
        cfg, router = _load(args.file)
    except ConfigError as exc:
        if exc.source is None:  # raised while building, outside any section: name the file
            exc = ConfigError(str(exc), source=source)
        _fail(sys.stderr.write, exc, args.json, source)
        return 1
    except PaxisError as exc:
        _fail(sys.stderr.write, exc, args.json, source)
        return 1
    try:
        loaded = describe(cfg, router)
    finally:
        _close(router)
    if args.json:
        emit_json({"ok": True, "file": source, **loaded})
    else:
        _print(source, loaded)
    return 0


def _fail(write: Any, exc: Exception, as_json: bool, source: str) -> None:  # Any: a writer
    if as_json:
        emit_json({"ok": False, "file": source, "error": str(exc)})
    else:
        write(f"paxis policy check: error: {exc}\n")


def _load(path: Path) -> tuple[RouterConfig, Router]:
    """The policy and its Router, built without a ledger or an audit log (nothing is written)."""
    from paxis_router.config.schema import load_config
    from paxis_router.router import Router

    cfg = load_config(path)
    return cfg, Router.from_config(cfg.model_copy(update={"ledger": None, "audit": None}))


def _close(router: Router) -> None:
    import asyncio

    asyncio.run(router.aclose())


def describe(cfg: RouterConfig, router: Router) -> dict[str, Any]:  # Any: a JSON object
    """What a policy loads, as a JSON object (money as strings)."""
    from paxis_router.pricing import price_map_source

    tiers = []
    for index, (spec, tier) in enumerate(zip(cfg.tiers, router.tiers, strict=True)):
        tiers.append(
            {
                "index": index,
                "name": tier.name,
                "kind": spec.kind,
                "connects_to": _connects_to(spec, cfg),
                "destination": tier.destination,
                "price": _price_text(tier.price),
                "price_from": _price_from(spec, cfg),
                "max_context_tokens": tier.max_context_tokens,
            }
        )
    ledger = cfg.ledger
    return {
        "tiers": tiers,
        "verifiers": [v.name for v in router.verifiers],
        "policy": {
            "escalate_when": cfg.policy.escalate_when,
            "stop_when": cfg.policy.stop_when,
            "on_exhausted": cfg.policy.on_exhausted,
        },
        "skills": None
        if cfg.skills is None
        else {
            "dir": str((cfg.base_dir / cfg.skills.dir).resolve()),
            "count": len(router.skills) if isinstance(router.skills, Sized) else None,
        },
        "gate": None
        if cfg.gate is None
        else {"version": cfg.gate.version, "rules": len(cfg.gate.rules)},
        "audit": None if cfg.audit is None else str(cfg.audit.path),
        "ledger": None
        if ledger is None
        else (
            f"postgres {_without_password(ledger.url)}"
            if ledger.url
            else f"sqlite {ledger.path} (relative to the working directory)"
        ),
        "prices_from": price_map_source(),
    }


def _connects_to(spec: Any, cfg: RouterConfig) -> str:  # Any: one of the tier specs
    from paxis_router.config.schema import LiteLLMTierSpec, OpenAICompatTierSpec

    if isinstance(spec, OpenAICompatTierSpec):
        return f"{spec.base_url} (model {spec.model})"
    if isinstance(spec, LiteLLMTierSpec):
        base = spec.completion_kwargs.get("api_base") or spec.completion_kwargs.get("base_url")
        return f"litellm {spec.model}" + (f" at {base}" if base else " (the provider's API)")
    return f"replayed answers of {spec.model} from {(cfg.base_dir / spec.data).resolve()}"


def _price_text(price: Price | None) -> str:
    from decimal import Decimal

    from paxis_router.pricing import GpuHourPrice, TokenPrice

    million = Decimal(1_000_000)
    if price is None:
        return "unknown (its calls are recorded with an unknown cost, never $0)"
    if isinstance(price, TokenPrice):
        text = (
            f"{usd(price.input_usd_per_token * million, places=4)} in / "
            f"{usd(price.output_usd_per_token * million, places=4)} out per million tokens"
        )
        if price.cached_input_usd_per_token is not None:
            text += f"; cached input {usd(price.cached_input_usd_per_token * million, places=4)}"
        if price.reasoning_usd_per_token is not None:
            text += f"; reasoning {usd(price.reasoning_usd_per_token * million, places=4)}"
        return text
    if isinstance(price, GpuHourPrice):
        gpus = f"{price.gpus} GPU{'s' if price.gpus != 1 else ''}"
        text = f"{usd(price.usd_per_gpu_hour, places=4)} per GPU-hour x {gpus}"
        per_million = price.usd_per_million_tokens
        if per_million is not None:
            return (
                f"{text} at {price.throughput_tokens_per_s} tokens/s "
                f"(= {usd(per_million, places=4)} per million tokens)"
            )
        return f"{text}, charged for each call's latency"
    return type(price).__name__


def _price_from(spec: Any, cfg: RouterConfig) -> str:  # Any: one of the tier specs
    if spec.usd_per_gpu_hour is not None or spec.usd_per_mtok_in is not None:
        return "the tier"
    model = spec.litellm_model or (spec.model if spec.kind == "litellm" else None)
    if model is None:
        return "nowhere (no price given)"
    if model in cfg.policy.price_overrides:
        return f"policy.price_overrides[{model!r}]"
    return f"the price map ({model})"


def _without_password(url: str | None) -> str:
    if not url or "@" not in url:
        return str(url)
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def _print(source: str, loaded: dict[str, Any]) -> None:  # Any: the JSON object of describe()
    emit(f"{source}: OK")
    emit("tiers (cheapest first):")
    for tier in loaded["tiers"]:
        emit(f"  {tier['index'] + 1}. {tier['name']} ({tier['kind']})")
        emit(f"     connects to: {tier['connects_to']}; destination: {tier['destination']}")
        emit(f"     price: {tier['price']} [from {tier['price_from']}]")
    emit(f"verifiers: {', '.join(loaded['verifiers']) or 'none (every answer is accepted)'}")
    policy = loaded["policy"]
    emit(f"escalate when: {json.dumps(policy['escalate_when'])}")
    emit(f"stop when: {json.dumps(policy['stop_when'])}")
    emit(f"when every tier is rejected: {policy['on_exhausted']}")
    skills = loaded["skills"]
    emit("skills: none" if skills is None else f"skills: {skills['count']} in {skills['dir']}")
    gate = loaded["gate"]
    emit(
        "gate: none (every tier may be called)"
        if gate is None
        else f"gate: version {gate['version']}, {gate['rules']} rule(s)"
    )
    emit(f"audit log: {loaded['audit'] or 'none'}")
    emit(f"ledger: {loaded['ledger'] or 'none (attempts are not recorded)'}")
    emit(f"prices from: {loaded['prices_from']}")
