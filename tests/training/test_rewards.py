"""Verifiers as GRPO reward functions: the TRL reward_funcs contract."""

from __future__ import annotations

import asyncio
import logging

import pytest

from paxis_router.training.rewards import reward_function, reward_functions
from paxis_router.types import ChatRequest, Completion, Verdict
from paxis_router.verifiers import JsonSchemaVerifier, RegexVerifier


class Seen:
    """A verifier that records what it was asked and passes answers that end with '!'."""

    name = "ends-with!"

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[tuple[str, str], ...], str]] = []

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        self.calls.append((tuple((m.role, m.text) for m in request.messages), completion.content))
        ok = completion.content.endswith("!")
        return Verdict(self.name, ok, 0.9 if ok else 0.2, "")


class Crashes:
    name = "crashes"

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        raise RuntimeError("boom")


def test_plain_strings_one_float_per_completion() -> None:
    fn = reward_function(RegexVerifier(must_match=r"^\d+$"))
    rewards = fn(["6*7?", "6*7?", "2+2?"], ["42", "forty-two", "4"], completion_ids=[[1], [2], [3]])
    assert rewards == [1.0, 0.0, 1.0]
    assert all(isinstance(r, float) for r in rewards)


def test_conversational_prompts_and_completions() -> None:
    seen = Seen()
    fn = reward_function(seen)
    prompts = [
        [{"role": "system", "content": "Be loud."}, {"role": "user", "content": "hi"}],
        [{"role": "user", "content": [{"type": "text", "text": "yo"}]}],
    ]
    completions = [
        [{"role": "assistant", "content": "hello!"}],
        [{"role": "assistant", "content": [{"type": "text", "text": "quiet"}]}],
    ]
    assert fn(prompts=prompts, completions=completions, answer=["x", "y"]) == [1.0, 0.0]
    assert seen.calls == [
        ((("system", "Be loud."), ("user", "hi")), "hello!"),
        ((("user", "yo"),), "quiet"),
    ]


def test_use_score_and_names() -> None:
    fn = reward_function(Seen(), use_score=True)
    assert fn(["a", "b"], ["yes!", "no"]) == [0.9, 0.2]
    assert fn.__name__ == "reward_ends_with"
    assert reward_function(Seen(), name="loud").__name__ == "loud"
    names = [f.__name__ for f in reward_functions([RegexVerifier(must_match="x"), Seen()])]
    assert names == ["reward_regex", "reward_ends_with"]


def test_json_schema_verifier_as_reward() -> None:
    fn = reward_function(JsonSchemaVerifier({"type": "object", "required": ["total"]}))
    assert fn(["q", "q"], ['{"total": 3}', "{}"]) == [1.0, 0.0]


def test_crashing_verifier_scores_zero_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="paxis_router.training.rewards"):
        assert reward_function(Crashes())(["q"], ["a"]) == [0.0]
    assert "verifier crashes raised" in caplog.text


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="2 prompts but 1 completions"):
        reward_function(Seen())(["a", "b"], ["c"])


async def test_works_inside_a_running_event_loop() -> None:
    fn = reward_function(Seen())
    assert fn(["a"], ["b!"]) == [1.0]
    assert asyncio.get_running_loop().is_running()
