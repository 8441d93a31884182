"""Per-skill LoRA adapters on one OpenAI-compatible server (vLLM ``--enable-lora``).

vLLM serves a base model and, with ``--lora-modules name=path``, each LoRA adapter under its own
model name on the same endpoint. ``LoRAWorker`` sends a subtask to the adapter its skill names in
``SKILL.md`` metadata and everything else to the base model::

    ---
    name: invoices
    description: Extract totals from invoices.
    metadata:
      paxis-adapter: invoice-lora
    ---

The completion's ``model`` is the name that answered (vLLM echoes the adapter's name), so the
ledger's ``model`` column records which adapter answered. A skill naming an adapter the worker
was not told about goes to the base model, with a warning.

Example:
    >>> from paxis_router.skills.model import Skill
    >>> worker = LoRAWorker("local:qwen", "qwen-base", "http://127.0.0.1:8000/v1",
    ...                     adapters=["invoice-lora"])
    >>> invoices = Skill("invoices", "invoices", "", metadata={"paxis-adapter": "invoice-lora"})
    >>> worker.model_for(invoices)
    'invoice-lora'
    >>> worker.model_for(None)
    'qwen-base'
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from paxis_router.workers.openai_compat import ADAPTER_KEY, OpenAICompatWorker

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import httpx

    from paxis_router.pricing import Price
    from paxis_router.skills.model import Skill
    from paxis_router.types import ChatRequest, Completion

logger = logging.getLogger(__name__)

__all__ = ["ADAPTER_KEY", "LoRAWorker"]


class LoRAWorker:
    """One tier: a base model plus LoRA adapters served on the same OpenAI-compatible endpoint.

    Args:
        name: the tier's stable name (``"local:qwen-lora"``).
        base_model: the model id of the base model on the server.
        base_url: the server's API root, e.g. ``http://127.0.0.1:8000/v1``.
        adapters: the adapter names the server serves; None trusts any name a skill gives.
        adapter_key: the skill metadata key naming the adapter (default ``paxis-adapter``).
        price: how a call is priced (a ``GpuHourPrice``: adapters share the base's GPU).
        destination, timeout_s, logprobs, api_key, http_client, extra_body, max_context_tokens:
            as for ``OpenAICompatWorker``; every model shares them.
    """

    def __init__(
        self,
        name: str,
        base_model: str,
        base_url: str,
        *,
        adapters: Iterable[str] | None = None,
        adapter_key: str = ADAPTER_KEY,
        price: Price | None = None,
        destination: str = "local",
        timeout_s: float = 60.0,
        logprobs: bool = False,
        api_key: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        extra_body: Mapping[str, object] | None = None,
        max_context_tokens: int | None = None,
    ):
        self.name = name
        self.model = base_model
        self.base_url = base_url
        self.adapters: frozenset[str] | None = None if adapters is None else frozenset(adapters)
        self.adapter_key = adapter_key
        self.price = price
        self.destination = destination
        self.max_context_tokens = max_context_tokens
        self.timeout_s = timeout_s
        self.logprobs = logprobs
        self._api_key = api_key
        self._http_client = http_client
        self._extra_body = extra_body
        self._workers: dict[str, OpenAICompatWorker] = {}

    def __repr__(self) -> str:
        return f"LoRAWorker(name={self.name!r}, base={self.model!r}, url={self.base_url!r})"

    def model_for(self, skill: Skill | None) -> str:
        """The model name a subtask of ``skill`` is sent to: its adapter, else the base."""
        adapter = skill.metadata.get(self.adapter_key) if skill is not None else None
        if not adapter:
            return self.model
        if self.adapters is not None and adapter not in self.adapters:
            logger.warning(
                "skill %s names adapter %r, which %s does not serve (it serves %s); using the "
                "base model",
                skill.id if skill is not None else "?",
                adapter,
                self.name,
                ", ".join(sorted(self.adapters)) or "none",
            )
            return self.model
        return adapter

    def _worker(self, model: str) -> OpenAICompatWorker:
        worker = self._workers.get(model)
        if worker is None:
            worker = OpenAICompatWorker(
                self.name,
                model,
                self.base_url,
                api_key=self._api_key,
                price=self.price,
                destination=self.destination,
                timeout_s=self.timeout_s,
                logprobs=self.logprobs,
                http_client=self._http_client,
                extra_body=self._extra_body,
                max_context_tokens=self.max_context_tokens,
                skill_adapters=False,  # the adapter is chosen here, checked against the list
            )
            self._workers[model] = worker
        return worker

    async def complete(self, request: ChatRequest, skill: Skill | None) -> Completion:
        """One chat completion from the skill's adapter (or the base model)."""
        return await self._worker(self.model_for(skill)).complete(request, skill)

    async def aclose(self) -> None:
        """Close every model's client."""
        for worker in self._workers.values():
            await worker.aclose()
        self._workers.clear()
