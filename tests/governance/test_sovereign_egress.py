"""policies/sovereign.yaml: with it, routing never opens a socket to a non-loopback address.

Each run happens in a fresh subprocess with ``sys.addaudithook`` watching ``socket.connect`` and
``socket.getaddrinfo``: a connect to any non-loopback address (or a DNS lookup of any name but
localhost) is recorded and refused. The ladder is real: a local OpenAI-compatible server on
127.0.0.1 whose answers fail verification, then a frontier tier pointed at an external address
(TEST-NET-3, 203.0.113.10). The control run without the gate proves the hook catches egress.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router.governance.audit import verify
from paxis_router.ledger.sqlite import SQLiteLedger

REPO = Path(__file__).resolve().parents[2]

EGRESS_GUARD = r"""
import ipaddress, sys

EGRESS = []


def _guard(event, args):
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple):
            host = str(address[0])
            try:
                loopback = ipaddress.ip_address(host.split("%")[0]).is_loopback
            except ValueError:
                loopback = False
            if not loopback:
                EGRESS.append(f"connect {address}")
                raise OSError(f"egress refused by the test: {address}")
    elif event == "socket.getaddrinfo":
        host = args[0]
        if isinstance(host, bytes):
            host = host.decode()
        if host not in (None, "localhost", "127.0.0.1", "::1"):
            try:
                if ipaddress.ip_address(str(host)).is_loopback:
                    return
            except ValueError:
                pass
            EGRESS.append(f"getaddrinfo {host}")
            raise OSError(f"DNS lookup refused by the test: {host}")


sys.addaudithook(_guard)
"""

ROUTE_SCRIPT = (
    EGRESS_GUARD
    + r"""
import asyncio
import json
from pathlib import Path

from paxis_router import ChatRequest, Router, SQLiteLedger, TokenPrice, Verdict
from paxis_router.governance.audit import AuditLog
from paxis_router.testing.upstream import FakeUpstream
from paxis_router.governance.gate import Gate
from paxis_router.workers.openai_compat import OpenAICompatWorker

mode, out = sys.argv[1], Path(sys.argv[2])


class Says42:
    name = "says:42"

    async def verify(self, request, completion):
        return Verdict(self.name, "42" in completion.content, None, "")


with FakeUpstream(answer="not sure", model="local-model") as upstream:
    local = OpenAICompatWorker("local:w", "local-model", base_url=upstream.base_url, timeout_s=10)
    frontier = OpenAICompatWorker(
        "frontier:gpt-4o", "gpt-4o", base_url="http://203.0.113.10/v1", api_key="sk-none",
        destination="openai:us", timeout_s=5, price=TokenPrice.per_million("2.5", "10"),
    )
    router = Router(
        tiers=[local, frontier],
        verifiers=[Says42()],
        ledger=SQLiteLedger(out / "ledger.db"),
        audit=AuditLog(out / "audit.jsonl", fsync=False),
        gate=Gate("policies/sovereign.yaml") if mode == "gate" else None,
    )
    requests = [ChatRequest.from_text(f"6*7 #{i}", team="defence", data_class="restricted")
                for i in range(3)]
    try:
        results = asyncio.run(router.route_many(requests, concurrency=1))
        outcome = [type(r).__name__ for r in results]
    except Exception as exc:  # the control run may fail in any way; egress is what we report
        outcome = [f"{type(exc).__name__}: {exc}"]
print(json.dumps({"egress": EGRESS, "outcome": outcome}))
"""
)


def run_guarded(script: str, *args: str) -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report: dict[str, list[str]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


@pytest.mark.slow
def test_sovereign_policy_routes_with_no_egress(tmp_path: Path) -> None:
    report = run_guarded(ROUTE_SCRIPT, "gate", str(tmp_path))
    assert report["egress"] == []
    assert report["outcome"] == ["EscalationExhausted"] * 3
    rows = SQLiteLedger(tmp_path / "ledger.db").rows()
    assert [(r.tier, r.error_type) for r in rows] == [
        ("local:w", None),
        ("frontier:gpt-4o", "GateDenied"),
    ] * 3
    assert all(r.cost_usd == 0 for r in rows if r.error_type == "GateDenied")
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    denials = [r for r in records if r["kind"] == "gate" and r["decision"] == "deny"]
    assert [(r["target"], r["rule_id"], r["destination"]) for r in denials] == [
        ("frontier:gpt-4o", "air_gapped", "openai:us")
    ] * 3
    assert {r["policy_version"] for r in denials} == {"sovereign-2026-11-28"}
    assert verify(tmp_path / "audit.jsonl").ok


@pytest.mark.slow
def test_control_without_the_gate_is_caught_by_the_guard(tmp_path: Path) -> None:
    report = run_guarded(ROUTE_SCRIPT, "open", str(tmp_path))
    assert report["egress"] == ["connect ('203.0.113.10', 80)"] * 3
    rows = SQLiteLedger(tmp_path / "ledger.db").rows()
    assert {r.error_type for r in rows if r.tier == "frontier:gpt-4o"} == {"WorkerUnavailable"}


CONFIG_SCRIPT = (
    EGRESS_GUARD
    + r"""
