"""``paxis route --policy FILE "text"``: route one request with a policy file, print the answer."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from paxis_router.cli._output import emit, emit_json

if TYPE_CHECKING:
    import argparse

    from paxis_router.router import Router
    from paxis_router.types import ChatRequest, RouteResult


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``paxis route``."""
    parser = sub.add_parser(
        "route",
        help="route one request with a policy file",
        description="Route one request up the policy's ladder; print the answer, who gave it, "
        "why, and what it cost. Every attempt goes to the policy's ledger.",
    )
    parser.add_argument("text", help="the user message")
    parser.add_argument("--policy", type=Path, required=True, help="policy file (YAML)")
    parser.add_argument("--team", default=None, help="the team that pays (metadata.team)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``paxis route``; exit 0 with an accepted answer, 1 with a rejected best one."""
    import asyncio

    from paxis_router.config.schema import load_config
    from paxis_router.router import Router
    from paxis_router.types import ChatRequest

    cfg = load_config(args.policy)
    router = Router.from_config(cfg)
    metadata = {"team": args.team} if args.team else {}
    try:
        result = asyncio.run(_route_once(router, ChatRequest.from_text(args.text, **metadata)))
    finally:
        for sink in router.sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                close()
    if args.json:
        emit_json(result_json(result))
    else:
        emit(result.content)
        emit()
        cost = "unknown" if result.cost_usd is None else f"${result.cost_usd:.6f}"
        state = "accepted" if result.accepted else "NOT accepted (best answer)"
        emit(f"# {state} from {result.tier} after {len(result.attempts)} attempt(s); cost {cost}")
        emit(f"# {result.reason}")
    return 0 if result.accepted else 1


async def _route_once(router: Router, request: ChatRequest) -> RouteResult:
    try:
        return await router.route(request)
    finally:
        await router.aclose()  # drains a shadow call, then closes the workers' clients


def result_json(result: RouteResult) -> dict[str, Any]:  # Any: a JSON object
    """A RouteResult as a JSON object (Decimal money as strings)."""
    return {
        "route_id": result.route_id,
        "request_id": result.request_id,
        "content": result.content,
        "tier": result.tier,
        "accepted": result.accepted,
        "decision": str(result.decision),
        "reason": result.reason,
        "escalated": result.escalated,
        "degraded": result.degraded,
        "cost_usd": result.cost_usd,
        "counterfactual_usd": result.counterfactual_usd,
        "usage": {
            "prompt_tokens": result.usage.prompt_tokens,
            "completion_tokens": result.usage.completion_tokens,
        },
        "attempts": [
            {
                "tier": a.tier,
                "decision": str(a.decision),
                "reason": a.reason,
                "passed": a.passed,
                "error": a.error,
                "cost_usd": a.cost_usd,
                "latency_s": round(a.latency_s, 6),
            }
            for a in result.attempts
        ],
    }
