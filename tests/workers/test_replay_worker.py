"""ReplayWorker, Outcome and the RouteLLM GSM8K loader, on the shipped data file."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pytest

from paxis_router.errors import ConfigError, WorkerError
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.pricing import TokenPrice
from paxis_router.router import Router
from paxis_router.testing import FakeVerifier
from paxis_router.types import ChatRequest, Usage
from paxis_router.workers.replay import (
    ROUTELLM_STRONG,
    ROUTELLM_WEAK,
    Outcome,
    ReplayWorker,
    count_tokens,
    drop_ids,
    load_routellm_gsm8k,
    routellm_contaminated_ids,
    routellm_prompts,
    token_counter_name,
)

DATA = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "routellm"
CSV = DATA / "gsm8k_responses.csv"
CONTAMINATED = DATA / "contaminated_prompts.jsonl"


def test_outcome_usage() -> None:
    assert Outcome("x", prompt_tokens=3, completion_tokens=1).usage == Usage(3, 1)
    assert Outcome("x", prompt_tokens=3).usage is None


async def test_serves_by_replay_id() -> None:
    worker = ReplayWorker(
        "local:m", {"7": Outcome("#### 9", correct=True, prompt_tokens=5, completion_tokens=3)}
    )
    completion = await worker.complete(ChatRequest.from_text("ignored", replay_id="7"), None)
    assert completion.content == "#### 9"
    assert completion.usage == Usage(5, 3)
    assert completion.model == "local:m"
    assert completion.finish_reason == "stop"


async def test_falls_back_to_prompt_text() -> None:
    worker = ReplayWorker("local:m", {"What is 2+2?": Outcome("4")}, model="mixtral")
    completion = await worker.complete(ChatRequest.from_text("What is 2+2?"), None)
    assert (completion.content, completion.model, completion.usage) == ("4", "mixtral", None)


async def test_unknown_id_names_it() -> None:
    worker = ReplayWorker("local:m", {"1": Outcome("a")})
    request = ChatRequest.from_text("q", replay_id="999")
    with pytest.raises(WorkerError, match=r"local:m: no recorded outcome for replay id '999'") as e:
        await worker.complete(request, None)
    assert e.value.request_id == request.request_id


def test_counts_tokens_offline_with_cl100k() -> None:
    assert token_counter_name() == "tiktoken:cl100k_base"
    assert count_tokens("Hello world") == 2
    assert count_tokens("") == 0


def test_loads_routellm_gsm8k() -> None:
    weak = load_routellm_gsm8k(CSV, ROUTELLM_WEAK)
    strong = load_routellm_gsm8k(CSV, ROUTELLM_STRONG)
    assert len(weak) == len(strong) == 1319
    # The dataset's own accuracies (SOURCE.md sanity numbers).
    assert sum(bool(o.correct) for o in weak.values()) / 1319 == pytest.approx(0.6384, abs=1e-4)
    assert sum(bool(o.correct) for o in strong.values()) / 1319 == pytest.approx(0.8567, abs=1e-4)
    first = weak["0"]
    assert first.response.rstrip().endswith("#### 18")
    assert first.prompt_tokens == count_tokens(routellm_prompts(CSV)["0"])
    assert first.completion_tokens == count_tokens(first.response)


def test_contaminated_ids_match_the_prompts() -> None:
    ids = routellm_contaminated_ids(CONTAMINATED)
    assert len(ids) == 12
    prompts = routellm_prompts(CSV)
    rows = [json.loads(line) for line in CONTAMINATED.read_text(encoding="utf-8").splitlines()]
    assert all(prompts[str(r["eval_idx"])] == r["eval_prompt"] for r in rows)
    kept = drop_ids(load_routellm_gsm8k(CSV, ROUTELLM_WEAK), ids)
    assert len(kept) == 1307
    assert not ids & kept.keys()


def test_missing_model_column_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"gsm8k_responses\.csv: missing column"):
        load_routellm_gsm8k(CSV, "gpt-5")


def test_bad_label_names_row_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "m", "m_response"])
        writer.writerow(["q", "maybe", "a"])
    with pytest.raises(ConfigError, match=r"bad\.csv: m: row 0: correctness 'maybe'"):
        load_routellm_gsm8k(path, "m")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_routellm_gsm8k(tmp_path / "nope.csv", "m")
    with pytest.raises(ConfigError, match="contaminated"):
        routellm_contaminated_ids(tmp_path / "nope.jsonl")


async def test_replayed_route_is_priced_and_recorded(tmp_path: Path) -> None:
    outcomes = {"1": Outcome("bad", correct=False, prompt_tokens=100, completion_tokens=50)}
    better = {"1": Outcome("good", correct=True, prompt_tokens=100, completion_tokens=20)}
    price = TokenPrice.per_million("10", "30")
    ledger = SQLiteLedger(tmp_path / "l.db")
    router = Router(
        tiers=[
            ReplayWorker("local:w", outcomes, price=TokenPrice.per_million("0.5", "0.5")),
            ReplayWorker("frontier:f", better, price=price, destination="openai"),
        ],
        verifiers=[FakeVerifier([False, True])],
        ledger=ledger,
    )
    result = await router.route(ChatRequest.from_text("q", replay_id="1"))
    rows = ledger.rows()
    ledger.close()
    assert result.content == "good"
    assert [r.tier for r in rows] == ["local:w", "frontier:f"]
    assert rows[0].cost_usd == Decimal("0.000075")
    assert rows[1].cost_usd == Decimal("0.0016")
    assert result.cost_usd == Decimal("0.001675")


async def test_recorded_tool_calls_are_replayed() -> None:
    from paxis_router.types import FunctionCall, ToolCall

    call = ToolCall(id="c1", function=FunctionCall(name="get_time", arguments='{"zone": "UTC"}'))
    worker = ReplayWorker("local:w", {"q": Outcome("", tool_calls=(call,))})
    completion = await worker.complete(ChatRequest.from_text("time?", replay_id="q"), None)
    assert (completion.tool_calls, completion.finish_reason) == ((call,), "tool_calls")
