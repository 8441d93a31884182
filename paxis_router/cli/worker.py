"""``paxis worker plan``: the vLLM command and paxis tier for a base model + LoRA adapters."""

from __future__ import annotations

import argparse
from decimal import Decimal, InvalidOperation

from paxis_router.cli._output import emit, emit_json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``paxis worker`` and its ``plan`` subcommand."""
    parser = sub.add_parser(
        "worker",
        help="plan a local worker (vLLM with a LoRA adapter per skill)",
        description="Local worker serving: one base model with a LoRA adapter per skill.",
        epilog="examples:\n  paxis worker plan --base Qwen/Qwen2.5-1.5B-Instruct "
        "--adapter invoices=/models/invoice-lora",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="worker_command", required=True, metavar="ACTION")
    plan = actions.add_parser(
        "plan",
        help="print the vllm serve command and the matching paxis tier config",
        description="Print the `vllm serve` command (--enable-lora, --lora-modules ...) and "
        "the tier for a paxis policy file; skills route to an adapter with "
        "`metadata: {paxis-adapter: NAME}` in their SKILL.md.",
    )
    plan.add_argument("--base", required=True, help="base model (hub id or local folder)")
    plan.add_argument(
        "--adapter",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a LoRA adapter (repeat for each skill's adapter)",
    )
    plan.add_argument("--max-loras", type=int, default=None, help="default: number of adapters")
    plan.add_argument(
        "--max-lora-rank", type=int, default=None, help="default: read from the adapters, else 16"
    )
    plan.add_argument("--host", default="127.0.0.1", help="where vLLM listens (default 127.0.0.1)")
    plan.add_argument("--port", type=int, default=8000, help="vLLM's port (default 8000)")
    plan.add_argument("--tier-name", default=None, help="default: local:<base name>")
    plan.add_argument(
        "--usd-per-gpu-hour", type=_decimal, default=None, help="GPU price for the tier's cost"
    )
    plan.add_argument("--gpus", type=int, default=1, help="GPUs (tensor parallel when > 1)")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(handler=run_plan)


def run_plan(args: argparse.Namespace) -> int:
    """Handler of ``paxis worker plan``."""
    import yaml

    from paxis_router.training.worker_plan import WorkerPlan, parse_adapter

    plan = WorkerPlan(
        base=args.base,
        adapters=tuple(parse_adapter(a) for a in args.adapter),
        max_loras=args.max_loras,
        max_lora_rank=args.max_lora_rank,
        host=args.host,
        port=args.port,
        tier_name=args.tier_name,
        usd_per_gpu_hour=args.usd_per_gpu_hour,
        gpus=args.gpus,
    )
    if args.json:
        emit_json(plan.to_json())
        return 0
    emit("# 1. start the worker server:")
    emit(plan.shell())
    emit("")
    emit("# 2. the tier for your paxis policy file (first rung of the ladder):")
    emit(yaml.safe_dump({"tiers": [plan.tier_config()]}, sort_keys=False).rstrip())
    for name, metadata in plan.skill_metadata().items():
        emit("")
        emit(f"# 3. in the SKILL.md frontmatter of the skill adapter {name!r} was trained for:")
        emit(yaml.safe_dump({"metadata": metadata}, sort_keys=False).rstrip())
    return 0


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"not a decimal number: {text!r}") from exc
