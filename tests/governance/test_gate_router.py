"""The gate inside the Router: deny skips a tier (with a ledger row), redact hides PII from the
tier and restores it in the answer, a failed redaction blocks, and everything is audited."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router import (
    ChatRequest,
    Completion,
    EscalationExhausted,
    PolicyDenied,
    Router,
    SQLiteLedger,
    TokenPrice,
    Verdict,
)
from paxis_router.governance.audit import AuditLog, payload_sha256, request_payload, verify
from paxis_router.governance.gate import Gate, parse_gate_policy
from paxis_router.governance.pii import PiiFinding
from paxis_router.skills.model import Skill
from paxis_router.testing import FakeWorker, FunctionWorker

TOP = TokenPrice.per_million("10", "30")
EMAIL = "bob@example.com"
CARD = "4111 1111 1111 1111"

POLICY = parse_gate_policy(
    {
        "version": "router-test-1",
        "rules": [
            {"id": "restricted-home", "effect": "deny", "data_classes": ["restricted"],
             "destinations": ["!local"]},
            {"id": "local", "effect": "allow", "destinations": ["local"]},
            {"id": "out-redacted", "effect": "allow", "data_classes": ["internal"],
             "destinations": ["openai:*"], "pii": "redact"},
            {"id": "out-no-restore", "effect": "allow", "data_classes": ["support"],
             "destinations": ["openai:*"], "pii": "redact", "restore": False},
        ],
    }
)  # fmt: skip


class Contains:
    def __init__(self, word: str) -> None:
        self.name = f"contains:{word}"
        self.word = word
        self.seen: list[str] = []

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        self.seen.append(completion.content)
        ok = self.word in completion.content
        return Verdict(self.name, ok, None, "" if ok else f"no {self.word!r}")


class Echo:
    """A frontier stand-in that records what it was sent and answers with the user's text."""

    def __init__(self, template: str = "done: {text}") -> None:
        self.name = "frontier:echo"
        self.model = "gpt-4o"
        self.price = TOP
        self.destination = "openai:us"
        self.template = template
        self.sent: list[ChatRequest] = []

    async def complete(self, request: ChatRequest, skill: Skill | None) -> Completion:
        self.sent.append(request)
        return Completion(content=self.template.format(text=request.query), model=self.model)


@pytest.fixture
def ledger(tmp_path: Path) -> SQLiteLedger:
    return SQLiteLedger(tmp_path / "ledger.db")


