"""examples/train_worker.py: one real LoRA SFT step and one real GRPO step on the CPU.

The base model is a tiny random Llama created here from a config, with a tokenizer trained here
(no hub download). The saved adapters have the layout vLLM loads.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.router import Router
from paxis_router.testing import FakeWorker
from paxis_router.training.distill import export
from paxis_router.types import ChatRequest, Completion, Verdict
from paxis_router.verifiers import RegexVerifier

pytest.importorskip("trl")
pytest.importorskip("peft")

pytestmark = [
    pytest.mark.slow,
    # transformers 5 / trl warn about their own deprecated internals while training
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_worker.py"


@pytest.fixture(scope="module")
def train_worker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_worker_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_base(train_worker: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path: Path = train_worker.make_tiny_base(tmp_path_factory.mktemp("tiny"))
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SFT and GKD exports of a ledger the real router filled (worker fails, frontier passes)."""
    root = tmp_path_factory.mktemp("export")
    ledger = SQLiteLedger(root / "paxis.db", store_content=True)
    router = Router(
        tiers=[FakeWorker(["no idea"], name="local:w"), FakeWorker(["42"], name="frontier:f")],
        verifiers=[RegexVerifier(must_match=r"\d")],
        ledger=ledger,
    )
    for question in ("6*7?", "What is 40+2?", "Total of 21 and 21?"):
        router.route_sync(ChatRequest.from_text(question, team="t"))
    export(ledger, root / "sft", kind="sft", eval_percent=0)
    export(ledger, root / "gkd", kind="gkd", eval_percent=0)
    return {"sft": root / "sft", "gkd": root / "gkd"}


def _adapter_config(folder: Path) -> dict[str, object]:
    config: dict[str, object] = json.loads((folder / "adapter_config.json").read_text())
    return config


def test_one_sft_step_saves_a_vllm_loadable_adapter(
    train_worker: ModuleType, tiny_base: Path, exported: dict[str, Path], tmp_path: Path
) -> None:
    summary = train_worker.train_sft(tiny_base, exported["sft"], tmp_path / "lora", max_steps=1)
    assert summary["steps"] == 1
    assert summary["training_loss"] > 0
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(summary["files"])
    config = _adapter_config(tmp_path / "lora")
    assert config["peft_type"] == "LORA"
    assert config["r"] == 8
    targets = config["target_modules"]
    assert isinstance(targets, list)
    assert sorted(targets) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / "lora" / "adapter_model.safetensors"))
    assert any("lora_A" in k for k in weights) and any("lora_B" in k for k in weights)
    # one optimiser step moved lora_B away from its zero initialisation
    assert any(float(v.abs().sum()) > 0 for k, v in weights.items() if "lora_B" in k)


class Recording:
    """A verifier that records the completions GRPO generated and passes every one."""

    name = "recording"

    def __init__(self) -> None:
        self.completions: list[str] = []

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        self.completions.append(completion.content)
        return Verdict(self.name, True, None, "")


def test_one_grpo_step_uses_a_verifier_as_reward(
    train_worker: ModuleType, tiny_base: Path, exported: dict[str, Path], tmp_path: Path
) -> None:
    verifier = Recording()
    summary = train_worker.train_grpo(
        tiny_base, exported["gkd"], tmp_path / "grpo", verifier=verifier, max_steps=1
    )
    assert summary["steps"] == 1
    assert len(verifier.completions) == 2  # one prompt x num_generations=2
    assert "adapter_model.safetensors" in summary["files"]
    assert _adapter_config(tmp_path / "grpo")["peft_type"] == "LORA"


def test_cli_tiny_sft(train_worker: ModuleType, exported: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cli"
    assert train_worker.main(["--tiny", "--data", str(exported["sft"]), "--output", str(out)]) == 0
    assert (out / "adapter_model.safetensors").is_file()
