"""distill.export on a fixed ledger: exact rows out, DPO pairs only where both sides exist."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router.cli import main
from paxis_router.errors import ConfigError
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.router import Router
from paxis_router.testing import FakeWorker
from paxis_router.training.distill import build_examples, export, read_records
from paxis_router.types import CallRecord, ChatRequest, Decision, Message, Verdict
from paxis_router.verifiers import RegexVerifier

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SYSTEM = Message(role="system", content="Use these skills where they apply.")
OK = (Verdict("regex", True, None, ""),)
BAD = (Verdict("regex", False, None, "no digit"),)


def _prompt(text: str) -> tuple[Message, ...]:
    return (SYSTEM, Message(role="user", content=text))


def _row(
    route: str,
    index: int,
    *,
    text: str,
    answer: str | None,
    passed: bool,
    decision: Decision,
    skill: str | None = "math",
    day: int = 1,
    cost: str | None = "0.001",
    verdicts: tuple[Verdict, ...] | None = None,
) -> CallRecord:
    return CallRecord(
        route_id=route,
        request_id=f"req-{route}",
        attempt_index=index,
        ts=T0.replace(day=day, minute=index),
        tier="local:w" if index == 0 else "frontier:f",
        tier_index=index,
        model="w" if index == 0 else "f",
        decision=decision,
        reason=str(decision),
        final=decision is not Decision.ESCALATE,
        skill=skill,
        cost_usd=None if cost is None else Decimal(cost),
        verdicts=(OK if passed else BAD) if verdicts is None else verdicts,
        passed=passed,
        messages=_prompt(text),
        content=answer,
    )


ESC, ACC = Decision.ESCALATE, Decision.ACCEPT

# r1: worker failed, frontier accepted -> SFT + DPO pair (with an e-mail to redact)
# r2: worker accepted at once -> SFT, no DPO pair (no rejected side)
# r3: duplicate of r1 after normalisation (case and spaces) -> dropped
# r4: worker failed, frontier failed too (stop) -> unverified, dropped
# r5: accepted with no verifiers at all -> not verified, dropped
# r6: another skill, worker failed, frontier accepted; its frontier price unknown
FIXED = [
    _row("r1", 0, text="Mail bob@example.com: 6*7?", answer="maybe", passed=False, decision=ESC),
    _row("r1", 1, text="Mail bob@example.com: 6*7?", answer="42", passed=True, decision=ACC),
    _row("r2", 0, text="2+2?", answer="4", passed=True, decision=ACC, day=2),
    _row("r3", 0, text="mail  BOB@example.com:   6*7?", answer="?", passed=False, decision=ESC),
    _row("r3", 1, text="mail  BOB@example.com:   6*7?", answer="42", passed=True, decision=ACC),
    _row("r4", 0, text="9*9?", answer="lots", passed=False, decision=ESC),
    _row("r4", 1, text="9*9?", answer="many", passed=False, decision=Decision.STOP),
    _row("r5", 0, text="hi", answer="hello", passed=True, decision=ACC, verdicts=()),
    _row("r6", 0, text="Sum 1 2", answer="x", passed=False, decision=ESC, skill="sum,math", day=3),
    _row("r6", 1, text="Sum 1 2", answer="3", passed=True, decision=ACC, skill="sum,math", day=3,
         cost=None),
]  # fmt: skip

R1_PROMPT = [
    {"role": "system", "content": "Use these skills where they apply."},
    {"role": "user", "content": "Mail <EMAIL_1>: 6*7?"},
]


@pytest.fixture
def ledger(tmp_path: Path) -> SQLiteLedger:
    led = SQLiteLedger(tmp_path / "paxis.db", store_content=True)
    led.record_many(FIXED)
    return led


def _read(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_sft_export_writes_exact_rows_and_card(ledger: SQLiteLedger, tmp_path: Path) -> None:
    card = export(ledger, tmp_path / "sft", kind="sft", eval_percent=0)
    assert _read(tmp_path / "sft" / "train.jsonl") == [
        {"messages": [*R1_PROMPT, {"role": "assistant", "content": "42"}]},
        {
            "messages": [
                {"role": "system", "content": "Use these skills where they apply."},
                {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"},
            ]
        },
        {
            "messages": [
                {"role": "system", "content": "Use these skills where they apply."},
                {"role": "user", "content": "Sum 1 2"},
                {"role": "assistant", "content": "3"},
            ]
        },
    ]
    assert (tmp_path / "sft" / "eval.jsonl").read_text() == ""
    on_disk = json.loads((tmp_path / "sft" / "data_card.json").read_text())
    assert on_disk["rows"] == {"train": 3, "eval": 0}
    assert on_disk["per_skill"] == {
        "math": {"train": 2, "eval": 0},
        "sum": {"train": 1, "eval": 0},
    }
    assert on_disk["dropped"] == {"duplicate": 1, "unverified": 2}
    assert on_disk["date_range"] == {
        "first": "2026-03-01T09:00:00.000000Z",
        "last": "2026-03-03T09:01:00.000000Z",
    }
    # r1 (2 x 0.001) + r2 (0.001) + r6 (0.001 + unknown)
    assert on_disk["cost_usd"] == "0.0040000000"
    assert on_disk["unpriced_attempts"] == 1
    assert card.cost_usd == Decimal("0.004")
    assert card.redacted_values == 1
    markdown = (tmp_path / "sft" / "data_card.md").read_text()
    assert "| math | 2 | 0 |" in markdown
    assert "- unverified: 2" in markdown


def test_dpo_pairs_only_where_both_sides_exist(ledger: SQLiteLedger, tmp_path: Path) -> None:
    card = export(ledger, tmp_path / "dpo", kind="dpo", eval_percent=0)
    assert _read(tmp_path / "dpo" / "train.jsonl") == [
        {
            "prompt": R1_PROMPT,
            "chosen": [{"role": "assistant", "content": "42"}],
            "rejected": [{"role": "assistant", "content": "maybe"}],
        },
        {
            "prompt": [
                {"role": "system", "content": "Use these skills where they apply."},
                {"role": "user", "content": "Sum 1 2"},
            ],
            "chosen": [{"role": "assistant", "content": "3"}],
            "rejected": [{"role": "assistant", "content": "x"}],
        },
    ]
    assert card.dropped == {"no_rejected_answer": 1, "duplicate": 1, "unverified": 2}


def test_gkd_prompts_only_and_skill_filter(ledger: SQLiteLedger, tmp_path: Path) -> None:
    card = export(ledger, tmp_path / "gkd", kind="gkd", skill="sum", eval_percent=0)
    assert _read(tmp_path / "gkd" / "train.jsonl") == [
        {
            "prompt": [
                {"role": "system", "content": "Use these skills where they apply."},
                {"role": "user", "content": "Sum 1 2"},
            ]
        }
    ]
    assert card.per_skill == {"sum": {"train": 1, "eval": 0}}


def test_since_until_and_incorrect_label_filter_routes(
    ledger: SQLiteLedger, tmp_path: Path
) -> None:
    ledger.label("r2", correct=False, source="review")
    card = export(
        ledger,
        tmp_path / "w",
        kind="sft",
        since=T0.replace(day=2),
        until=T0.replace(day=4),
        eval_percent=0,
    )
    rows = _read(tmp_path / "w" / "train.jsonl")
    assert [r["messages"][1]["content"] for r in rows] == ["Sum 1 2"]  # type: ignore[index]
    assert card.dropped == {"labelled_incorrect": 1}


def test_split_is_deterministic_by_prompt_hash(ledger: SQLiteLedger) -> None:
    records = read_records(ledger)
    all_eval, _ = build_examples(records, "sft", eval_percent=100)
    assert {e.split for e in all_eval} == {"eval"}
    first, _ = build_examples(records, "sft", eval_percent=50)
    again, _ = build_examples(list(reversed(records)), "sft", eval_percent=50)
    assert {e.route_id: e.split for e in first} == {e.route_id: e.split for e in again}


def test_bad_eval_percent_is_a_config_error(ledger: SQLiteLedger) -> None:
    with pytest.raises(ConfigError, match=r"eval_percent must be within 0\.\.100"):
        build_examples(read_records(ledger), "sft", eval_percent=101)


def test_router_stores_text_only_when_asked(tmp_path: Path) -> None:
    def router(ledger: SQLiteLedger) -> Router:
        return Router(
            tiers=[FakeWorker(["no idea"], name="local:w"), FakeWorker(["42"], name="frontier:f")],
            verifiers=[RegexVerifier(must_match=r"\d")],
            ledger=ledger,
        )

    plain = SQLiteLedger(tmp_path / "plain.db")
    router(plain).route_sync(ChatRequest.from_text("6*7?", team="t"))
    assert plain.count() == 2
    assert plain.query("SELECT COUNT(*) FROM contents") == [(0,)]

    opted = SQLiteLedger(tmp_path / "opted.db", store_content=True)
    router(opted).route_sync(ChatRequest.from_text("6*7?", team="t"))
    assert [(r.attempt_index, r.content) for r in read_records(opted)] == [
        (0, "no idea"),
        (1, "42"),
    ]
    card = export(opted, tmp_path / "out", kind="dpo", eval_percent=0)
    assert _read(tmp_path / "out" / "train.jsonl") == [
        {
            "prompt": [{"role": "user", "content": "6*7?"}],
            "chosen": [{"role": "assistant", "content": "42"}],
            "rejected": [{"role": "assistant", "content": "no idea"}],
        }
    ]
    assert card.rows_train == 1


def test_cli_export_prints_the_card(
    ledger: SQLiteLedger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    status = main(
        ["distill", "export", "--ledger", str(ledger.path), "--kind", "sft", "-o", str(out),
         "--eval-percent", "0", "--json"]
    )  # fmt: skip
    assert status == 0
    assert json.loads(capsys.readouterr().out)["rows"] == {"train": 3, "eval": 0}
    assert len(_read(out / "train.jsonl")) == 3


def test_cli_export_without_ledger_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["distill", "export", "--ledger", str(tmp_path / "none.db"), "--kind", "sft", "-o",
         str(tmp_path / "o")]
    )  # fmt: skip
    assert status == 2
    assert "no ledger at" in capsys.readouterr().err


def test_cli_since_until_dates(
    ledger: SQLiteLedger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dated"
    argv = ["distill", "export", "--ledger", str(ledger.path), "--kind", "dpo", "-o", str(out),
            "--since", "2026-03-02", "--until", "2026-03-03", "--eval-percent", "0"]  # fmt: skip
    assert main(argv) == 0
    assert "wrote 1 train + 0 eval dpo rows" in capsys.readouterr().out
    assert [r["rejected"] for r in _read(out / "train.jsonl")] == [
        [{"role": "assistant", "content": "x"}]
    ]
    card = json.loads((out / "data_card.json").read_text())
    assert card["filters"] == {
        "skill": None,
        "since": "2026-03-02T00:00:00.000000Z",
        "until": "2026-03-04T00:00:00.000000Z",
    }
    assert card["dropped"] == {"no_rejected_answer": 1}
