"""The router's and the orchestrator's own cost, beside litellm's own cost per (mocked) call.

Measures, in one run, with a FakeWorker at the model seam (no model time) so that only our own
work is timed:

* per route, for named configurations of the same two-tier ladder (worker answers, accepted):
  - ``bare``: one RegexVerifier, no ledger, no gate, no audit log (nothing recorded);
  - ``sqlite``: ``bare`` + a real SQLite ledger;
  - ``default_policy``: ``policies/default.yaml`` as shipped — its bundled skills (k=3), its
    verifiers and escalation policy, the action gate (PII screening), the SQLite ledger and the
    hash-chained audit log with fsync — with only the tiers' workers replaced by fakes (same
    names, prices and destinations) and the files put in a temporary folder;
  - ``default_policy_934_skills``: the same with the 934-skill corpus
    (``../shared/data/skills-corpus``; left out when absent);
* ``agent_step``: one step of the orchestrator (``Agent``) under the default policy: a route
  whose answer calls a Python tool, the tool run through the gate and the audit log, and its
  result appended (per step: a two-step task timed whole, divided by two);
* ``litellm_mock_us`` (the named baseline): one
  ``litellm.completion(model="gpt-4o", messages=..., mock_response=...)``;
* ratios to that baseline (target < 0.2 for a route and for an agent step);
* throughput: routes per second with ``route_many`` (64 in flight) under the default policy,
  against the same router with no sinks (no ledger, no audit log) — ratio target >= 0.8;
* ``import_s``: ``from paxis_router import Router, ChatRequest`` in a fresh interpreter
  (target <= 0.3 s), median of runs.

Each per-call figure is the median over batches of the per-call mean, after a warm-up.

Run: ``.venv/bin/python benchmarks/overhead.py [--batches 15] [--batch-size 200] [--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from paxis_router.agent import Agent
from paxis_router.config import load_config
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.pricing import TokenPrice
from paxis_router.router import Router
from paxis_router.skills.library import SkillLibrary
from paxis_router.testing import FakeWorker
from paxis_router.types import ChatRequest, Completion, FunctionCall, ToolCall, Usage
from paxis_router.verifiers import RegexVerifier

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from paxis_router.workers.base import Tier

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "skills-corpus"
QUESTION = "Summarize these meeting notes as a TL;DR with action items for each owner."
MESSAGES = [{"role": "user", "content": QUESTION}]


def _median_us(batch_seconds: list[float], batch_size: int) -> float:
    return statistics.median(s / batch_size for s in batch_seconds) * 1e6


async def _timed(call: Callable[[], Awaitable[object]], batches: int, size: int) -> list[float]:
    for _ in range(size):  # warm-up
        await call()
    out = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(size):
            await call()
        out.append(time.perf_counter() - t0)
    return out


def _answer(logprob: float = -0.05) -> Completion:
    return Completion("42", "fake", Usage(20, 2), "stop", token_logprobs=(logprob, logprob))


def _fake_tiers(tiers: tuple[Tier, ...], answer: Completion) -> list[Tier]:
    """The same ladder (names, prices, destinations), each worker a fake that answers at once."""
    return [
        replace(t, worker=FakeWorker([answer], name=t.name, model=str(t.name)), resilience=None)
        for t in tiers
    ]


def default_policy_router(folder: Path, *, skills: SkillLibrary | None = None) -> Router:
    """``policies/default.yaml`` as shipped, its workers fakes and its files in ``folder``."""
    cfg = load_config(ROOT / "policies" / "default.yaml")
    assert cfg.ledger is not None and cfg.audit is not None
    cfg = cfg.model_copy(
        update={
            "ledger": cfg.ledger.model_copy(update={"path": folder / "ledger.db"}),
            "audit": cfg.audit.model_copy(update={"path": folder / "audit.jsonl"}),
        }
    )
    built = Router.from_config(cfg)
    return Router(
        tiers=_fake_tiers(built.tiers, _answer()),
        verifiers=built.verifiers,
        policy=built.policy,
        ledger=built.sinks,
        skills=skills if skills is not None else built.skills,
        skills_k=built.skills_k,
        gate=built.gate,
        audit=built.audit,
        outage=built.outage,
        budgets=built.budgets,
    )


def without_sinks(router: Router) -> Router:
    """The same router recording nothing: no ledger, no audit log."""
    return Router(
        tiers=router.tiers,
        verifiers=router.verifiers,
        policy=router.policy,
        skills=router.skills,
        skills_k=router.skills_k,
        gate=router.gate,
        outage=router.outage,
    )


def bare_router(folder: Path | None) -> Router:
    price = TokenPrice.per_million("0.2", "0.2")
    ledger = SQLiteLedger(folder / "bare.db") if folder is not None else None
    return Router(
        tiers=[FakeWorker([_answer()], name="local:fake", price=price)],
        verifiers=[RegexVerifier(must_match=r"\d")],
        ledger=ledger,
    )


def measure_route_us(router: Router, batches: int, size: int) -> float:
    request = ChatRequest.from_text(QUESTION, team="bench")

    async def run() -> list[float]:
        out = await _timed(lambda: router.route(request), batches, size)
        await router.aclose()
        return out

    return _median_us(asyncio.run(run()), size)


def measure_agent_step_us(router: Router, batches: int, size: int) -> float:
    """Per step of a two-step task: a tool call (gated, run, audited), then the answer."""

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    call = ToolCall(id="c1", function=FunctionCall(name="add", arguments='{"a": 2, "b": 40}'))
    calls = Completion("", "fake", Usage(30, 5), "tool_calls", (-0.01,), tool_calls=(call,))
    tiers = [replace(t, worker=FakeWorker([calls, _answer()], name=t.name)) for t in router.tiers]
    agent_router = Router(
        tiers=tiers,
        verifiers=router.verifiers,
        policy=router.policy,
        ledger=router.sinks,
        skills=router.skills,
        skills_k=router.skills_k,
        gate=router.gate,
        audit=router.audit,
    )
    agent = Agent(agent_router, tools=[add], max_steps=4)

    async def run() -> list[float]:
        out = await _timed(lambda: agent.run(QUESTION, team="bench"), batches, size)
        await agent_router.aclose()
        return out

    return _median_us(asyncio.run(run()), size) / 2


def measure_routes_per_s(router: Router, routes: int) -> float:
    requests = [ChatRequest.from_text(QUESTION, team="bench") for _ in range(routes)]

    async def run() -> float:
        await router.route_many(requests[:64], concurrency=64)  # warm-up
        t0 = time.perf_counter()
        await router.route_many(requests, concurrency=64)
        elapsed = time.perf_counter() - t0
        await router.aclose()
        return routes / elapsed

    return asyncio.run(run())


def measure_litellm_mock_us(batches: int, size: int) -> float:
    """Median per-call wall time (µs) of litellm.completion with a mock response."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    def call() -> object:
        return litellm.completion(model="gpt-4o", messages=MESSAGES, mock_response="42")

    for _ in range(size):
        call()
    out = []
    for _ in range(batches):
        t0 = time.perf_counter()
        for _ in range(size):
            call()
        out.append(time.perf_counter() - t0)
    return _median_us(out, size)


