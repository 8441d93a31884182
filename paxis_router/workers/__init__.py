"""Workers: the model backends a tier calls, and what keeps a tier serving.

``base`` (the ``Worker`` protocol and ``Tier``), ``openai_compat`` (vLLM and any
OpenAI-compatible server), ``litellm`` (frontier providers through litellm), ``replay``
(recorded outcomes), ``resilience`` and ``breaker`` (timeouts, retries, circuit breakers).
Import the module you need: this package imports none of them, so ``workers.base`` stays light.
"""

from __future__ import annotations
