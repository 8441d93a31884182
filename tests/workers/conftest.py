"""The ``closing`` fixture: workers a test opens are closed after it, whatever happens in it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from paxis_router.workers.openai_compat import OpenAICompatWorker


@pytest.fixture
async def closing() -> AsyncIterator[Callable[[OpenAICompatWorker], OpenAICompatWorker]]:
    """``closing(worker)`` returns the worker and closes it (its pool) when the test ends, also
    when an assertion failed half-way: no connection outlives its test."""
    opened: list[OpenAICompatWorker] = []

    def register(worker: OpenAICompatWorker) -> OpenAICompatWorker:
        opened.append(worker)
        return worker

    try:
        yield register
    finally:
        for worker in opened:
            await worker.aclose()
