"""``paxis demo`` in-process: the ledger it leaves, its figures, and the loop it leads into."""

from __future__ import annotations

import csv
import json
import shlex
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router.cli import main
from paxis_router.cli.demo import DEFAULT_LEDGER, default_policy
from paxis_router.cli.report import DEFAULT_LEDGER as REPORT_LEDGER
from paxis_router.governance.audit import DEFAULT_AUDIT_PATH, AuditLog, verify
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.reports.cost_report import build
from paxis_router.types import CallRecord, Decision, utc_now

DATA = default_policy().parents[1] / "routellm"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"
WORKER, FRONTIER = "local:mixtral-8x7b", "frontier:gpt-4-1106-preview"
LIMIT = 40


def _dataset() -> tuple[dict[str, dict[str, bool]], dict[str, dict[str, int]]]:
    """The labels of the first LIMIT uncontaminated rows, and the recorded token counts."""
    dropped = {
        str(json.loads(line)["eval_idx"])
        for line in (DATA / "contaminated_prompts.jsonl").read_text(encoding="utf-8").splitlines()
    }
    with (DATA / "gsm8k_responses.csv").open(encoding="utf-8", newline="") as handle:
        rows = [(str(i), r) for i, r in enumerate(csv.DictReader(handle)) if str(i) not in dropped]
    labels = {
        WORKER: {i: r[WEAK] == "True" for i, r in rows[:LIMIT]},
        FRONTIER: {i: r[STRONG] == "True" for i, r in rows[:LIMIT]},
    }
    with (DATA / "gsm8k_tokens.csv").open(encoding="utf-8", newline="") as handle:
        tokens = {r["row"]: {k: int(v) for k, v in r.items()} for r in csv.DictReader(handle)}
    return labels, tokens


