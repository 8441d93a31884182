"""Calibrating from production: route through the real Router with shadow sampling into a real
SQLite ledger, label both tiers with ``paxis label``, fit with ``paxis calibrate --ledger``, load
the policy it writes and route held-out requests."""

from __future__ import annotations

import asyncio
import csv
import doctest
import json
import random
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from paxis_router import ChatRequest, Message, Router, SQLiteLedger, TokenPrice
from paxis_router.calibration.datasets import Example, holdout_split, load_examples
from paxis_router.calibration.from_ledger import LedgerPairs, load_pairs
from paxis_router.calibration.thresholds import calibrate
from paxis_router.cli import main
from paxis_router.config.calibrated import training_overlap
from paxis_router.config.schema import load_config
from paxis_router.policy.predicates import EscalationPolicy, tiers_exhausted, verdict_failed
from paxis_router.shadow import ShadowSampling
from paxis_router.types import Decision
from paxis_router.verifiers.arithmetic import ArithmeticVerifier
from paxis_router.workers.replay import ROUTELLM_STRONG, ROUTELLM_WEAK, ReplayWorker

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "routellm"
CSV = DATA / "gsm8k_responses.csv"
WEAK, STRONG = "local:worker", "frontier:top"
MODEL_OF = {WEAK: ROUTELLM_WEAK, STRONG: ROUTELLM_STRONG}
SEED = 7


def _requests(examples: Sequence[Example]) -> list[ChatRequest]:
    return [
        ChatRequest(
            messages=(Message(role="user", content=e.prompt),),
            metadata={"replay_id": e.id, "team": "maths"},
            request_id=e.id,
        )
        for e in examples
    ]


def _route(router: Router, examples: Sequence[Example]) -> list[str]:
    """Route every example; the tier that answered each."""
    results = asyncio.run(router.route_many(_requests(examples), concurrency=16))
    tiers = []
    for result in results:
        assert not isinstance(result, Exception)
        tiers.append(result.tier)
    return tiers


def _replay_ladder(examples: Sequence[Example]) -> list[ReplayWorker]:
    return [
        ReplayWorker(
            WEAK,
            {e.id: e.outcomes[ROUTELLM_WEAK] for e in examples},
            model=ROUTELLM_WEAK,
            price=TokenPrice.per_million("0.46", "0.46"),
        ),
        ReplayWorker(
            STRONG,
            {e.id: e.outcomes[ROUTELLM_STRONG] for e in examples},
            model=ROUTELLM_STRONG,
            price=TokenPrice.per_million("10", "30"),
            destination="openai",
        ),
    ]


def _label(
    path: Path, db: Path, examples: Sequence[Example], *, by_index: bool = False
) -> list[str]:
    """Grade every recorded answer with ``paxis label``: the route's answer by its id alone,
    the other attempt by its tier (or attempt_index). Returns the CSV's tier column."""
    truth = {e.id: e for e in examples}
    with SQLiteLedger(db) as ledger:
        records = ledger.rows()
    column = "attempt_index" if by_index else "tier"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["route_id", column, "correct"])
        for r in records:
            correct = truth[r.request_id].outcomes[MODEL_OF[r.tier]].correct
            which = "" if r.final else (str(r.attempt_index) if by_index else r.tier)
            writer.writerow([r.route_id, which, "yes" if correct else "no"])
    assert main(["label", str(path), "--ledger", str(db)]) == 0
    return [r.tier for r in records]


