"""paxis worker plan: the vLLM command and the matching paxis tier config."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from paxis_router.cli import main
from paxis_router.config.schema import RouterConfig
from paxis_router.errors import ConfigError
from paxis_router.training.worker_plan import WorkerPlan, parse_adapter, vllm_rank


def _adapter(tmp_path: Path, name: str, rank: int) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank, "peft_type": "LORA"}))
    return folder


def test_plan_command_and_tier(tmp_path: Path) -> None:
    inv, tix = _adapter(tmp_path, "inv", 8), _adapter(tmp_path, "tix", 24)
    plan = WorkerPlan(
        "Qwen/Qwen2.5-1.5B-Instruct",
        (("invoice-lora", str(inv)), ("ticket-lora", str(tix))),
        port=8001,
        usd_per_gpu_hour=Decimal("2.50"),
    )
    assert plan.command() == [
        "vllm", "serve", "Qwen/Qwen2.5-1.5B-Instruct", "--host", "127.0.0.1", "--port", "8001",
        "--enable-lora", "--lora-modules", f"invoice-lora={inv}", f"ticket-lora={tix}",
        "--max-loras", "2", "--max-lora-rank", "32",
    ]  # fmt: skip
    assert plan.tier_config() == {
        "kind": "local",
        "name": "local:Qwen2.5-1.5B-Instruct",
        "model": "Qwen/Qwen2.5-1.5B-Instruct",
        "base_url": "http://127.0.0.1:8001/v1",
        "adapters": ["invoice-lora", "ticket-lora"],
        "usd_per_gpu_hour": "2.50",
    }
    assert RouterConfig.model_validate({"tiers": [plan.tier_config()]}).tiers[0].model == (
        "Qwen/Qwen2.5-1.5B-Instruct"
    )


def test_cli_plan_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["worker", "plan", "--base", "m", "--adapter", "a=/p/a", "--max-lora-rank", "64",
            "--max-loras", "4", "--gpus", "2", "--usd-per-gpu-hour", "3"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert (
        "vllm serve m --host 127.0.0.1 --port 8000 --tensor-parallel-size 2 --enable-lora "
        "--lora-modules a=/p/a --max-loras 4 --max-lora-rank 64\n" in text
    )
    tiers_yaml = text.split("first rung of the ladder):\n")[1].split("\n\n")[0]
    assert yaml.safe_load(tiers_yaml) == {
        "tiers": [
            {
                "kind": "local",
                "name": "local:m",
                "model": "m",
                "base_url": "http://127.0.0.1:8000/v1",
                "adapters": ["a"],
                "usd_per_gpu_hour": "3",
                "gpus": 2,
            }
        ]
    }
    assert "paxis-adapter: a" in text
    assert main([*argv, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["command"][-4:] == ["--max-loras", "4", "--max-lora-rank", "64"]
    assert plan["skill_metadata"] == {"a": {"paxis-adapter": "a"}}


def test_plan_without_adapters_serves_the_base_only() -> None:
    plan = WorkerPlan("m")
    assert plan.shell() == "vllm serve m --host 127.0.0.1 --port 8000"
    assert "adapters" not in plan.tier_config()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: parse_adapter("nopath"), "expected NAME=PATH"),
        (lambda: WorkerPlan("m", (("a", "/x"), ("a", "/y"))), "adapter names must be unique"),
        (lambda: WorkerPlan("m", (("a", "/x"),), max_lora_rank=12), "not one vLLM accepts"),
        (lambda: WorkerPlan("m", max_loras=0), "--max-loras must be >= 1"),
        (lambda: vllm_rank(1024), "exceeds vLLM's largest"),
    ],
)
def test_bad_plans_are_config_errors(make: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()  # type: ignore[operator]


def test_cli_bad_adapter_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "plan", "--base", "m", "--adapter", "oops"]) == 2
    assert "expected NAME=PATH" in capsys.readouterr().err