def audit_records(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_denied_tier_is_skipped_with_a_zero_cost_row(ledger: SQLiteLedger) -> None:
    local = FakeWorker(["unsure"], name="local:w")
    frontier = FakeWorker(["good"], name="frontier:f", price=TOP, destination="openai:us")
    router = Router(
        tiers=[local, frontier], verifiers=[Contains("good")], ledger=ledger, gate=Gate(POLICY)
    )
    request = ChatRequest.from_text("secret plans", team="t", data_class="restricted")
    with pytest.raises(EscalationExhausted) as info:
        await router.route(request)
    assert frontier.calls == []
    rows = ledger.rows()
    assert [(r.tier, r.error_type, r.cost_usd, r.decision) for r in rows] == [
        ("local:w", None, None, "escalate"),
        ("frontier:f", "GateDenied", Decimal(0), "stop"),
    ]
    assert rows[1].error is not None
    assert "rule restricted-home, policy router-test-1" in rows[1].error
    assert [a.error_type for a in info.value.attempts] == [None, "GateDenied"]


async def test_a_denied_first_tier_moves_on_to_the_next(ledger: SQLiteLedger) -> None:
    frontier = FakeWorker(["good"], name="frontier:f", destination="openai:us")
    local = FakeWorker(["good"], name="local:w")
    router = Router(tiers=[frontier, local], ledger=ledger, gate=Gate(POLICY))
    result = await router.route(ChatRequest.from_text("x", data_class="restricted"))
    assert (result.tier, result.content) == ("local:w", "good")
    assert [r.error_type for r in ledger.rows()] == ["GateDenied", None]
    assert frontier.calls == []


async def test_every_tier_denied_raises_policy_denied(ledger: SQLiteLedger) -> None:
    gate = Gate(parse_gate_policy({"version": "nothing"}))
    router = Router(tiers=[FakeWorker(["a"], name="a"), FakeWorker(["b"], name="b")], gate=gate,
                    ledger=ledger)  # fmt: skip
    with pytest.raises(PolicyDenied, match=r"gate denied every tier; last: .*rule default"):
        await router.route(ChatRequest.from_text("x"))
    assert [r.error_type for r in ledger.rows()] == ["GateDenied", "GateDenied"]


async def test_redact_hides_pii_from_the_tier_and_restores_it(ledger: SQLiteLedger) -> None:
    frontier = Echo()
    verifier = Contains(EMAIL)
    router = Router(tiers=[frontier], verifiers=[verifier], ledger=ledger, gate=Gate(POLICY))
    text = f"mail {EMAIL} about card {CARD}"
    result = await router.route(ChatRequest.from_text(text, data_class="internal"))
    sent = frontier.sent[0]
    assert sent.query == "mail <EMAIL_1> about card <CARD_1>"
    assert all(EMAIL not in m.text and CARD not in m.text for m in sent.messages)
    assert result.content == f"done: {text}"
    assert verifier.seen == [f"done: {text}"]  # verifiers judge the restored answer
    assert result.accepted


async def test_redact_without_restore_keeps_placeholders() -> None:
    frontier = Echo()
    router = Router(tiers=[frontier], gate=Gate(POLICY))
    result = await router.route(ChatRequest.from_text(f"mail {EMAIL}", data_class="support"))
    assert result.content == "done: mail <EMAIL_1>"


class Nicknames:
    """A third-party-style detector for a value that JSON must escape."""

    name = "nicknames"

    def detect(self, text: str) -> Sequence[PiiFinding]:
        value = 'Jo "JJ" Smith'
        start = text.find(value)
        return [PiiFinding("person", start, start + len(value), value)] if start >= 0 else []


async def test_restored_values_are_json_escaped_for_json_answers() -> None:
    frontier = Echo(template='{{"to": "<PERSON_1>"}}')
    router = Router(tiers=[frontier], gate=Gate(POLICY, detector=Nicknames()))
    request = ChatRequest.from_text('write to Jo "JJ" Smith', data_class="internal")
    request = request.model_copy(update={"response_format": {"type": "json_object"}})
    result = await router.route(request)
    assert frontier.sent[0].query == "write to <PERSON_1>"
    assert json.loads(result.content) == {"to": 'Jo "JJ" Smith'}


class Stubborn:
    """A detector that finds something in every text: redaction can never finish."""

    name = "stubborn"

    def detect(self, text: str) -> Sequence[PiiFinding]:
        return [PiiFinding("custom", 0, 1, text[0])] if text else []


async def test_failed_redaction_blocks_the_call(ledger: SQLiteLedger, tmp_path: Path) -> None:
    frontier = Echo()
    local = FakeWorker(["fine"], name="local:w")
    audit = AuditLog(tmp_path / "audit.jsonl", fsync=False)
    gate = Gate(POLICY, detector=Stubborn())
    router = Router(tiers=[frontier, local], ledger=ledger, gate=gate, audit=audit)
    result = await router.route(ChatRequest.from_text("hello", data_class="internal"))
    assert frontier.sent == []
    assert result.tier == "local:w"
    denied = ledger.rows()[0]
    assert denied.error_type == "GateDenied"
    assert denied.error is not None
    assert "redaction failed, blocked: PII still present after redaction" in denied.error
    gate_records = [r for r in audit_records(audit.path) if r["kind"] == "gate"]
    assert [(r["decision"], r["rule_id"]) for r in gate_records] == [
        ("deny", "out-redacted"),
        ("allow", "local"),
    ]


async def test_every_gate_and_routing_decision_is_audited(
    ledger: SQLiteLedger, tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    local = FakeWorker(["unsure"], name="local:w")
    frontier = Echo(template="good answer for <EMAIL_1>")
    router = Router(
        tiers=[local, frontier],
        verifiers=[Contains("good")],
        ledger=ledger,
        gate=Gate(POLICY),
        audit=AuditLog(path, fsync=False),
    )
    request = ChatRequest.from_text(f"reply to {EMAIL}", team="claims", data_class="internal")
    result = await router.route(request)
    assert result.content == f"good answer for {EMAIL}"
    await router.drain()  # the last route record is queued until the loop's turn ends
    records = audit_records(path)
    summary = [(r["kind"], r["target"], r["decision"], r.get("rule_id")) for r in records]
    assert summary == [
        ("gate", "local:w", "allow", "local"),
        ("route", "local:w", "escalate", None),
        ("gate", "frontier:echo", "redact", "out-redacted"),
        ("route", "frontier:echo", "accept", None),
    ]
    gate_out = records[2]
    assert gate_out["principal"] == "claims"
    assert gate_out["destination"] == "openai:us"
    assert gate_out["policy_version"] == "router-test-1"
    assert gate_out["pii_kinds"] == ["email"]
    assert gate_out["reason"] == "PII found (email): redacted"
    assert gate_out["payload_sha256"] == payload_sha256(request_payload(frontier.sent[0]))
    assert records[3]["route_id"] == result.route_id
    assert records[3]["payload_sha256"] == payload_sha256(result.content)
    assert EMAIL not in path.read_text()  # hashes only, never the payload
    check = verify(path)
    assert (check.ok, check.records) == (True, 4)


async def test_include_payload_stores_what_was_sent_redacted(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    router = Router(
        tiers=[Echo()], gate=Gate(POLICY), audit=AuditLog(path, include_payload=True, fsync=False)
    )
    await router.route(ChatRequest.from_text(f"to {EMAIL}", data_class="internal"))
    gate_record = audit_records(path)[0]
    assert gate_record["payload"] == '[{"role":"user","content":"to <EMAIL_1>"}]'


async def test_audit_without_a_gate_records_routing_decisions(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    worker = FunctionWorker(lambda request, skill: "ok", name="local:fn")
    router = Router(tiers=[worker], audit=AuditLog(path, fsync=False))
    await router.route(ChatRequest.from_text("hi", team="ops"))
    await router.drain()
    records = audit_records(path)
    assert [(r["kind"], r["decision"], r["principal"]) for r in records] == [
        ("route", "accept", "ops")
    ]


async def test_the_gate_decision_is_on_file_before_the_tier_is_called(tmp_path: Path) -> None:
    """Write-ahead: the router queues the decision, and check() writes it before the call."""
    path = tmp_path / "audit.jsonl"
    seen_at_call: list[list[tuple[object, object]]] = []

    def answer(request: ChatRequest, skill: Skill | None) -> str:
        seen_at_call.append([(r["kind"], r["target"]) for r in audit_records(path)])
        return "fine"

    router = Router(
        tiers=[FunctionWorker(answer, name="local:fn")],
        gate=Gate(POLICY),
        audit=AuditLog(path, fsync=False),
    )
    await router.route(ChatRequest.from_text("first", data_class="internal"))
    await router.route(ChatRequest.from_text("second", data_class="internal"))
    assert seen_at_call == [
        [("gate", "local:fn")],
        [("gate", "local:fn"), ("route", "local:fn"), ("gate", "local:fn")],
    ]


async def test_concurrent_queued_records_keep_one_sound_chain_gate_before_route(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    router = Router(
        tiers=[FakeWorker(["ok"], name="local:w")], gate=Gate(POLICY), audit=AuditLog(path)
    )
    requests = [ChatRequest.from_text(f"q{i}", data_class="internal") for i in range(64)]
    await router.route_many(requests, concurrency=64)
    await router.drain()
    result = verify(path)
    assert (result.ok, result.records) == (True, 128)
    kinds: dict[object, list[object]] = {r["request_id"]: [] for r in audit_records(path)}
    for record in audit_records(path):
        kinds[record["request_id"]].append(record["kind"])
    assert set(map(tuple, kinds.values())) == {("gate", "route")}  # each request: gate first
    await router.aclose()