def _run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(["demo", "--limit", str(LIMIT), "--json", *argv]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_the_demo_writes_the_ledger_the_other_commands_read() -> None:
    assert DEFAULT_LEDGER == Path(REPORT_LEDGER) == Path("paxis-ledger.db")
    assert default_policy().is_file()
    assert default_policy().parent.parent.name == "data"  # shipped inside the package


def test_demo_figures_are_the_ledgers_and_the_datasets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger_path = tmp_path / "demo.db"
    summary = _run_json(capsys, "--ledger", str(ledger_path))
    with SQLiteLedger(ledger_path) as ledger:
        rows = ledger.rows()
        report = build(ledger, by=())
        route_labels = ledger.query("SELECT route_id, correct, source FROM labels")
        attempt_labels = ledger.query(
            "SELECT route_id, attempt_index, correct, source FROM attempt_labels"
        )
        stored = ledger.query("SELECT COUNT(*) FROM contents")
    finals = [r for r in rows if r.final]
    labels, tokens = _dataset()
    assert summary["n"] == LIMIT == len(finals)
    assert summary["dropped_contaminated"] == 12
    assert summary["ledger"] == str(ledger_path.resolve())
    assert {r.team for r in rows} == {"demo"}
    assert all(r.tier == WORKER for r in rows if r.attempt_index == 0)

    # The money is the report's: the same figures `paxis report` prints for this ledger.
    assert Decimal(str(summary["spend_usd"])) == report.total_cost_usd
    assert Decimal(str(summary["frontier_only_usd"])) == report.counterfactual_cost_usd
    assert Decimal(str(summary["savings_usd"])) == report.savings_usd
    assert summary["savings_ratio"] == round(report.savings_ratio or 0, 2)
    assert summary["savings_percent"] == round(
        float(report.savings_usd / report.counterfactual_cost_usd) * 100, 2
    )
    assert "top tier's prices (frontier:gpt-4-1106-preview)" in str(
        summary["counterfactual_method"]
    )
    # ... and it is the counterfactual the router recorded on each route's final row.
    assert report.counterfactual_cost_usd == sum(
        (r.counterfactual_usd or Decimal(0) for r in finals), Decimal(0)
    )

    # The dataset's labels are in the ledger (source gsm8k): of the answer, and of each attempt.
    answered = {r.route_id: (r.request_id.removeprefix("gsm8k-"), r.tier) for r in finals}
    assert sorted((rid, bool(c), s) for rid, c, s in route_labels) == sorted(
        (rid, labels[tier][q], "gsm8k") for rid, (q, tier) in answered.items()
    )
    by_route = {r.route_id: r.request_id.removeprefix("gsm8k-") for r in finals}
    assert sorted((rid, i, bool(c)) for rid, i, c, _ in attempt_labels) == sorted(
        (r.route_id, r.attempt_index, labels[r.tier][by_route[r.route_id]]) for r in rows
    )
    accuracy = summary["accuracy"]
    assert isinstance(accuracy, dict)
    assert accuracy["routed"] == round(report.accuracy or 0, 4)
    assert accuracy["worker_only"] == round(sum(labels[WORKER].values()) / LIMIT, 4)
    assert accuracy["frontier_only"] == round(sum(labels[FRONTIER].values()) / LIMIT, 4)
    assert summary["labelled_routes"] == LIMIT == report.labelled_routes

    # Prompts and answers are stored (the training export reads them), one per attempt.
    assert stored == [(len(rows),)]
    # Tokens are the counts recorded with the data, whatever tokenizer is installed here.
    assert summary["token_counter"] == "tiktoken:cl100k_base (recorded in gsm8k_tokens.csv)"
    for r in rows:
        q = by_route[r.route_id]
        column = f"{WEAK if r.tier == WORKER else STRONG}_response"
        assert (r.prompt_tokens, r.completion_tokens) == (tokens[q]["prompt"], tokens[q][column])

    # The dataset-only figure: GPT-4's own recorded answers, priced at GPT-4's rates.
    recorded = sum(
        Decimal("0.00001") * tokens[q]["prompt"]
        + Decimal("0.00003") * tokens[q][f"{STRONG}_response"]
        for q in labels[FRONTIER]
    )
    assert Decimal(str(summary["frontier_recorded_answers_usd"])) == recorded


def test_the_demo_leads_into_report_audit_and_distill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--limit", "30"]) == 0
    out = capsys.readouterr().out
    assert f"ledger:    {tmp_path / 'paxis-ledger.db'}" in out
    assert f"audit log: {tmp_path / DEFAULT_AUDIT_PATH}" in out
    assert "questions routed: 30 (12 contaminated prompts dropped)" in out
    flat = " ".join(out.split())  # the notes are wrapped at 100 columns
    assert "How frontier-only is priced: what each route's answering tokens would have cost" in flat
    assert "own recorded answers to all 30 questions cost $" in flat
    next_lines = out.split("Next:\n", 1)[1].splitlines()
    commands = [line.split("#")[0].split() for line in next_lines]
    assert [c[:3] for c in commands] == [
        ["paxis", "report"],
        ["paxis", "report", "--format"],
        ["paxis", "audit", "verify"],
        ["paxis", "distill", "export"],
    ]
    with SQLiteLedger(tmp_path / "paxis-ledger.db") as ledger:
        report = build(ledger, by=())
    # Each printed command runs as printed, from the same folder, on what the demo wrote.
    for command in commands:
        assert main(command[1:]) == 0, command
        printed = capsys.readouterr().out
        if command[1:] == ["report"]:
            assert f"Frontier-only counterfactual: ${report.counterfactual_cost_usd:.4f}" in printed
            assert f"Spend: ${report.total_cost_usd:.4f}" in printed
        if command[1] == "audit":
            assert "OK: " in printed
        if command[1] == "distill":
            assert "wrote 0 train" not in printed
    assert (tmp_path / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    train = (tmp_path / "paxis-distill" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert train  # the flywheel: verified answers, GSM8K-correct, as chat fine-tuning rows
    assert json.loads(train[0])["messages"][-1]["role"] == "assistant"


def test_a_rerun_starts_a_fresh_ledger_and_a_fresh_audit_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger_path = tmp_path / "demo.db"
    first = _run_json(capsys, "--ledger", str(ledger_path))
    audit = Path(str(first["audit_log"]))
    assert audit == (tmp_path / DEFAULT_AUDIT_PATH).resolve()
    with SQLiteLedger(ledger_path) as ledger:
        count = ledger.count()
    assert verify(audit).records == count
    second = _run_json(capsys, "--ledger", str(ledger_path))
    assert second["audit_log"] == str(audit)
    with SQLiteLedger(ledger_path) as ledger:
        assert ledger.count() == count
        assert ledger.query("SELECT COUNT(*) FROM labels") == [(LIMIT,)]
    assert verify(audit).ok
    assert verify(audit).records == count  # not appended to: started afresh


def test_next_commands_name_the_files_when_not_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    summary = _run_json(capsys, "--ledger", "elsewhere/my demo.db")
    ledger = shlex.quote(str(tmp_path / "elsewhere" / "my demo.db"))
    assert summary["next_commands"] == [
        f"paxis report --ledger {ledger}",
        f"paxis report --ledger {ledger} --format html -o report.html",
        f"paxis audit verify {tmp_path / 'elsewhere' / DEFAULT_AUDIT_PATH}",
        f"paxis distill export --ledger {ledger} --kind sft",
    ]
    for command in summary["next_commands"]:
        assert isinstance(command, str)
        assert main(shlex.split(command)[1:]) == 0, command


def test_demo_refuses_a_file_that_is_not_a_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.db"
    path.write_text("my precious notes", encoding="utf-8")
    assert main(["demo", "--limit", "2", "--ledger", str(path)]) == 2
    assert "is not a paxis ledger" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == "my precious notes"


def test_demo_refuses_another_sqlite_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    conn.close()
    assert main(["demo", "--limit", "2", "--ledger", str(path)]) == 2
    assert "no attempts table" in capsys.readouterr().err


def _one_row(path: Path, *, tier: str, team: str | None) -> None:
    with SQLiteLedger(path) as ledger:
        ledger.record(
            CallRecord(
                route_id="r",
                request_id="q",
                attempt_index=0,
                ts=utc_now(),
                tier=tier,
                tier_index=0,
                model="m",
                decision=Decision.ACCEPT,
                reason="",
                final=True,
                team=team,
            )
        )


@pytest.mark.parametrize(
    ("tier", "team", "message"),
    [
        ("local:prod", "demo", "tiers the demo does not use (['local:prod'])"),
        (WORKER, "claims", "teams other than the demo's (['claims'])"),
        (WORKER, None, "teams other than the demo's (['None'])"),
    ],
)
def test_demo_refuses_a_production_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tier: str, team: str | None, message: str
) -> None:
    path = tmp_path / "paxis-ledger.db"
    _one_row(path, tier=tier, team=team)
    audit = tmp_path / DEFAULT_AUDIT_PATH
    audit.write_text("{}\n", encoding="utf-8")
    assert main(["demo", "--limit", "2", "--ledger", str(path)]) == 2
    assert message in capsys.readouterr().err
    with SQLiteLedger(path) as ledger:
        assert ledger.count() == 1
    assert audit.read_text(encoding="utf-8") == "{}\n"


def test_demo_refuses_an_audit_log_that_is_not_its_own_and_touches_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger_path = tmp_path / "demo.db"
    _run_json(capsys, "--ledger", str(ledger_path))
    with SQLiteLedger(ledger_path) as ledger:
        before = ledger.count()
    audit = tmp_path / DEFAULT_AUDIT_PATH
    log = AuditLog(audit, fsync=False)
    log.append(kind="gate", action="call_tier", decision="allow", principal="claims")
    close = getattr(log, "close", None)
    if close is not None:
        close()
    lines = audit.read_text(encoding="utf-8")
    assert main(["demo", "--limit", "2", "--ledger", str(ledger_path)]) == 2
    err = capsys.readouterr().err
    assert f"audit log {audit} line {before + 1} is a record of 'claims', not of the demo" in err
    assert audit.read_text(encoding="utf-8") == lines
    with SQLiteLedger(ledger_path) as ledger:
        assert ledger.count() == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tiers: [", "not valid YAML"),
        ("tiers: [{kind: litellm, model: gpt-4o, colour: red}]", "tiers[0].colour: unknown key"),
        ("tiers: [{kind: litellm, model: gpt-4o}]", "at least two `kind: replay` tiers"),
    ],
)
def test_demo_bad_policy_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    policy = tmp_path / "bad.yaml"
    policy.write_text(text, encoding="utf-8")
    ledger = tmp_path / "x.db"
    assert main(["demo", "--policy", str(policy), "--ledger", str(ledger), "--limit", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("paxis demo: error: ")
    assert message in err
    assert str(policy) in err


def test_demo_limit_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--limit", "0"]) == 2
    assert "--limit must be >= 1" in capsys.readouterr().err


def test_a_calibrated_policy_is_refused_on_the_questions_it_was_fitted_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from paxis_router.calibration.fingerprint import RowFingerprint
    from paxis_router.workers.replay import routellm_prompts

    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--limit", "3", "--json"]) == 0
    capsys.readouterr()
    with SQLiteLedger(tmp_path / DEFAULT_LEDGER) as ledger:  # the demo's first three questions
        ids = sorted({r.request_id.removeprefix("gsm8k-") for r in ledger.rows()})
    shipped = default_policy()
    questions = routellm_prompts(shipped.parent / "../routellm/gsm8k_responses.csv")
    prompts = [questions[key] for key in ids]
    assert len(prompts) == 3
    document = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    for tier in document["tiers"]:
        tier["data"] = str((shipped.parent / tier["data"]).resolve())
        tier["exclude"] = str((shipped.parent / tier["exclude"]).resolve())
    document["fitted_on"] = RowFingerprint.of_prompts(prompts[:2]).to_dict()
    policy = tmp_path / "calibrated.yaml"
    policy.write_text(yaml.safe_dump(document), encoding="utf-8")

    assert main(["demo", "--limit", "3", "--policy", str(policy)]) == 2
    assert "--allow-in-sample" in capsys.readouterr().err
    assert main(["demo", "--limit", "3", "--policy", str(policy), "--allow-in-sample"]) == 0
    assert "IN-SAMPLE: 2 of 3" in capsys.readouterr().out
    assert (
        main(["demo", "--limit", "3", "--policy", str(policy), "--allow-in-sample", "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["in_sample_rows"] == 2