def measure_import_s(runs: int) -> float:
    """Median seconds of ``from paxis_router import Router, ChatRequest``, fresh interpreter."""
    code = (
        "import time; t = time.perf_counter(); from paxis_router import Router, ChatRequest; "
        "print(time.perf_counter() - t)"
    )
    times = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        times.append(float(out))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=15, help="timed batches per figure")
    parser.add_argument("--batch-size", type=int, default=200, help="calls per batch")
    parser.add_argument("--routes", type=int, default=2000, help="routes for the throughput run")
    parser.add_argument("--import-runs", type=int, default=7, help="fresh interpreters timed")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    b, n = args.batches, args.batch_size
    route_us: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        route_us["bare"] = measure_route_us(bare_router(None), b, n)
        route_us["sqlite"] = measure_route_us(bare_router(folder), b, n)
        route_us["default_policy"] = measure_route_us(default_policy_router(folder / "d"), b, n)
        if CORPUS.is_dir():
            corpus = SkillLibrary.from_dir(CORPUS)
            big = default_policy_router(folder / "c", skills=corpus)
            route_us["default_policy_934_skills"] = measure_route_us(big, b, n)
        agent_us = measure_agent_step_us(default_policy_router(folder / "a"), b, max(n // 4, 10))
        with_sinks = measure_routes_per_s(default_policy_router(folder / "t"), args.routes)
        no_sinks = measure_routes_per_s(
            without_sinks(default_policy_router(folder / "u")), args.routes
        )
    litellm_us = measure_litellm_mock_us(b, n)
    figures: dict[str, object] = {
        "route_us": {k: round(v, 1) for k, v in route_us.items()},
        "agent_step_us": round(agent_us, 1),
        "litellm_mock_us": round(litellm_us, 1),
        "ratio_to_litellm_mock": {k: round(v / litellm_us, 3) for k, v in route_us.items()},
        "agent_step_ratio": round(agent_us / litellm_us, 3),
        "routes_per_s_default_policy": round(with_sinks, 1),
        "routes_per_s_no_sinks": round(no_sinks, 1),
        "throughput_ratio_sinks_vs_none": round(with_sinks / no_sinks, 3),
        "import_s": round(measure_import_s(args.import_runs), 3),
    }
    if args.json:
        sys.stdout.write(json.dumps(figures) + "\n")
        return 0
    lines = [f"litellm.completion(mock_response=...) per call (baseline): {litellm_us:.1f} µs"]
    for name, us in route_us.items():
        lines.append(f"route, {name:27} {us:9.1f} µs  ratio {us / litellm_us:.3f} (< 0.2)")
    lines.append(
        f"agent step, default policy       {agent_us:9.1f} µs  ratio "
        f"{agent_us / litellm_us:.3f} (< 0.2)"
    )
    lines.append(
        f"routes/s, default policy {with_sinks:.0f} vs no sinks {no_sinks:.0f}: "
        f"{with_sinks / no_sinks:.3f} (>= 0.8)"
    )
    lines.append(f"from paxis_router import Router, ChatRequest: {figures['import_s']} s (<= 0.3)")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