import asyncio
import json
from pathlib import Path

import yaml

from paxis_router import ChatRequest, Router
from paxis_router.config.schema import load_config
from paxis_router.testing.upstream import FakeUpstream

out = Path(sys.argv[1])
gate = yaml.safe_load(Path("policies/sovereign.yaml").read_text())["gate"]
with FakeUpstream(answer="42", model="local-model") as upstream:
    # A vLLM tier on a remote host with no `destination`: before issue 14 it defaulted to
    # "local" and sovereign.yaml let restricted data go to 203.0.113.10.
    policy = {
        "tiers": [
            {"kind": "local", "name": "gpu:remote", "model": "m",
             "base_url": "http://203.0.113.10:8000/v1", "timeout_s": 5},
            {"kind": "local", "name": "local:w", "model": "local-model",
             "base_url": upstream.base_url, "timeout_s": 10},
        ],
        "ledger": {"path": str(out / "ledger.db")},
        "gate": gate,
    }
    (out / "policy.yaml").write_text(json.dumps(policy))
    router = Router.from_config(load_config(out / "policy.yaml"))
    request = ChatRequest.from_text("6*7", team="defence", data_class="restricted")
    try:
        outcome = [asyncio.run(router.route(request)).content]
    except Exception as exc:
        outcome = [f"{type(exc).__name__}: {exc}"]
print(json.dumps({"egress": EGRESS, "outcome": outcome}))
"""
)


@pytest.mark.slow
def test_a_remote_vllm_tier_without_a_destination_never_connects(tmp_path: Path) -> None:
    report = run_guarded(CONFIG_SCRIPT, str(tmp_path))
    assert report == {"egress": [], "outcome": ["42"]}
    rows = SQLiteLedger(tmp_path / "ledger.db").rows()
    assert [(r.tier, r.error_type) for r in rows] == [
        ("gpu:remote", "GateDenied"),
        ("local:w", None),
    ]
    assert rows[0].error is not None
    assert "rule air_gapped" in rows[0].error and "'remote:203.0.113.10'" in rows[0].error


DEMO_SCRIPT = (
    EGRESS_GUARD
    + r"""
import json
from paxis_router.cli import main

status = main(sys.argv[1:])
print(json.dumps({"egress": EGRESS, "outcome": [f"exit {status}"]}))
"""
)


@pytest.mark.slow
def test_sovereign_demo_run_opens_no_external_socket(tmp_path: Path) -> None:
    ledger, audit = tmp_path / "demo.db", tmp_path / "demo.audit.jsonl"
    args = ["demo", "--limit", "100", "--json", "--gate", "policies/sovereign.yaml"]
    args += ["--ledger", str(ledger), "--audit", str(audit)]
    report = run_guarded(DEMO_SCRIPT, *args)
    assert report == {"egress": [], "outcome": ["exit 0"]}
    rows = SQLiteLedger(ledger).rows()
    frontier_rows = [r for r in rows if r.tier.startswith("frontier:")]
    assert frontier_rows, "the demo escalated nothing: the test would prove nothing"
    assert {(r.error_type, r.cost_usd, r.prompt_tokens) for r in frontier_rows} == {
        ("GateDenied", Decimal(0), None)
    }
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    denials = [r for r in records if r["kind"] == "gate" and r["decision"] == "deny"]
    assert len(denials) == len(frontier_rows)
    assert {(r["rule_id"], r["destination"], r["principal"]) for r in denials} == {
        ("air_gapped", "openai", "demo")
    }
    allowed = {r["target"] for r in records if r["kind"] == "gate" and r["decision"] == "allow"}
    assert allowed == {"local:mixtral-8x7b"}
    assert verify(audit).ok
