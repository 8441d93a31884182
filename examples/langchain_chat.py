"""A LangChain chain whose chat model is a paxis Router (``pip install paxis-router[langchain]``).

Offline: the two tiers here are fakes (a worker that guesses, a "frontier" that knows); swap in
``Router.from_config(load_config("policies/default.yaml"))`` for real ones.

    python examples/langchain_chat.py
"""

from __future__ import annotations

import sys

try:
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
except ImportError:  # pragma: no cover - depends on the install
    sys.exit("langchain_chat.py needs langchain-core: pip install 'paxis-router[langchain]'")

from paxis_router import Router
from paxis_router.integrations.langchain import PaxisChatModel
from paxis_router.testing import FakeWorker
from paxis_router.verifiers.regex import RegexVerifier


def main() -> str:
    """Run a prompt | model | parser chain through a two-tier router; prints the answer."""
    router = Router(
        tiers=[
            FakeWorker(["I would have to check."], name="local:worker"),
            FakeWorker(["Paris"], name="frontier:model"),
        ],
        verifiers=[RegexVerifier(must_match=r"^[A-Z][a-z]+$")],  # one capitalised word
    )
    chat = PaxisChatModel(router=router, team="docs")
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Answer with one word."), ("user", "What is the capital of {country}?")]
    )
    chain = prompt | chat | StrOutputParser()
    answer: str = chain.invoke({"country": "France"})
    sys.stdout.write(f"{answer}\n")
    return answer


if __name__ == "__main__":
    main()
