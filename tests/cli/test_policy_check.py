"""``paxis policy check FILE``: what a policy loads, exit 0/1, and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paxis_router.cli import main
from paxis_router.cli.demo import default_policy

ROOT = Path(__file__).resolve().parents[2]


def test_check_prints_tiers_prices_verifiers_gate_and_ledger_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    policy = ROOT / "policies" / "default.yaml"
    assert main(["policy", "check", str(policy)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{policy}: OK\ntiers (cheapest first):\n  1. local:qwen-ft-v3 (local)\n")
    assert "connects to: http://127.0.0.1:8000/v1 (model qwen-ft-v3); destination: local" in out
    assert "price: $2.4900 per GPU-hour x 1 GPU at 2500 tokens/s (= $0.2767 per million" in out
    assert "2. frontier:gpt-4o (litellm)" in out
    assert "destination: openai" in out
    assert (
        "price: $2.5000 in / $10.0000 out per million tokens; cached input $1.2500 "
        "[from the price map (gpt-4o)]"
    ) in out
    assert "verifiers: non_empty, logprob_confidence\n" in out
    assert "gate: version " in out
    assert "ledger: sqlite paxis-ledger.db (relative to the working directory)" in out
    assert "prices from: " in out
    assert list(tmp_path.iterdir()) == []  # no ledger, no audit log: nothing was routed


def test_check_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", "--json", str(default_policy())]) == 0
    loaded = json.loads(capsys.readouterr().out)
    assert loaded["ok"] is True
    assert [(t["name"], t["kind"], t["destination"]) for t in loaded["tiers"]] == [
        ("local:mixtral-8x7b", "replay", "local"),
        ("frontier:gpt-4-1106-preview", "replay", "openai"),
    ]
    assert loaded["tiers"][1]["price"] == "$10.0000 in / $30.0000 out per million tokens"
    assert loaded["tiers"][1]["price_from"] == "the price map (gpt-4-1106-preview)"
    assert loaded["verifiers"] == ["arithmetic"]
    assert loaded["policy"] == {
        "escalate_when": "verdict_failed",
        "stop_when": "tiers_exhausted",
        "on_exhausted": "return_best",
    }
    assert loaded["ledger"] is None


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_check_names_overrides_and_unknown_prices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        "tiers:\n"
        "  - {kind: local, model: m, base_url: 'http://10.0.0.5:8000/v1'}\n"
        "  - {kind: litellm, model: gpt-4o}\n"
        "policy:\n"
        "  price_overrides: {gpt-4o: {input_usd_per_mtok: 2, output_usd_per_mtok: 8}}\n"
        "ledger: {url: 'postgresql://paxis:s3cret@db.internal/paxis'}\n",
    )
    assert main(["policy", "check", "--json", str(path)]) == 0
    loaded = json.loads(capsys.readouterr().out)
    local, frontier = loaded["tiers"]
    assert local["price"].startswith("unknown")
    assert local["destination"] == "remote:10.0.0.5"
    assert frontier["price"] == "$2.0000 in / $8.0000 out per million tokens"
    assert frontier["price_from"] == "policy.price_overrides['gpt-4o']"
    assert loaded["ledger"] == "postgres postgresql://***@db.internal/paxis"  # no password


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "tiers:\n  - {kind: local, model: q, baseurl: 'http://127.0.0.1:8000/v1'}\n",
            "tiers[0].baseurl: unknown key; did you mean 'base_url'?",
        ),
        (
            "tiers: [{kind: litellm, model: gpt-4o}]\ntiers: [{kind: litellm, model: o3}]\n",
            "not valid YAML: while constructing a mapping\nfound duplicate key 'tiers'",
        ),
        (
            "tiers:\n  - {kind: local, model: q, base_url: 'http://127.0.0.1:8000/v1', "
            "api_key_env: PAXIS_TEST_UNSET_KEY}\n",
            "tiers[0]: api_key_env: environment variable PAXIS_TEST_UNSET_KEY is not set",
        ),
        (
            "tiers: [{kind: litellm, model: gpt-4o}]\nverifiers: [{kind: json_schema, "
            "schema_file: nope.json}]\n",
            "verifiers[0]: ",  # then the schema file's own name and what is wrong with it
        ),
    ],
)
def test_check_fails_with_exit_1_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = _write(tmp_path, text)
    assert main(["policy", "check", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"paxis policy check: error: {path}: ")
    assert message in captured.err


def test_check_a_gate_only_file_says_what_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    policy = ROOT / "policies" / "sovereign.yaml"
    assert main(["policy", "check", "--json", str(policy)]) == 1
    assert json.loads(capsys.readouterr().out) == {
        "ok": False,
        "file": str(policy),
        "error": f"{policy}: tiers: Field required",
    }


def test_check_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml: cannot read policy file" in capsys.readouterr().err
