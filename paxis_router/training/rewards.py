"""Verifiers as reward functions for TRL's ``GRPOTrainer`` (verifiable rewards).

The checks that gate escalation are the worker's training signal: ``reward_function(verifier)``
returns ``fn(prompts, completions, **kwargs) -> list[float]``, the shape ``GRPOTrainer`` takes in
``reward_funcs``. Prompts and completions may be plain strings (standard datasets) or lists of
chat messages (conversational datasets; a message's content may be a string or a list of
``{"type": "text", "text": ...}`` parts). Extra keyword arguments (dataset columns,
``completion_ids``, ``trainer_state``) are ignored. The reward is ``1.0`` when the verifier
passes and ``0.0`` when it rejects; with ``use_score=True`` a verdict's ``score`` (in [0, 1]) is
used where the verifier gives one. A verifier that raises scores ``0.0`` (logged), as a
rejection does in the router.

No torch, no trl import here: the functions are plain Python.

Example:
    >>> from paxis_router.verifiers import RegexVerifier
    >>> has_digit = reward_function(RegexVerifier(must_match=r"\\d"))
    >>> has_digit(["6*7?", "6*7?"], ["42", "no idea"])
    [1.0, 0.0]
    >>> has_digit.__name__
    'reward_regex'
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from paxis_router.types import ChatRequest, Completion, Message, Verdict

if TYPE_CHECKING:
    from paxis_router.verifiers.base import Verifier

logger = logging.getLogger(__name__)

RewardFunc = Callable[..., list[float]]
"""``(prompts, completions, **kwargs) -> list[float]``: what GRPOTrainer calls."""

_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})


def reward_function(
    verifier: Verifier, *, use_score: bool = False, name: str | None = None
) -> RewardFunc:
    """``verifier`` as a TRL reward function (one float per completion).

    Args:
        verifier: any Verifier (``RegexVerifier``, ``JsonSchemaVerifier``, ``AllOf``, ...).
        use_score: reward the verdict's score (when given) instead of 1.0 / 0.0.
        name: the function's ``__name__`` (TRL logs rewards under it); default
            ``reward_<verifier name>`` with non-identifier characters as ``_``.
    """

    def reward(
        prompts: Sequence[Any],  # Any: TRL passes strings or lists of message dicts
        completions: Sequence[Any],  # Any: same
        **kwargs: Any,  # Any: dataset columns and trainer extras, ignored
    ) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(
                f"{len(prompts)} prompts but {len(completions)} completions; TRL passes one "
                "prompt per completion"
            )
        pairs = [(_request(p), _completion(c)) for p, c in zip(prompts, completions, strict=True)]
        verdicts = _run(_verify_all(verifier, pairs))
        return [_value(v, use_score) for v in verdicts]

    reward.__name__ = name or "reward_" + re.sub(r"\W+", "_", verifier.name).strip("_")
    reward.__qualname__ = reward.__name__
    reward.__doc__ = f"GRPO reward from verifier {verifier.name!r}: 1.0 passed, 0.0 rejected."
    return reward


def reward_functions(verifiers: Sequence[Verifier], *, use_score: bool = False) -> list[RewardFunc]:
    """One reward function per verifier (GRPOTrainer sums them, weighted by reward_weights)."""
    return [reward_function(v, use_score=use_score) for v in verifiers]


# --- helpers ------------------------------------------------------------------------------------


def _text(content: Any) -> str:  # Any: a message content (string or list of parts)
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(
            str(part.get("text", "")) if isinstance(part, Mapping) else str(part)
            for part in content
        )
    return "" if content is None else str(content)


def _messages(value: Any) -> list[Mapping[str, Any]]:  # Any: TRL's free-form messages
    if isinstance(value, Mapping):
        return [value]
    return [m for m in value if isinstance(m, Mapping)]


def _request(prompt: Any) -> ChatRequest:  # Any: a string or a list of message dicts
    if isinstance(prompt, str):
        return ChatRequest.from_text(prompt)
    messages = tuple(
        Message(
            role=m.get("role") if m.get("role") in _ROLES else "user",
            content=_text(m.get("content")),
        )
        for m in _messages(prompt)
    )
    return ChatRequest(messages=messages or (Message(role="user", content=""),))


def _completion(completion: Any) -> Completion:  # Any: a string or a list of message dicts
    if isinstance(completion, str):
        return Completion(content=completion, model="grpo-policy")
    messages = _messages(completion)
    answer = [m for m in messages if m.get("role", "assistant") == "assistant"] or messages
    text = _text(answer[-1].get("content")) if answer else ""
    return Completion(content=text, model="grpo-policy")


async def _verify_all(
    verifier: Verifier, pairs: Sequence[tuple[ChatRequest, Completion]]
) -> list[Verdict | None]:
    async def one(request: ChatRequest, completion: Completion) -> Verdict | None:
        try:
            return await verifier.verify(request, completion)
        except Exception:  # user-supplied verifier code: a crash is a 0 reward, not a lost step
            logger.exception("verifier %s raised inside a reward function", verifier.name)
            return None

    return list(await asyncio.gather(*(one(r, c) for r, c in pairs)))


def _run(coro: Any) -> list[Verdict | None]:  # Any: the coroutine of _verify_all
    """Run ``coro`` to completion, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        result: list[Verdict | None] = asyncio.run(coro)
        return result
    with ThreadPoolExecutor(max_workers=1) as pool:  # a loop of its own, off this one's thread
        threaded: list[Verdict | None] = pool.submit(asyncio.run, coro).result()
    return threaded


def _value(verdict: Verdict | None, use_score: bool) -> float:
    if verdict is None:
        return 0.0
    if use_score and verdict.score is not None:
        return float(verdict.score)
    return 1.0 if verdict.passed else 0.0
