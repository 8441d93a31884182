"""Workers: the model backends a tier calls.

``OpenAICompatWorker`` (vLLM and any OpenAI-compatible server), ``LiteLLMWorker`` (frontier
providers through litellm) and ``ReplayWorker`` (recorded outcomes). Each imports its vendor SDK
lazily, on the first call, so importing this package stays light.
"""

from __future__ import annotations

from paxis_router.workers.base import Tier, Worker
from paxis_router.workers.litellm import LiteLLMWorker
from paxis_router.workers.openai_compat import OpenAICompatWorker
from paxis_router.workers.replay import Outcome, ReplayWorker

__all__ = ["LiteLLMWorker", "OpenAICompatWorker", "Outcome", "ReplayWorker", "Tier", "Worker"]
