"""Policy files: load_config errors name file and field; Router.from_config ≡ the constructor."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router.config.schema import (
    LiteLLMTierSpec,
    OpenAICompatTierSpec,
    RouterConfig,
    config_from_mapping,
    load_config,
)
from paxis_router.errors import ConfigError
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.policy.predicates import EscalationPolicy, verdict_failed
from paxis_router.pricing import GpuHourPrice, TokenPrice
from paxis_router.router import Router
from paxis_router.testing import make_state
from paxis_router.types import ChatRequest
from paxis_router.verifiers import RegexVerifier
from paxis_router.workers.litellm import LiteLLMWorker
from paxis_router.workers.openai_compat import OpenAICompatWorker
from paxis_router.workers.replay import ReplayWorker

ROOT = Path(__file__).resolve().parents[2]
FRONTIER = {"kind": "litellm", "model": "gpt-4o"}


def _write(tmp_path: Path, text: str, name: str = "policy.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_bundled_default_policy_loads() -> None:
    cfg = load_config(ROOT / "policies" / "default.yaml")
    local, frontier = cfg.tiers
    assert isinstance(local, OpenAICompatTierSpec)
    assert local.kind == "local"
    assert local.base_url == "http://127.0.0.1:8000/v1"
    assert isinstance(frontier, LiteLLMTierSpec)
    assert frontier.model == "gpt-4o"
    assert [v.kind for v in cfg.verifiers] == ["non_empty", "logprob_confidence"]
    assert cfg.ledger is not None
    assert cfg.ledger.path == Path("paxis-ledger.db")
    assert cfg.base_dir == ROOT / "policies"


def test_bundled_demo_policy_builds_a_replay_ladder() -> None:
    cfg = load_config(ROOT / "policies" / "demo.yaml")
    router = Router.from_config(cfg)
    local, frontier = router.tiers
    assert isinstance(local.worker, ReplayWorker)
    assert len(local.worker.outcomes) == 1307  # 1319 minus the 12 contaminated prompts
    assert local.price == GpuHourPrice(Decimal("2.49"), 2, Decimal("3000"))
    assert frontier.price == TokenPrice(Decimal("0.00001"), Decimal("0.00003"))
    assert frontier.destination == "openai"
    assert [v.name for v in router.verifiers] == ["arithmetic"]
    assert router.policy.on_exhausted == "return_best"
    assert router.sinks == ()


def test_from_config_equals_constructor(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
tiers:
  - kind: local
    name: "local:qwen"
    model: qwen
    base_url: "http://127.0.0.1:8000/v1"
    usd_per_gpu_hour: "2.00"
    throughput_tokens_per_s: 1000
  - {kind: litellm, model: gpt-4o, destination: "openai:us"}
verifiers: [{kind: regex, must_match: "\\\\d"}]
policy:
  escalate_when: verdict_failed
  stop_when: tiers_exhausted
  on_exhausted: return_best
""",
    )
    built = Router.from_config(load_config(path))
    by_hand = Router(
        tiers=[
            OpenAICompatWorker(
                "local:qwen",
                "qwen",
                "http://127.0.0.1:8000/v1",
                price=GpuHourPrice(Decimal("2.00"), 1, Decimal(1000)),
            ),
            LiteLLMWorker("gpt-4o", destination="openai:us"),
        ],
        verifiers=[RegexVerifier(must_match=r"\d")],
        policy=EscalationPolicy(escalate_when=verdict_failed(), on_exhausted="return_best"),
    )
    assert [(t.name, t.price, t.destination) for t in built.tiers] == [
        (t.name, t.price, t.destination) for t in by_hand.tiers
    ]
    assert [v.name for v in built.verifiers] == [v.name for v in by_hand.verifiers]
    assert built.policy.on_exhausted == by_hand.policy.on_exhausted
    for state in (make_state(passed=False), make_state(passed=True), make_state(tier_index=1)):
        assert built.policy.escalate_when(state) == by_hand.policy.escalate_when(state)
        assert built.policy.stop_when(state) == by_hand.policy.stop_when(state)


