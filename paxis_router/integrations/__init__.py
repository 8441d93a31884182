"""Plug-ins for agent frameworks: a LiteLLM custom provider and a LangChain chat model.

Each lives in its own module and imports its framework only when used:
``paxis_router.integrations.litellm.register`` and
``paxis_router.integrations.langchain.PaxisChatModel`` (extra ``[langchain]``).
"""

from __future__ import annotations
