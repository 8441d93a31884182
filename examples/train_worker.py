"""Train the worker on the ledger's exported data: LoRA SFT, or GRPO on the router's verifiers.

Needs the ``[train]`` extra (torch, transformers, peft, trl). First export data from a ledger
recorded with ``SQLiteLedger(path, store_content=True)``::

    paxis distill export --ledger paxis-ledger.db --kind sft -o data/sft
    python examples/train_worker.py --base Qwen/Qwen2.5-0.5B-Instruct --data data/sft \\
        --output adapters/invoice-lora --max-steps 200

    # GRPO with a verifier as the reward (prompts from a gkd export):
    paxis distill export --ledger paxis-ledger.db --kind gkd -o data/prompts
    python examples/train_worker.py --base ... --data data/prompts --grpo --reward-regex '\\d'

``--tiny`` builds a tiny random Llama and a byte-level tokenizer locally instead of loading a base
model (no download; what the tests and the GPU benchmark use). The output folder is a PEFT
adapter in the layout vLLM loads (``adapter_config.json`` + ``adapter_model.safetensors``):
serve it with ``paxis worker plan --base BASE --adapter NAME=OUTPUT``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger("train_worker")

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"]
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
_CORPUS = (
    "The invoice total is 42 dollars. Sum the numbers and answer with digits only. "
    "What is 6*7? 42. Triage the ticket: billing, outage or other. Extract the date 2026-03-01. "
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 {}[]():;,.!?'\"-+*/=<>_"
)


def build_tokenizer(vocab_size: int = 384) -> Any:  # Any: a transformers tokenizer
    """A byte-level BPE tokenizer trained here on a few sentences, with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<|pad|>", eos_token="<|end|>", bos_token="<|end|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def make_tiny_base(
    out_dir: str | Path,
    *,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 4,
    dtype: str = "float32",
    seed: int = 0,
) -> Path:
    """Create a random Llama base model + tokenizer in ``out_dir`` (no download) and return it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(out_dir)
    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def read_jsonl(path: Path) -> list[dict[str, Any]]:  # Any: JSON rows
    """The rows of a JSONL file (empty lines skipped)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _lora_config(rank: int) -> Any:  # Any: peft.LoraConfig
    from peft import LoraConfig

    return LoraConfig(
        r=rank,
        lora_alpha=rank * 2,
        lora_dropout=0.0,
        target_modules=LORA_TARGETS,
        task_type="CAUSAL_LM",
    )


def _common_args(output_dir: Path, max_steps: int, batch_size: int) -> dict[str, Any]:
    import torch

    return {
        "output_dir": str(output_dir / "_trainer"),
        "max_steps": max_steps,
        "per_device_train_batch_size": batch_size,
        "learning_rate": 1e-3,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": not torch.cuda.is_available(),
        "seed": 0,
        "dataloader_num_workers": 0,
    }


def train_sft(
    base: str | Path,
    data_dir: str | Path,
    output_dir: str | Path,
    *,
    max_steps: int = 1,
    rank: int = 8,
    batch_size: int = 2,
) -> dict[str, Any]:  # Any: a JSON summary
    """LoRA SFT on ``data_dir/train.jsonl`` (``{"messages": [...]}`` rows); saves the adapter.

    Returns a summary: steps run, the last training loss, the adapter's folder and files.
    """
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    out = Path(output_dir)
    rows = read_jsonl(Path(data_dir) / "train.jsonl")
    if not rows or "messages" not in rows[0]:
        raise SystemExit(f"{data_dir}/train.jsonl holds no SFT rows; export with --kind sft")
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base))
    config = SFTConfig(**_common_args(out, max_steps, batch_size), max_length=256)
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=_lora_config(rank),
    )
    result = trainer.train()
    trainer.model.save_pretrained(str(out))
    return _summary(out, trainer.state.global_step, result.training_loss)


def train_grpo(
    base: str | Path,
    data_dir: str | Path,
    output_dir: str | Path,
    *,
    reward_regex: str = r"\d",
    verifier: Any = None,  # Any: a paxis_router Verifier (default: RegexVerifier(reward_regex))
    max_steps: int = 1,
    rank: int = 8,
    num_generations: int = 2,
    max_completion_length: int = 8,
) -> dict[str, Any]:  # Any: a JSON summary
    """GRPO on ``data_dir/train.jsonl`` prompts (``{"prompt": [...]}`` rows), rewarded by a
    verifier through ``paxis_router.training.rewards.reward_function``; saves the adapter."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from paxis_router.training.rewards import reward_function
    from paxis_router.verifiers import RegexVerifier

    out = Path(output_dir)
    rows = [{"prompt": r["prompt"]} for r in read_jsonl(Path(data_dir) / "train.jsonl")]
    if not rows:
        raise SystemExit(f"{data_dir}/train.jsonl holds no prompts; export with --kind gkd")
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base))
    config = GRPOConfig(
        **_common_args(out, max_steps, num_generations),
        num_generations=num_generations,
        max_completion_length=max_completion_length,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward_function(verifier or RegexVerifier(must_match=reward_regex))],
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=_lora_config(rank),
    )
    result = trainer.train()
    trainer.model.save_pretrained(str(out))
    return _summary(out, trainer.state.global_step, result.training_loss)


def _summary(out: Path, steps: int, loss: float) -> dict[str, Any]:  # Any: JSON
    return {
        "steps": steps,
        "training_loss": loss,
        "adapter": str(out),
        "files": sorted(p.name for p in out.iterdir() if p.is_file()),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--base", help="base model folder or hub id")
    source.add_argument("--tiny", action="store_true", help="build a tiny random base locally")
    parser.add_argument("--data", required=True, type=Path, help="an export folder")
    parser.add_argument("--output", required=True, type=Path, help="adapter folder to write")
    parser.add_argument("--max-steps", type=int, default=1)
    parser.add_argument("--rank", type=int, default=8, help="LoRA rank")
    parser.add_argument("--grpo", action="store_true", help="GRPO with a verifier reward")
    parser.add_argument("--reward-regex", default=r"\d", help="GRPO: RegexVerifier pattern")
    args = parser.parse_args(argv)
    if not (args.data / "train.jsonl").is_file():
        parser.error(
            f"{args.data / 'train.jsonl'} not found: export training data first, e.g. "
            f"paxis distill export --kind {'gkd' if args.grpo else 'sft'} -o {args.data}"
        )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    base: str | Path = args.base or make_tiny_base(args.output / "_tiny_base")
    if args.grpo:
        summary = train_grpo(
            base,
            args.data,
            args.output,
            reward_regex=args.reward_regex,
            max_steps=args.max_steps,
            rank=args.rank,
        )
    else:
        summary = train_sft(base, args.data, args.output, max_steps=args.max_steps, rank=args.rank)
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except ImportError as exc:
        sys.exit(
            f"train_worker.py needs the [train] extra ({exc.name or exc} is missing): "
            "pip install 'paxis-router[train]'"
        )
