"""GPU benchmark: per-skill LoRA adapters behind the router, served by vLLM (or transformers).

What it does, all offline:

1. creates a small Llama base model locally from a config (random weights, a byte-level
   tokenizer trained here) and two LoRA adapters for it (random, non-zero), in a temp folder;
2. starts the server: ``vllm serve BASE --enable-lora --lora-modules skill-a=... skill-b=...``
   (the command ``paxis worker plan`` prints), or with ``--engine transformers`` the
   transformers + peft server in this folder (clearly NOT vLLM);
3. routes ``--requests`` requests through the real ``Router``: one local tier (an
   ``OpenAICompatWorker`` with adapters,
   built from the plan's tier config), three skills — two name an adapter in their metadata
   (``paxis-adapter``), one goes to the base model — into a SQLite ledger;
4. sends the same prompts (read back from the ledger's stored text) straight through
   ``OpenAICompatWorker``, without the router, as the baseline;
5. prints requests/s, tokens/s, p50/p99 latency, the ledger's rows per adapter, and the cost per
   1,000 requests at ``--usd-per-gpu-hour`` (amortised: the batch's wall-clock GPU time).

    python benchmarks/gpu/bench_vllm.py                          # vLLM on the GPU
    python benchmarks/gpu/bench_vllm.py --engine transformers    # no vLLM installed
    python benchmarks/gpu/bench_vllm.py --engine transformers --device cpu --requests 8  # smoke

``--json`` prints one object with these keys: engine, engine_is_vllm, device, gpu_name, model
(hidden_size, layers, params_m), requests, concurrency, max_tokens, wall_s, requests_per_s,
completion_tokens_per_s, total_tokens_per_s, latency_p50_s, latency_p99_s, usd_per_gpu_hour,
cost_per_1k_requests_usd, ledger_rows_by_model, errors, baseline (the same figures for the
direct, router-less run) and router_vs_direct_rps_ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SERVED_BASE = "tiny-base"
ADAPTERS = ("skill-a", "skill-b")
LORA_RANK = 8
QUESTIONS = (
    "What is the invoice total for order 42?",
    "Triage this ticket: the billing page shows an outage.",
    "Extract the date from: shipped on 2026-03-01.",
    "Sum 17 and 25 and answer with digits only.",
)


def _train_worker() -> Any:  # Any: the examples/train_worker.py module
    spec = importlib.util.spec_from_file_location(
        "train_worker", ROOT / "examples" / "train_worker.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_models(
    workdir: Path, *, hidden: int, layers: int, heads: int, dtype: str
) -> dict[str, Any]:
    """A random base model and two random LoRA adapters in ``workdir``; returns their paths."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = _train_worker().make_tiny_base(
        workdir / "base", hidden_size=hidden, layers=layers, heads=heads, dtype=dtype
    )
    adapters: dict[str, str] = {}
    params = 0
    for seed, name in enumerate(ADAPTERS, start=1):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(str(base))
        params = sum(p.numel() for p in model.parameters())
        lora = LoraConfig(
            r=LORA_RANK,
            lora_alpha=2 * LORA_RANK,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            init_lora_weights=False,  # random A and B: each adapter really changes the output
            task_type="CAUSAL_LM",
        )
        peft_model = get_peft_model(model, lora)
        peft_model.save_pretrained(str(workdir / name))
        adapters[name] = str(workdir / name)
    return {"base": str(base), "adapters": adapters, "params_m": round(params / 1e6, 2)}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    args: argparse.Namespace, models: dict[str, Any], port: int
) -> subprocess.Popen[str]:
    """Start vLLM or the transformers server; returns once it answers /v1/models."""
    from paxis_router.training.worker_plan import WorkerPlan

    adapters = tuple(models["adapters"].items())
    if args.engine == "vllm":
        if shutil.which("vllm") is None and importlib.util.find_spec("vllm") is None:
            raise SystemExit("vLLM is not installed here; rerun with --engine transformers")
        plan = WorkerPlan(models["base"], adapters, port=port, max_lora_rank=LORA_RANK)
        argv = [
            *plan.command(),
            "--served-model-name", SERVED_BASE,
            "--dtype", "bfloat16",
            "--max-model-len", "1024",
            "--gpu-memory-utilization", str(args.gpu_memory_utilization),
        ]  # fmt: skip
        if args.enforce_eager:
            argv.append("--enforce-eager")
        if shutil.which("vllm") is None:
            argv = [sys.executable, "-m", "vllm.entrypoints.cli.main", *argv[1:]]
    else:
        argv = [
            sys.executable, str(HERE / "serve_transformers.py"),
            "--base", models["base"], "--served-name", SERVED_BASE,
            "--port", str(port), "--device", args.device, "--max-batch", str(args.concurrency),
        ]  # fmt: skip
        for name, path in adapters:
            argv += ["--adapter", f"{name}={path}"]
    log = (args.workdir / "server.log").open("w")
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    deadline = time.monotonic() + args.startup_timeout_s
    url = f"http://127.0.0.1:{port}/v1/models"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (args.workdir / "server.log").read_text()[-4000:]
            raise SystemExit(f"the {args.engine} server exited ({proc.returncode}):\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                served = {m["id"] for m in json.loads(response.read())["data"]}
            if {SERVED_BASE, *ADAPTERS} <= served:
                return proc
        except OSError:
            pass
        time.sleep(1.0)
    stop_server(proc)
    raise SystemExit(f"the {args.engine} server did not start within {args.startup_timeout_s} s")


def stop_server(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _requests(n: int, max_tokens: int) -> list[Any]:
    from paxis_router.types import ChatRequest

    skills = ("invoices", "tickets", "general")  # adapters skill-a, skill-b, and the base model
    out = []
    for i in range(n):
        req = ChatRequest.from_text(
            f"{QUESTIONS[i % len(QUESTIONS)]} (#{i})", skill=skills[i % 3], team="bench"
        )
        out.append(req.model_copy(update={"max_tokens": max_tokens, "temperature": 0.0}))
    return out


def _skills() -> Any:
    from paxis_router.skills.library import SkillLibrary
    from paxis_router.skills.model import Skill

    return SkillLibrary(
        [
            Skill(
                "invoices",
                "invoices",
                "Read invoice totals.",
                metadata={"paxis-adapter": "skill-a"},
            ),
            Skill(
                "tickets",
                "tickets",
                "Triage support tickets.",
                metadata={"paxis-adapter": "skill-b"},
            ),
            Skill("general", "general", "Anything else.", metadata={}),
        ]
    )


def _figures(
    latencies: list[float],
    tokens: tuple[int, int],
    wall_s: float,
    n: int,
    errors: int,
    usd_h: Decimal,
) -> dict[str, Any]:
    prompt_tokens, completion_tokens = tokens
    ordered = sorted(latencies) or [0.0]
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    cost_per_1k = usd_h * Decimal(str(wall_s)) / Decimal(3600) / Decimal(max(n - errors, 1)) * 1000
    return {
        "requests": n,
        "errors": errors,
        "wall_s": round(wall_s, 3),
        "requests_per_s": round((n - errors) / wall_s, 2) if wall_s else None,
        "completion_tokens_per_s": round(completion_tokens / wall_s, 1) if wall_s else None,
        "total_tokens_per_s": round((prompt_tokens + completion_tokens) / wall_s, 1)
        if wall_s
        else None,
        "latency_p50_s": round(statistics.median(ordered), 4),
        "latency_p99_s": round(p99, 4),
        "cost_per_1k_requests_usd": str(cost_per_1k.quantize(Decimal("0.000001"))),
    }


async def run_router(
    args: argparse.Namespace, models: dict[str, Any], port: int
) -> tuple[dict[str, Any], list[Any]]:
    """The batch through the real Router (tier from the worker plan's config) into a ledger."""
    from paxis_router.config.schema import RouterConfig
    from paxis_router.ledger.sqlite import SQLiteLedger
    from paxis_router.router import Router
    from paxis_router.training.distill import read_records
    from paxis_router.training.worker_plan import WorkerPlan

    plan = WorkerPlan(
        SERVED_BASE,
        tuple(models["adapters"].items()),
        port=port,
        tier_name="local:tiny-lora",
        usd_per_gpu_hour=args.usd_per_gpu_hour,
    )
    cfg = RouterConfig.model_validate({"tiers": [plan.tier_config()]})
    ledger = SQLiteLedger(args.workdir / "ledger.db", store_content=True)
    tiers = Router.from_config(cfg).tiers
    router = Router(tiers=tiers, skills=_skills(), ledger=ledger)
    await router.route_many(_requests(4, args.max_tokens), concurrency=4)  # warm-up
    batch = _requests(args.requests, args.max_tokens)
    t0 = time.perf_counter()
    results = await router.route_many(batch, concurrency=args.concurrency)
    wall_s = time.perf_counter() - t0
    ok = [r for r in results if not isinstance(r, Exception)]
    latencies = [r.attempts[-1].latency_s for r in ok]
    tokens = (sum(r.usage.prompt_tokens for r in ok), sum(r.usage.completion_tokens for r in ok))
    figures = _figures(
        latencies, tokens, wall_s, len(batch), len(batch) - len(ok), args.usd_per_gpu_hour
    )
    rows = ledger.query(
        "SELECT model, COUNT(*) FROM attempts WHERE id > 4 GROUP BY model ORDER BY model"
    )
    figures["ledger_rows_by_model"] = {str(m): int(c) for m, c in rows}
    figures["first_error"] = next((str(r) for r in results if isinstance(r, Exception)), None)
    await tiers[0].worker.aclose()  # type: ignore[attr-defined]
    # The baseline sends exactly the prompts the router sent (skills in the system message),
    # read back from the ledger's stored text.
    sent = {r.request_id: r.messages for r in read_records(ledger) if r.messages is not None}
    same = [q.model_copy(update={"messages": sent.get(q.request_id, q.messages)}) for q in batch]
    ledger.close()
    return figures, same


async def run_direct(args: argparse.Namespace, port: int, batch: list[Any]) -> dict[str, Any]:
    """The baseline: the same requests straight to the server with OpenAICompatWorker."""
    from paxis_router.workers.openai_compat import OpenAICompatWorker

    skills = {s.id: s for s in _skills()}
    workers = {
        name: OpenAICompatWorker(
            f"direct:{name}", name, f"http://127.0.0.1:{port}/v1", skill_adapters=False
        )
        for name in (SERVED_BASE, *ADAPTERS)
    }
    model_of = {"invoices": "skill-a", "tickets": "skill-b", "general": SERVED_BASE}
    semaphore = asyncio.Semaphore(args.concurrency)
    latencies: list[float] = []
    tokens = [0, 0]
    errors = 0

    async def one(request: Any) -> None:
        nonlocal errors
        skill = request.metadata["skill"]
        async with semaphore:
            t0 = time.perf_counter()
            try:
                completion = await workers[model_of[skill]].complete(request, skills[skill])
            except Exception:  # a benchmark counts failures, it does not stop on one
                errors += 1
                return
            latencies.append(time.perf_counter() - t0)
            if completion.usage:
                tokens[0] += completion.usage.prompt_tokens
                tokens[1] += completion.usage.completion_tokens

    t0 = time.perf_counter()
    await asyncio.gather(*(one(r) for r in batch))
    wall_s = time.perf_counter() - t0
    for worker in workers.values():
        await worker.aclose()
    return _figures(
        latencies, (tokens[0], tokens[1]), wall_s, len(batch), errors, args.usd_per_gpu_hour
    )


def preflight(engine: str) -> None:
    """Exit with a clear message when a module the benchmark needs is missing here."""
    needed = ["torch", "transformers", "peft", "tokenizers", "safetensors",
              "pydantic", "yaml", "numpy", "httpx", "openai"]  # fmt: skip
    if engine == "vllm":
        needed.append("vllm")
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise SystemExit(
            f"missing Python modules: {', '.join(missing)}. paxis_router's core needs pydantic, "
            "pyyaml, numpy, httpx and openai; offline, install them from a wheelhouse: "
            "pip install --no-index --find-links benchmarks/gpu/wheels pydantic pyyaml httpx "
            "openai (see benchmarks/gpu/README.md)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("vllm", "transformers"), default="vllm")
    parser.add_argument("--device", default="cuda", help="cuda or cpu (transformers engine)")
    parser.add_argument("--requests", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument(
        "--hidden-size", type=int, default=None, help="default 1024 on GPU, 64 on CPU"
    )
    parser.add_argument("--layers", type=int, default=None, help="default 8 on GPU, 2 on CPU")
    parser.add_argument("--usd-per-gpu-hour", type=Decimal, default=Decimal("3.50"))
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.5)
    parser.add_argument("--enforce-eager", action="store_true", help="vLLM: skip CUDA graphs")
    parser.add_argument("--startup-timeout-s", type=float, default=600.0)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temp folder")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    preflight(args.engine)
    if args.engine == "vllm" and args.device != "cuda":
        parser.error("vLLM needs --device cuda; use --engine transformers on the CPU")
    gpu = args.device.startswith("cuda")
    hidden = args.hidden_size or (1024 if gpu else 64)
    layers = args.layers or (8 if gpu else 2)
    heads = max(1, hidden // 64)
    temp = args.workdir is None
    args.workdir = Path(tempfile.mkdtemp(prefix="paxis-gpu-bench-")) if temp else args.workdir
    args.workdir.mkdir(parents=True, exist_ok=True)
    models = make_models(
        args.workdir,
        hidden=hidden,
        layers=layers,
        heads=heads,
        dtype="bfloat16" if gpu else "float32",
    )
    gpu_name = None
    if gpu:
        import torch

        gpu_name = torch.cuda.get_device_name(0)
    port = _free_port()
    proc = start_server(args, models, port)
    try:
        # Warm the server up at full concurrency first (unmeasured), so that neither measured
        # run pays for first-batch allocations and kernel selection.
        warmup = _requests(min(args.requests, 2 * args.concurrency), args.max_tokens)
        asyncio.run(run_direct(args, port, warmup))
        routed, sent = asyncio.run(run_router(args, models, port))
        direct = asyncio.run(run_direct(args, port, sent))
    finally:
        stop_server(proc)
        if temp and not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)
    engine = "vLLM" if args.engine == "vllm" else "transformers+peft (NOT vLLM)"
    report = {
        "engine": engine,
        "engine_is_vllm": args.engine == "vllm",
        "device": args.device,
        "gpu_name": gpu_name,
        "model": {
            "hidden_size": hidden,
            "layers": layers,
            "params_m": models["params_m"],
            "lora_rank": LORA_RANK,
        },
        "concurrency": args.concurrency,
        "max_tokens": args.max_tokens,
        "usd_per_gpu_hour": str(args.usd_per_gpu_hour),
        **routed,
        "baseline": {"name": "direct OpenAICompatWorker calls, no router", **direct},
        "router_vs_direct_rps_ratio": (
            round(routed["requests_per_s"] / direct["requests_per_s"], 3)
            if routed["requests_per_s"] and direct["requests_per_s"]
            else None
        ),
    }
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0
    lines = [
        f"engine: {engine}   device: {args.device}{f' ({gpu_name})' if gpu_name else ''}",
        f"model: random Llama, hidden {hidden}, {layers} layers, {models['params_m']} M params; "
        f"2 LoRA adapters (rank {LORA_RANK}) + base",
        f"{args.requests} requests, concurrency {args.concurrency}, max_tokens {args.max_tokens}",
        "",
        f"{'':28}{'router':>14}{'direct (baseline)':>20}",
    ]
    for key, label in (
        ("requests_per_s", "requests/s"),
        ("completion_tokens_per_s", "completion tokens/s"),
        ("total_tokens_per_s", "total tokens/s"),
        ("latency_p50_s", "latency p50 (s)"),
        ("latency_p99_s", "latency p99 (s)"),
        ("cost_per_1k_requests_usd", f"$ / 1k req @ ${args.usd_per_gpu_hour}/GPU-h"),
        ("errors", "errors"),
    ):
        lines.append(f"{label:28}{routed[key]!s:>14}{direct[key]!s:>20}")
    lines += [
        "",
        f"router / direct requests/s: {report['router_vs_direct_rps_ratio']}",
        f"ledger rows by model (which adapter answered): {routed['ledger_rows_by_model']}",
    ]
    if routed["first_error"]:
        lines.append(f"first error: {routed['first_error']}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