def test_routes_and_records_from_a_policy_file(tmp_path: Path) -> None:
    ledger_path = tmp_path / "ledger.db"
    path = _write(
        tmp_path,
        f"""
tiers:
  - {{kind: litellm, model: gpt-4o-mini, name: "local:cheap",
     completion_kwargs: {{mock_response: "no idea"}}}}
  - {{kind: litellm, model: gpt-4o, completion_kwargs: {{mock_response: "42"}}}}
verifiers: [{{kind: regex, must_match: "^\\\\d+$"}}]
ledger: {{kind: sqlite, path: "{ledger_path}"}}
""",
    )
    router = Router.from_config(load_config(path))
    result = router.route_sync(ChatRequest.from_text("6*7?", team="claims"))
    with SQLiteLedger(ledger_path) as ledger:
        rows = ledger.rows()
    assert (result.content, result.tier) == ("42", "frontier:gpt-4o")
    assert [(r.tier, r.decision, r.team) for r in rows] == [
        ("local:cheap", "escalate", "claims"),
        ("frontier:gpt-4o", "accept", "claims"),
    ]
    assert all(r.cost_usd is not None and r.cost_usd > 0 for r in rows)


def test_price_override_replaces_the_map() -> None:
    cfg = config_from_mapping(
        {
            "tiers": [FRONTIER],
            "policy": {
                "price_overrides": {
                    "gpt-4o": {"input_usd_per_mtok": "2.00", "output_usd_per_mtok": "8.00"}
                }
            },
        }
    )
    (tier,) = Router.from_config(cfg).tiers
    assert tier.price == TokenPrice(Decimal("0.000002"), Decimal("0.000008"))


def test_per_mtok_price_and_unknown_price(caplog: pytest.LogCaptureFixture) -> None:
    cfg = config_from_mapping(
        {
            "tiers": [
                {"kind": "local", "model": "a", "base_url": "http://127.0.0.1:1/v1"},
                {
                    "kind": "local",
                    "model": "b",
                    "base_url": "http://127.0.0.1:2/v1",
                    "usd_per_mtok_in": "0.1",
                    "usd_per_mtok_out": "0.2",
                },
            ]
        }
    )
    unpriced, priced = Router.from_config(cfg).tiers
    assert unpriced.price is None
    assert priced.price == TokenPrice.per_million("0.1", "0.2")
    assert unpriced.name == "local:a"