def _policy(path: Path, *, shadow_rate: float) -> Path:
    """The production policy: RouteLLM's GSM8K outcomes replayed, the arithmetic verifier."""
    common = {
        "kind": "replay",
        "data": str(CSV),
        "exclude": str(DATA / "contaminated_prompts.jsonl"),
    }
    document = {
        "tiers": [
            {"name": WEAK, "model": ROUTELLM_WEAK, **common,
             "usd_per_mtok_in": "0.46", "usd_per_mtok_out": "0.46"},
            {"name": STRONG, "model": ROUTELLM_STRONG, **common, "destination": "openai",
             "usd_per_mtok_in": "10", "usd_per_mtok_out": "30"},
        ],
        "verifiers": [{"kind": "arithmetic"}],
        "policy": {"escalate_when": "verdict_failed", "stop_when": "tiers_exhausted",
                   "on_exhausted": "return_best"},
        "calibration": {"shadow_rate": shadow_rate, "shadow_seed": SEED},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def _production(policy: Path, ledger: SQLiteLedger | None) -> Router:
    """The Router the policy file describes, recording into ``ledger``."""
    built = Router.from_config(load_config(policy))
    return Router(
        tiers=built.tiers,
        verifiers=built.verifiers,
        policy=built.policy,
        ledger=ledger,
        shadow=built.shadow,
    )


@pytest.fixture(scope="module")
def gsm8k() -> list[Example]:
    examples = load_examples([CSV])
    random.Random(0).shuffle(examples)
    return examples


@pytest.fixture(scope="module")
def production(
    tmp_path_factory: pytest.TempPathFactory, gsm8k: list[Example]
) -> tuple[Path, Path, list[Example]]:
    """300 GSM8K routes through the production policy at shadow rate 0.5, all answers labelled."""
    folder = tmp_path_factory.mktemp("production")
    policy = _policy(folder / "production.yaml", shadow_rate=0.5)
    db = folder / "ledger.db"
    examples = gsm8k[:300]
    with SQLiteLedger(db, store_content=True) as ledger:
        _route(_production(policy, ledger), examples)
    _label(folder / "labels.csv", db, examples)
    return policy, db, examples


# --- held out -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_policy_fitted_on_the_ledger_lands_within_2_points_on_held_out_mmlu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # RouteLLM's MMLU outcomes split in two at random rows (a repeated question on one side
    # only): one half is routed through the real Router with every route shadowed, labelled,
    # and fitted on from the ledger; the policy is then replayed through the Router on the
    # other half (as the dataset path's test does).
    seen, held_out = holdout_split(load_examples([DATA / "mmlu" / "responses"]), 0.5, seed=0)
    half = len(seen)
    db = tmp_path / "ledger.db"
    with SQLiteLedger(db, store_content=True) as ledger:
        router = Router(tiers=_replay_ladder(seen), ledger=ledger, shadow=1.0)
        _route(router, seen)
    tiers = _label(tmp_path / "labels.csv", db, seen, by_index=True)
    assert tiers.count(STRONG) == half  # every accepted route got its shadow call
    capsys.readouterr()

    policy = tmp_path / "policy.yaml"
    args = ["calibrate", "--ledger", str(db), "--weak", WEAK, "--strong", STRONG]
    assert main([*args, "--target-quality", "0.95", "-o", str(policy), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["n"], summary["weak"], summary["strong"]) == (
        half,
        ROUTELLM_WEAK,
        ROUTELLM_STRONG,
    )

    lines = [
        json.dumps(
            {
                "id": e.id,
                "prompt": e.prompt,
                "tiers": {
                    m: {
                        "response": o.response,
                        "correct": o.correct,
                        "prompt_tokens": o.prompt_tokens,
                        "completion_tokens": o.completion_tokens,
                    }
                    for m, o in e.outcomes.items()
                },
            }
        )
        for e in held_out
    ]
    data = tmp_path / "held_out.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["replay", "--policy", str(policy), "--data", str(data), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["n"], report["in_sample_rows"]) == (len(held_out), 0)
    assert report["accuracy"] / report["strong_accuracy"] == pytest.approx(0.95, abs=0.02)
    assert 0.2 < report["strong_call_share"] < 0.8
    assert report["usd_per_1k"] < 0.8 * report["strong_only_usd_per_1k"]


# --- the production pipeline on GSM8K -------------------------------------------------------------


def test_the_shadow_sample_is_the_default_and_escalated_routes_are_opt_in(
    production: tuple[Path, Path, list[Example]],
) -> None:
    _, db, examples = production
    sample = ShadowSampling(0.5, SEED)
    drawn = {e.id for e in examples if sample.sampled(e.id)}
    with SQLiteLedger(db) as ledger:
        rows = ledger.rows()
        escalated = {r.request_id for r in rows if r.decision is Decision.ESCALATE}
        shadowed = {r.request_id for r in rows if r.decision is Decision.SHADOW}
        assert shadowed == drawn - escalated  # accepted routes of the sample, only those
        found = load_pairs(ledger, weak=WEAK, strong=STRONG, sample=sample)
        unknown = load_pairs(ledger, weak=WEAK, strong=STRONG)
        everything = load_pairs(ledger, weak=WEAK, strong=STRONG, include_escalated=True)
    request_of = {r.route_id: r.request_id for r in rows}

    def requests(pairs: LedgerPairs) -> set[str]:
        return {request_of[e.id] for e in pairs.examples}

    assert requests(found) == drawn
    assert (found.shadowed_routes, found.sampled_routes) == (
        len(shadowed),
        len(drawn & escalated),
    )
    # Without the sampling settings the escalated routes of the sample cannot be told apart.
    assert requests(unknown) == shadowed
    assert requests(everything) == shadowed | escalated
    assert everything.escalated_routes == len(escalated)
    assert found.has_text
    assert found.weak_model == ROUTELLM_WEAK
    first = found.examples[0]
    truth = next(e for e in examples if e.id == request_of[first.id])
    assert first.prompt == truth.prompt
    assert first.outcomes[WEAK].response == truth.outcomes[ROUTELLM_WEAK].response
    assert first.outcomes[WEAK].correct == truth.outcomes[ROUTELLM_WEAK].correct
    assert first.outcomes[STRONG].correct == truth.outcomes[ROUTELLM_STRONG].correct
    strong_cost = first.outcomes[STRONG].cost_usd
    assert strong_cost is not None and strong_cost > 0


def test_ledger_calibration_equals_the_dataset_path_on_the_same_routes(
    tmp_path: Path,
    gsm8k: list[Example],
    production: tuple[Path, Path, list[Example]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy, db, examples = production
    out = tmp_path / "calibrated.yaml"
    args = ["calibrate", "--ledger", str(db), "--weak", WEAK, "--strong", STRONG, "--policy"]
    args += [str(policy), "--max-escalation", "0.3", "-o", str(out), "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)

    # The same routes, as a dataset, through calibrate() with the verifier run afresh.
    drawn = [e for e in examples if ShadowSampling(0.5, SEED).sampled(e.id)]
    expected = calibrate(
        drawn,
        weak=ROUTELLM_WEAK,
        strong=ROUTELLM_STRONG,
        max_escalation=0.3,
        verifiers=[ArithmeticVerifier()],
    )
    assert summary["n"] == len(drawn)
    assert summary["point"]["strong_call_share"] == pytest.approx(expected.point.strong_call_share)
    assert summary["point"]["threshold"] == pytest.approx(expected.point.threshold)
    assert summary["point"]["quality"] == pytest.approx(expected.point.quality)
    assert float(summary["point"]["usd_per_1k"]) > 0  # priced from the recorded costs

    # The written policy is the production one with a fitted escalate_when; the Router loads it.
    written = yaml.safe_load(out.read_text(encoding="utf-8"))
    base = yaml.safe_load(policy.read_text(encoding="utf-8"))
    assert (written["tiers"], written["verifiers"]) == (base["tiers"], base["verifiers"])
    scorer = written["policy"]["escalate_when"]["score_below"]
    assert scorer["threshold"] == pytest.approx(expected.point.threshold)
    # It records the routes it was fitted on: their questions are in-sample, the rest are not.
    fitted = training_overlap(load_config(out), [e.prompt for e in examples])
    assert fitted is not None and (fitted.fitted, fitted.fitted_rows) == (len(drawn), len(drawn))
    held_out = gsm8k[len(examples) : len(examples) + 40]
    answered = _route(_production(out, None), held_out)
    assert set(answered) <= {WEAK, STRONG}
    assert 0 < answered.count(STRONG) < len(held_out)


def test_without_answer_text_it_fits_a_threshold_on_the_verifier_score(
    tmp_path: Path, gsm8k: list[Example], capsys: pytest.CaptureFixture[str]
) -> None:
    examples = gsm8k[:120]
    db = tmp_path / "ledger.db"
    with SQLiteLedger(db) as ledger:  # no store_content: no prompt or answer text
        router = Router(
            tiers=_replay_ladder(examples),
            verifiers=[ArithmeticVerifier()],
            policy=EscalationPolicy(verdict_failed(), tiers_exhausted(), "return_best"),
            ledger=ledger,
            shadow=1.0,
        )
        _route(router, examples)
    _label(tmp_path / "labels.csv", db, examples)
    out = tmp_path / "policy.yaml"
    args = ["calibrate", "--ledger", str(db), "--weak", WEAK, "--strong", STRONG]
    args += ["--include-escalated", "--max-escalation", "0.4", "-o", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "a threshold on the verifiers' lowest score" in text
    escalate_when = yaml.safe_load(out.read_text(encoding="utf-8"))["policy"]["escalate_when"]
    assert 0.0 <= escalate_when["confidence_below"] <= 1.0
    assert load_config(out).fitted_on is None  # no prompt text recorded: nothing to fingerprint


# --- bad input ------------------------------------------------------------------------------------


def _calibrate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    status = main(["calibrate", *args])
    return status, capsys.readouterr().err


def test_a_missing_ledger_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.db"
    status, err = _calibrate(
        capsys, "--ledger", str(missing), "--weak", WEAK, "--strong", STRONG, "-o", "p.yaml"
    )
    assert status == 2
    assert f"no ledger at {missing}" in err
    assert not missing.exists()


def test_unknown_tiers_list_the_ones_seen(
    production: tuple[Path, Path, list[Example]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, db, _ = production
    status, err = _calibrate(
        capsys, "--ledger", str(db), "--weak", "local:nope", "--strong", STRONG, "-o", "p.yaml"
    )
    assert status == 2
    assert "no attempts of tier or model 'local:nope'" in err
    assert f"seen: {STRONG}, {ROUTELLM_STRONG}, {WEAK}, {ROUTELLM_WEAK}\n" in err


def test_too_few_labelled_pairs_says_how_many_and_what_to_do(
    tmp_path: Path, production: tuple[Path, Path, list[Example]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, db, _ = production
    status, err = _calibrate(
        capsys, "--ledger", str(db), "--weak", WEAK, "--strong", STRONG,
        "--team", "nobody", "-o", str(tmp_path / "p.yaml"),
    )  # fmt: skip
    assert status == 2
    assert "no attempts of tier or model" in err  # the team filter left nothing
    status, err = _calibrate(
        capsys, "--ledger", str(db), "--weak", WEAK, "--strong", STRONG,
        "--until", "2000-01-01", "-o", str(tmp_path / "p.yaml"),
    )  # fmt: skip
    assert status == 2
    status, err = _calibrate(
        capsys, "--ledger", str(db), "--weak", WEAK, "--strong", STRONG, "--folds", "200",
        "-o", str(tmp_path / "p.yaml"),
    )  # fmt: skip
    assert status == 2
    assert "calibration needs at least 400" in err
    assert "labelled shadow-sampled route(s)" in err
    assert "shadow_rate" in err and "paxis label" in err and "--include-escalated" in err


def test_ledger_and_data_are_exclusive_and_ledger_needs_both_tiers(
    tmp_path: Path, production: tuple[Path, Path, list[Example]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, db, _ = production
    with pytest.raises(SystemExit):
        main(["calibrate", "--ledger", str(db), "--data", str(CSV), "-o", "p.yaml"])
    assert "not allowed with argument" in capsys.readouterr().err
    status, err = _calibrate(capsys, "--ledger", str(db), "--weak", WEAK, "-o", "p.yaml")
    assert status == 2
    assert "--ledger needs --weak and --strong" in err
    status, err = _calibrate(
        capsys, "--ledger", str(db), "--weak", WEAK, "--strong", WEAK, "-o", "p.yaml"
    )
    assert status == 2
    assert f"--weak and --strong are both {WEAK!r}" in err


# --- docs -----------------------------------------------------------------------------------------


def test_docstring_examples_run() -> None:
    from paxis_router.calibration import from_ledger as _calibrate_ledger

    result = doctest.testmod(_calibrate_ledger)
    assert result.attempted > 0
    assert result.failed == 0


def test_readme_commands_parse_with_the_real_cli() -> None:
    from paxis_router.cli import build_parser

    text = (DATA.parents[2] / "docs" / "calibration.md").read_text(encoding="utf-8")
    start = text.index("\n## Calibrating from production: shadow sampling, labels, calibrate\n")
    block = re.search(r"```bash\n(.*?)```", text[start:], re.S)
    assert block is not None
    joined = block.group(1).replace("\\\n", " ")
    commands = [line.split("#")[0] for line in joined.splitlines() if line.startswith("paxis ")]
    assert [shlex.split(c)[1] for c in commands] == ["label", "calibrate"]
    parser = build_parser()
    for command in commands:
        args = parser.parse_args(shlex.split(command)[1:])
        assert args.handler.__module__ in ("paxis_router.cli.label", "paxis_router.cli.calibrate")
    calibrate_args = parser.parse_args(shlex.split(commands[1])[1:])
    assert (calibrate_args.ledger, calibrate_args.weak) == ("paxis-ledger.db", WEAK)
    config = re.search(r"```yaml\n(.*?)```", text[start:], re.S)
    assert config is not None
    section = yaml.safe_load(config.group(1).replace("   ", ""))["calibration"]
    assert section == {"shadow_rate": 0.05, "shadow_seed": 0}


def test_no_text_and_no_scores_leaves_nothing_to_fit(
    tmp_path: Path, gsm8k: list[Example], capsys: pytest.CaptureFixture[str]
) -> None:
    examples = gsm8k[:40]
    db = tmp_path / "ledger.db"
    with SQLiteLedger(db) as ledger:  # no text, and no verifier: no signal at all
        _route(Router(tiers=_replay_ladder(examples), ledger=ledger, shadow=1.0), examples)
    _label(tmp_path / "labels.csv", db, examples)
    status, err = _calibrate(
        capsys, "--ledger", str(db), "--weak", WEAK, "--strong", STRONG, "-o", "p.yaml"
    )
    assert status == 2
    assert "store_content=True" in err and "nothing to fit" in err


@pytest.mark.parametrize(
    ("body", "match"), [("tiers: [", "cannot read the base policy"), ("- a\n", "is a mapping")]
)
def test_an_unreadable_base_policy_is_named(
    tmp_path: Path,
    production: tuple[Path, Path, list[Example]],
    capsys: pytest.CaptureFixture[str],
    body: str,
    match: str,
) -> None:
    _, db, _ = production
    base = tmp_path / "base.yaml"
    base.write_text(body, encoding="utf-8")
    status, err = _calibrate(
        capsys, "--ledger", str(db), "--weak", WEAK, "--strong", STRONG,
        "--policy", str(base), "-o", str(tmp_path / "p.yaml"),
    )  # fmt: skip
    assert status == 2
    assert match in err and str(base) in err
