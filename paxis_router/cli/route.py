"""``paxis route --policy FILE "text"``: route one request with a policy file, print the answer."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paxis_router.cli._output import emit, emit_json, savings_text, usd, usd_json
from paxis_router.errors import ConfigError

if TYPE_CHECKING:
    from paxis_router.router import Router
    from paxis_router.types import ChatRequest, RouteResult

_EPILOG = """\
examples:
  paxis route --policy policy.yaml "What is 17 * 23?"
  paxis route --policy policy.yaml --team claims --skill invoice-extraction "Total of INV-7?"
  paxis route --policy policy.yaml --data-class confidential --metadata project=renewals "..."
  echo "Summarise: ..." | paxis route --policy policy.yaml --json -

exit status: 0 with an accepted answer, 1 with a rejected best answer (on_exhausted:
return_best), 2 when the policy or the request is wrong or no tier could answer.
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``paxis route``."""
    parser = sub.add_parser(
        "route",
        help="route one request with a policy file",
        description="Route one request up the policy's ladder; print the answer, who gave it, "
        "why, and what it cost. Every attempt goes to the policy's ledger.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("text", metavar="TEXT", help="the user message; - reads it from stdin")
    parser.add_argument(
        "--policy", type=Path, required=True, metavar="FILE", help="the policy file (YAML)"
    )
    parser.add_argument(
        "--team", default=None, metavar="TEAM", help="the team that pays (metadata team)"
    )
    parser.add_argument(
        "--skill",
        default=None,
        metavar="ID[,ID...]",
        help="use these skills of the policy's skills folder instead of selecting them "
        "(`paxis skills list` shows the ids)",
    )
    parser.add_argument(
        "--data-class",
        default=None,
        metavar="CLASS",
        help="the request's data classification, read by the policy's gate (e.g. public, "
        "internal, confidential, restricted; default internal)",
    )
    parser.add_argument(
        "--metadata",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a metadata entry, recorded with each attempt as a tag (repeatable; "
        "e.g. --metadata project=renewals); --team, --skill and --data-class win over it",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON (money as strings)"
    )
    parser.set_defaults(handler=run)


def request_metadata(args: argparse.Namespace) -> dict[str, str]:
    """The request's metadata from ``--metadata KEY=VALUE`` and the named options."""
    metadata: dict[str, str] = {}
    for item in args.metadata:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"--metadata {item!r}: expected KEY=VALUE, e.g. --metadata project=renewals",
                field="--metadata",
            )
        metadata[key.strip()] = value
    for key, value in (("team", args.team), ("skill", args.skill), ("data_class", args.data_class)):
        if value:
            metadata[key] = value
    return metadata


def run(args: argparse.Namespace) -> int:
    """Handler of ``paxis route``; exit 0 with an accepted answer, 1 with a rejected best one."""
    import asyncio

    from paxis_router.config.schema import load_config
    from paxis_router.router import Router
    from paxis_router.types import ChatRequest

    text: str = sys.stdin.read() if args.text == "-" else args.text
    if not text.strip():
        raise ConfigError("the message is empty", field="TEXT")
    metadata = request_metadata(args)
    cfg = load_config(args.policy)
    router = Router.from_config(cfg)
    try:
        result = asyncio.run(_route_once(router, ChatRequest.from_text(text, **metadata)))
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
        state = "accepted" if result.accepted else "NOT accepted (best answer)"
        emit(f"# {state} from {result.tier} after {len(result.attempts)} attempt(s)")
        if result.skills:
            emit(f"# skills: {', '.join(result.skills)}")
        emit(f"# reason: {result.reason}")
        emit(
            f"# cost {usd(result.cost_usd)}; frontier-only {usd(result.counterfactual_usd)}; "
            f"savings {savings_text(result.cost_usd, result.counterfactual_usd, places=6)}"
        )
    return 0 if result.accepted else 1


async def _route_once(router: Router, request: ChatRequest) -> RouteResult:
    try:
        return await router.route(request)
    finally:
        await router.aclose()  # drains a shadow call, then closes the workers' clients


def result_json(result: RouteResult) -> dict[str, Any]:  # Any: a JSON object
    """A RouteResult as a JSON object; money as fixed-point strings (``cli._output.usd_json``)."""
    usage = result.usage
    return {
        "route_id": result.route_id,
        "request_id": result.request_id,
        "content": result.content,
        "tier": result.tier,
        "accepted": result.accepted,
        "decision": str(result.decision),
        "reason": result.reason,
        "skills": list(result.skills),
        "escalated": result.escalated,
        "degraded": result.degraded,
        "cost_usd": usd_json(result.cost_usd),
        "counterfactual_usd": usd_json(result.counterfactual_usd),
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_prompt_tokens": usage.cached_prompt_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
        },
        "attempts": [
            {
                "tier": a.tier,
                "decision": str(a.decision),
                "reason": a.reason,
                "passed": a.passed,
                "error": a.error,
                "cost_usd": usd_json(a.cost_usd),
                "latency_s": round(a.latency_s, 6),
            }
            for a in result.attempts
        ],
    }