def test_api_key_env_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    tier = {"kind": "local", "model": "a", "base_url": "http://x/v1", "api_key_env": "PAXIS_K"}
    cfg = config_from_mapping({"tiers": [tier]}, source="p.yaml")
    with pytest.raises(ConfigError, match=r"p\.yaml: tiers\[0\]: api_key_env: .*PAXIS_K"):
        Router.from_config(cfg)
    monkeypatch.setenv("PAXIS_K", "sk-local")
    (built,) = Router.from_config(cfg).tiers
    assert isinstance(built.worker, OpenAICompatWorker)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("tiers: [", r"policy\.yaml: not valid YAML"),
        ("- just a list", r"policy\.yaml: a policy file must be a mapping"),
        ("tiers: []", r"policy\.yaml: tiers: List should have at least 1 item"),
        (
            "tiers: [{kind: litellm, model: gpt-4o, bogus: 1}]",
            r"policy\.yaml: tiers\[0\]\.bogus: unknown key",
        ),
        (
            "tiers: [{kind: local, model: m, base_url: u, timeout_s: fast}]",
            r"policy\.yaml: tiers\[0\]\.timeout_s: Input should be a valid number",
        ),
        (
            "tiers: [{kind: grpc, model: m}]",
            r"policy\.yaml: tiers\[0\]: unknown kind 'grpc'; kind is one of: openai_compat, local",
        ),
        (
            "tiers: [{kind: litellm, model: gpt-4o}]\nverifiers: [{kind: magic}]",
            r"policy\.yaml: verifiers\[0\]: unknown kind 'magic'; kind is one of: non_empty, regex",
        ),
        (
            "tiers: [{kind: litellm, model: gpt-4o}]\n"
            "verifiers: [{kind: all_of, verifiers: [{kind: regex, must_match: x, bogus: 1}]}]",
            r"policy\.yaml: verifiers\[0\]\.verifiers\[0\]\.bogus: unknown key",
        ),
        (
            "tiers: [{kind: litellm, model: gpt-4o}]\n"
            "policy: {escalate_when: {any_of: [verdict_failed, {confidence_blow: 0.5}]}}",
            r"policy\.yaml: policy\.escalate_when\.any_of\[1\]\.confidence_blow: unknown predicate",
        ),
        (
            "tiers: [{kind: litellm, model: gpt-4o}]\npolicy: {stop_when: {spent_over: abc}}",
            r"policy\.yaml: policy\.stop_when\.spent_over: bad argument 'abc'",
        ),
        (
            "tiers: [{kind: litellm, model: gpt-4o}]\npolicy: {on_exhausted: shrug}",
            r"policy\.yaml: policy\.on_exhausted: Input should be 'raise' or 'return_best'",
        ),
        (
            "tiers: [{kind: local, model: m, base_url: u, usd_per_gpu_hour: 2, "
            "usd_per_mtok_in: 1, usd_per_mtok_out: 1}]",
            r"policy\.yaml: tiers\[0\]: give one pricing",
        ),
        (
            "tiers: [{kind: local, model: m, base_url: u, usd_per_mtok_in: 1}]",
            r"policy\.yaml: tiers\[0\]: give both usd_per_mtok_in and usd_per_mtok_out",
        ),
        (
            "tiers: [{kind: local, model: m, base_url: u, throughput_tokens_per_s: 100}]",
            r"policy\.yaml: tiers\[0\]: gpus and throughput_tokens_per_s need usd_per_gpu_hour",
        ),
        (
            "tiers: [{kind: litellm, model: gpt-4o}]\nledger: {kind: mysql}",
            r"policy\.yaml: ledger\.kind: Input should be 'sqlite' or 'postgres'",
        ),
        (
            "tiers: [{kind: litellm, model: gpt-4o}]\nledger: {kind: postgres}",
            r"policy\.yaml: ledger: .*kind: postgres needs url",
        ),
        (
            "tiers: [{kind: litellm, model: gpt-4o}]\ngate: {version: v1, rules: [{id: a}]}",
            r"policy\.yaml: gate\.rules\[0\]\.effect: Field required",
        ),
    ],
)
def test_load_errors_name_file_and_field(tmp_path: Path, text: str, pattern: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=pattern) as info:
        load_config(path)
    assert info.value.source == str(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read policy file"):
        load_config(tmp_path / "nope.yaml")


def test_bad_schema_file_is_reported_at_build(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "tiers: [{kind: litellm, model: gpt-4o}]\n"
        "verifiers: [{kind: json_schema, schema_file: missing.json}]",
    )
    with pytest.raises(ConfigError, match=r"missing\.json"):
        Router.from_config(load_config(path))


def test_replay_paths_start_at_the_policy_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "r.csv").write_text("prompt,m,m_response\nq0,True,a0\nq1,False,a1\n", encoding="utf-8")
    (data / "bad.jsonl").write_text('{"eval_idx": 1}\n', encoding="utf-8")
    path = _write(
        tmp_path,
        "tiers: [{kind: replay, model: m, data: data/r.csv, exclude: data/bad.jsonl}]",
    )
    (tier,) = Router.from_config(load_config(path)).tiers
    assert isinstance(tier.worker, ReplayWorker)
    assert tier.name == "replay:m"
    assert list(tier.worker.outcomes) == ["0"]


def test_config_is_frozen_and_forbids_extra() -> None:
    cfg = RouterConfig.model_validate({"tiers": [FRONTIER]})
    with pytest.raises(ValueError, match="frozen"):
        cfg.verifiers = []  # type: ignore[misc]
    assert cfg.policy.on_exhausted == "raise"
    assert cfg.policy.build().escalate_when(make_state(confidence=0.5)) is True


def test_model_validate_checks_predicates_too() -> None:
    with pytest.raises(ValueError, match="unknown predicate 'sometimes'"):
        RouterConfig.model_validate({"tiers": [FRONTIER], "policy": {"stop_when": "sometimes"}})


def test_gate_and_audit_sections_reach_the_router(tmp_path: Path) -> None:
    audit_path = tmp_path / "audit.jsonl"
    cfg = config_from_mapping(
        {
            "tiers": [FRONTIER],
            "gate": {"version": "v1", "rules": [{"id": "all", "effect": "allow"}]},
            "audit": {"path": str(audit_path), "include_payload": True},
        }
    )
    router = Router.from_config(cfg)
    assert router.gate is not None
    assert router.gate.version == "v1"
    assert router.audit is not None
    assert router.audit.path == audit_path
    assert router.audit.include_payload is True


