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

from typing import TYPE_CHECKING

from paxis_router.workers.openai_compat import (
    ADAPTER_KEY,
    MAX_ERROR_BYTES,
    MAX_RESPONSE_BYTES,
    OpenAICompatWorker,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import httpx

    from paxis_router.pricing import Price

__all__ = ["ADAPTER_KEY", "LoRAWorker"]


class LoRAWorker(OpenAICompatWorker):
    """One tier: a base model plus LoRA adapters served on the same OpenAI-compatible endpoint.

    An :class:`OpenAICompatWorker` whose ``model`` is the base model, with ``skill_adapters``
    on: every adapter shares its one keep-alive connection pool (they are one server).

    Args:
        name: the tier's stable name (``"local:qwen-lora"``).
        base_model: the model id of the base model on the server.
        base_url: the server's API root, e.g. ``http://127.0.0.1:8000/v1``.
        adapters: the adapter names the server serves; None trusts any name a skill gives.
        adapter_key: the skill metadata key naming the adapter (default ``paxis-adapter``).
        price: how a call is priced (a ``GpuHourPrice``: adapters share the base's GPU).
        destination, timeout_s, logprobs, api_key, http_client, extra_body, max_context_tokens,
        max_connections, connect_timeout_s, read_timeout_s, accepts_images,
        max_response_bytes, max_error_bytes: as for ``OpenAICompatWorker``.
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
        max_connections: int = 1000,
        connect_timeout_s: float | None = None,
        read_timeout_s: float | None = None,
        accepts_images: bool = False,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_error_bytes: int = MAX_ERROR_BYTES,
    ):
        super().__init__(
            name,
            base_model,
            base_url,
            api_key=api_key,
            price=price,
            destination=destination,
            timeout_s=timeout_s,
            logprobs=logprobs,
            http_client=http_client,
            extra_body=extra_body,
            max_context_tokens=max_context_tokens,
            skill_adapters=True,
            max_connections=max_connections,
            connect_timeout_s=connect_timeout_s,
            read_timeout_s=read_timeout_s,
            adapters=adapters,
            adapter_key=adapter_key,
            accepts_images=accepts_images,
            max_response_bytes=max_response_bytes,
            max_error_bytes=max_error_bytes,
        )

    def __repr__(self) -> str:
        return f"LoRAWorker(name={self.name!r}, base={self.model!r}, url={self.base_url!r})"
