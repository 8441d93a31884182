"""Route ``litellm.completion(model="paxis/auto", ...)`` through a paxis Router in-process.

Offline: the tiers are fakes; use ``Router.from_config(load_config("policies/default.yaml"))``
for real ones. Code that already calls litellm changes only its model name.

    python examples/litellm_provider.py

Needs litellm (``pip install 'paxis-router[litellm]'``); without it, it says so and exits 1.
"""

from __future__ import annotations

import asyncio
import sys

from paxis_router import Router
from paxis_router.errors import PaxisError
from paxis_router.integrations.litellm import register
from paxis_router.testing import FakeWorker
from paxis_router.verifiers.regex import RegexVerifier
from paxis_router.workers.litellm import load_litellm


def main() -> str:
    """Register the provider, then call litellm sync and async; prints and returns the answer."""
    router = Router(
        tiers=[
            FakeWorker(["not sure"], name="local:worker"),
            FakeWorker(["51"], name="frontier:m"),
        ],
        verifiers=[RegexVerifier(must_match=r"\d")],
    )
    register(router, team="docs")
    litellm = load_litellm()  # litellm with its bundled price map (no network)
    messages = [{"role": "user", "content": "What is 17 * 3?"}]
    response = litellm.completion(model="paxis/auto", messages=messages)
    answer = str(response.choices[0].message.content)
    again = asyncio.run(litellm.acompletion(model="paxis/auto", messages=messages))
    sys.stdout.write(f"{answer} / {again.choices[0].message.content}\n")
    return answer


if __name__ == "__main__":
    try:
        main()
    except PaxisError as exc:  # litellm not installed: the message names the extra
        sys.exit(f"litellm_provider.py: {exc}")