def test_budgets_and_a_ledger_url_come_from_the_policy_file(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "tiers:\n"
        "  - {kind: litellm, model: gpt-4o}\n"
        f"ledger: {{url: 'sqlite:///{tmp_path / 'l.db'}'}}\n"
        "budgets: {on_exhausted: refuse, teams: {claims: {day: '0.50'}}}\n"
    )
    router = Router.from_config(load_config(policy))
    assert router.budgets is not None
    assert (tmp_path / "l.db").exists()


def test_a_bad_budget_section_names_the_file_and_field(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "tiers: [{kind: litellm, model: gpt-4o}]\nbudgets: {teams: {claims: {week: 1}}}\n"
    )
    with pytest.raises(ConfigError, match=r"policy\.yaml: budgets\.teams\.claims: unknown keys"):
        Router.from_config(load_config(policy))


# --- errors that say what is wrong first -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "tiers:\n  - {kind: local, model: q, baseurl: 'http://127.0.0.1:8000/v1'}",
            "tiers[0].baseurl: unknown key; did you mean 'base_url'?",
        ),
        ("tier: [{kind: litellm, model: gpt-4o}]", "tier: unknown key; did you mean 'tiers'?"),
        (
            "tiers: [{kind: litellm, model: gpt-4o}]\nverifiers: [{kind: regex, must_mach: x}]",
            "verifiers[0].must_mach: unknown key; did you mean 'must_match'?",
        ),
        (
            "tiers: [{kind: litellm, model: gpt-4o}]\npolicy:\n  price_overrides:\n"
            "    gpt-4o: {input_usd_per_mtok: 1, output_usd_per_mtk: 2}",
            "policy.price_overrides.gpt-4o.output_usd_per_mtk: unknown key; did you mean "
            "'output_usd_per_mtok'?",
        ),
        (
            "tiers: [{kind: litellm, model: gpt-4o}]\nledger: {path: x.db, colour: red}",
            "ledger.colour: unknown key; the keys here are: kind, path, url",
        ),
        (
            "tiers: [{kind: lokal, model: m}]",
            "tiers[0]: unknown kind 'lokal'; did you mean 'local'?",
        ),
    ],
)
def test_the_real_cause_comes_first_with_the_nearest_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: {message}")
    assert "Field required" not in str(info.value)  # the misspelt key, not its consequence


def test_other_errors_follow_the_first(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "tiers:\n  - {kind: local, model: q, baseurl: u, timeout_s: soon}\n  - {kind: litellm}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: tiers[0].baseurl: unknown key; did you mean 'base_url'? (also: "
        "tiers[0].timeout_s: Input should be a valid number, unable to parse string as a number; "
        "tiers[1].model: Field required)"
    )


def test_a_duplicate_yaml_key_is_an_error_naming_its_lines(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "tiers: [{kind: litellm, model: gpt-4o}]\nverifiers: [non_empty]\n"
        "tiers: [{kind: litellm, model: gpt-4o-mini}]\n",
    )
    with pytest.raises(
        ConfigError, match=r"found duplicate key 'tiers' \(first at line 1\)"
    ) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: not valid YAML: ")
    assert "line 3, column 1" in str(info.value)


def test_duplicate_keys_inside_a_tier_and_merge_keys(tmp_path: Path) -> None:
    nested = _write(
        tmp_path, "tiers:\n  - kind: litellm\n    model: gpt-4o\n    model: gpt-4o-mini\n"
    )
    with pytest.raises(ConfigError, match=r"duplicate key 'model' \(first at line 3\)"):
        load_config(nested)
    # A << merge may be overridden: that is what merges are for.
    merged = _write(
        tmp_path,
        "base: &base {kind: litellm, model: gpt-4o}\ntiers:\n  - {<<: *base, model: gpt-4o-mini}\n",
        name="merged.yaml",
    )
    with pytest.raises(ConfigError, match=r"base: unknown key"):
        load_config(merged)  # parsed (the override is allowed); `base` itself is not a key


def test_duplicate_tier_names_name_both_tiers(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "tiers:\n  - {kind: litellm, model: gpt-4o}\n  - {kind: litellm, model: gpt-4o}\n",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(
        f"{path}: tiers[1].name: tier name 'frontier:gpt-4o' is already used by tiers[0]"
    )
