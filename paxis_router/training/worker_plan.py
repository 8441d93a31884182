"""Plan a vLLM worker: one base model plus a LoRA adapter per skill, and its paxis tier.

``WorkerPlan`` turns a base model and ``name=path`` adapters into the ``vllm serve`` command
line (``--enable-lora --lora-modules name=path ... --max-loras N --max-lora-rank R``) and the
matching tier for a paxis policy file (``kind: local`` with ``adapters:``, served by a
``OpenAICompatWorker(adapters=...)``). Skills pick their adapter with
``metadata: {paxis-adapter: NAME}`` in SKILL.md.

``max_lora_rank`` defaults to the largest ``r`` in the adapters' ``adapter_config.json`` files
(rounded up to a rank vLLM accepts), or 16 when no adapter folder is readable here.

Example:
    >>> plan = WorkerPlan("Qwen/Qwen2.5-1.5B-Instruct", (("invoices", "/models/inv"),),
    ...                   max_lora_rank=16)
    >>> print(plan.shell())
    vllm serve Qwen/Qwen2.5-1.5B-Instruct --host 127.0.0.1 --port 8000 --enable-lora \
--lora-modules invoices=/models/inv --max-loras 1 --max-lora-rank 16
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paxis_router.errors import ConfigError
from paxis_router.workers.openai_compat import ADAPTER_KEY

if TYPE_CHECKING:
    from decimal import Decimal

VLLM_LORA_RANKS: tuple[int, ...] = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The ``--max-lora-rank`` values vLLM accepts."""

DEFAULT_LORA_RANK = 16


def parse_adapter(text: str) -> tuple[str, str]:
    """``"name=path"`` -> ``(name, path)``; raises ConfigError naming the bad argument.

    Example:
        >>> parse_adapter("invoices=/models/invoice-lora")
        ('invoices', '/models/invoice-lora')
    """
    name, sep, path = text.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise ConfigError(f"--adapter {text!r}: expected NAME=PATH (e.g. invoices=/models/inv)")
    return name.strip(), path.strip()


def adapter_rank(path: str | Path) -> int | None:
    """The LoRA rank ``r`` in ``path/adapter_config.json``, or None when it cannot be read."""
    config = Path(path) / "adapter_config.json"
    try:
        rank = json.loads(config.read_text(encoding="utf-8")).get("r")
    except (OSError, ValueError, AttributeError):
        return None
    return int(rank) if isinstance(rank, int) else None


def vllm_rank(rank: int) -> int:
    """The smallest rank vLLM accepts that is >= ``rank``."""
    for allowed in VLLM_LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise ConfigError(f"LoRA rank {rank} exceeds vLLM's largest ({VLLM_LORA_RANKS[-1]})")


@dataclass(frozen=True)
class WorkerPlan:
    """A vLLM server for a base model and its LoRA adapters, and the paxis tier that uses it.

    Args:
        base: the base model (hub id or local folder), as ``vllm serve`` takes it.
        adapters: ``(name, path)`` pairs; each name becomes a model on the endpoint.
        max_loras: adapters resident in one batch (default: all of them, at least 1).
        max_lora_rank: the largest adapter rank (default: read from the adapters, else 16).
        host: where the server listens (default loopback).
        port: its port.
        tier_name: the paxis tier's name (default ``local:<base's last path part>``).
        usd_per_gpu_hour: the GPU's price, for the tier's cost (None: unknown).
        gpus: GPUs the server holds (``--tensor-parallel-size`` when > 1).
    """

    base: str
    adapters: tuple[tuple[str, str], ...] = ()
    max_loras: int | None = None
    max_lora_rank: int | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    tier_name: str | None = None
    usd_per_gpu_hour: Decimal | None = None
    gpus: int = 1

    def __post_init__(self) -> None:
        names = [name for name, _ in self.adapters]
        if len(set(names)) != len(names):
            raise ConfigError(f"adapter names must be unique, got {names}")
        if self.base in names:
            raise ConfigError(f"an adapter may not share the base model's name {self.base!r}")
        if self.max_loras is not None and self.max_loras < 1:
            raise ConfigError(f"--max-loras must be >= 1, got {self.max_loras}")
        if self.max_lora_rank is not None and self.max_lora_rank not in VLLM_LORA_RANKS:
            raise ConfigError(
                f"--max-lora-rank {self.max_lora_rank} is not one vLLM accepts "
                f"({', '.join(map(str, VLLM_LORA_RANKS))})"
            )

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root the tier calls."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def rank(self) -> int:
        """``--max-lora-rank``: given, else the adapters' largest, else 16."""
        if self.max_lora_rank is not None:
            return self.max_lora_rank
        ranks = [r for _, path in self.adapters if (r := adapter_rank(path)) is not None]
        return vllm_rank(max(ranks)) if ranks else DEFAULT_LORA_RANK

    def command(self) -> list[str]:
        """The ``vllm serve`` argument vector."""
        argv = ["vllm", "serve", self.base, "--host", self.host, "--port", str(self.port)]
        if self.gpus > 1:
            argv += ["--tensor-parallel-size", str(self.gpus)]
        if self.adapters:
            argv += ["--enable-lora", "--lora-modules"]
            argv += [f"{name}={path}" for name, path in self.adapters]
            argv += ["--max-loras", str(self.max_loras or len(self.adapters))]
            argv += ["--max-lora-rank", str(self.rank)]
        return argv

    def shell(self) -> str:
        """The command as one shell-quoted line."""
        return shlex.join(self.command())

    def tier_config(self) -> dict[str, Any]:  # Any: a YAML mapping
        """The tier for a paxis policy file's ``tiers:`` list (validates as RouterConfig)."""
        tier: dict[str, Any] = {  # Any: a YAML mapping
            "kind": "local",
            "name": self.tier_name or f"local:{self.base.rstrip('/').split('/')[-1]}",
            "model": self.base,
            "base_url": self.base_url,
        }
        if self.adapters:
            tier["adapters"] = [name for name, _ in self.adapters]
        if self.usd_per_gpu_hour is not None:
            tier["usd_per_gpu_hour"] = str(self.usd_per_gpu_hour)
            if self.gpus > 1:
                tier["gpus"] = self.gpus
        return tier

    def skill_metadata(self) -> dict[str, dict[str, str]]:
        """Per adapter, the SKILL.md ``metadata`` that routes a skill to it."""
        return {name: {ADAPTER_KEY: name} for name, _ in self.adapters}

    def to_json(self) -> dict[str, Any]:  # Any: JSON
        """The plan as JSON: the command, the tier and the skills' metadata."""
        return {
            "command": self.command(),
            "shell": self.shell(),
            "tier": self.tier_config(),
            "skill_metadata": self.skill_metadata(),
        }
