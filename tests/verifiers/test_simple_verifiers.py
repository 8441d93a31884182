from __future__ import annotations

import math
import re

import pytest

from paxis_router.errors import ConfigError
from paxis_router.types import ChatRequest, Completion, Verdict
from paxis_router.verifiers import (
    AllOf,
    AnyOf,
    ArithmeticVerifier,
    CallableVerifier,
    JsonSchemaVerifier,
    LogprobConfidenceVerifier,
    NonEmptyVerifier,
    RegexVerifier,
    Verifier,
)

REQUEST = ChatRequest.from_text("question")


def answer(text: str, **kwargs: object) -> Completion:
    return Completion(text, "m", **kwargs)  # type: ignore[arg-type]


def test_builtins_satisfy_the_protocol() -> None:
    builtins = (
        NonEmptyVerifier(),
        RegexVerifier(must_match="x"),
        LogprobConfidenceVerifier(),
        JsonSchemaVerifier({"type": "object"}),
        CallableVerifier(lambda r, c: True),
        ArithmeticVerifier(),
        AllOf(NonEmptyVerifier()),
        AnyOf(NonEmptyVerifier()),
    )
    for verifier in builtins:
        assert isinstance(verifier, Verifier)
    names = [v.name for v in builtins]
    assert names[:4] == ["non_empty", "regex", "logprob_confidence", "json_schema"]
    assert names[5:] == ["arithmetic", "all_of", "any_of"]


# --- non_empty -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "passed", "reason"),
    [
        (answer("42", finish_reason="stop"), True, "2 characters"),
        (answer(""), False, "empty answer"),
        (answer(" \n\t "), False, "empty answer"),
        (answer("The answer is", finish_reason="length"), False, "truncated at the token limit"),
    ],
)
async def test_non_empty(completion: Completion, passed: bool, reason: str) -> None:
    verdict = await NonEmptyVerifier().verify(REQUEST, completion)
    assert verdict.verifier == "non_empty"
    assert verdict.passed is passed
    assert reason in verdict.reason


# --- regex ---------------------------------------------------------------------------------------


async def test_regex_must_match() -> None:
    verifier = RegexVerifier(must_match=r"\d+")
    assert (await verifier.verify(REQUEST, answer("it is 42"))).passed
    failed = await verifier.verify(REQUEST, answer("no idea"))
    assert not failed.passed
    assert failed.reason == r"answer does not match '\\d+'"


async def test_regex_must_not_match_names_the_match() -> None:
    verifier = RegexVerifier(must_not_match=r"as an ai", flags=re.IGNORECASE, name="no_refusal")
    assert (await verifier.verify(REQUEST, answer("Sure: 42"))).passed
    failed = await verifier.verify(REQUEST, answer("As an AI I cannot"))
    assert (failed.verifier, failed.passed) == ("no_refusal", False)
    assert "at 0: 'As an AI'" in failed.reason


async def test_regex_both_patterns() -> None:
    verifier = RegexVerifier(must_match=r"\d", must_not_match="maybe")
    assert (await verifier.verify(REQUEST, answer("42"))).passed
    assert not (await verifier.verify(REQUEST, answer("maybe 42"))).passed


def test_regex_needs_a_pattern() -> None:
    with pytest.raises(ConfigError, match="needs must_match, must_not_match or both"):
        RegexVerifier()


def test_regex_invalid_pattern_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"must_not_match: invalid regular expression '\('"):
        RegexVerifier(must_not_match="(")


# --- logprob_confidence --------------------------------------------------------------------------


def logprobs(*probs: float) -> tuple[float, ...]:
    return tuple(math.log(p) for p in probs)


async def test_logprob_passes_and_scores_mean_probability() -> None:
    verifier = LogprobConfidenceVerifier(min_mean_prob=0.8, min_token_prob=0.5)
    verdict = await verifier.verify(REQUEST, answer("42", token_logprobs=logprobs(0.9, 0.9)))
    assert verdict.passed
    assert verdict.score == pytest.approx(0.9)
    assert verdict.reason == "mean token probability 0.900, lowest 0.900"


async def test_logprob_low_mean_fails() -> None:
    verifier = LogprobConfidenceVerifier(min_mean_prob=0.8)
    verdict = await verifier.verify(REQUEST, answer("42", token_logprobs=logprobs(0.5, 0.5)))
    assert not verdict.passed
    assert verdict.score == pytest.approx(0.5)
    assert verdict.reason == "mean token probability 0.500 < 0.8"


async def test_logprob_one_unsure_token_fails() -> None:
    verifier = LogprobConfidenceVerifier(min_mean_prob=None, min_token_prob=0.2)
    probs = logprobs(0.99, 0.99, 0.1, 0.99)
    verdict = await verifier.verify(REQUEST, answer("a b c d", token_logprobs=probs))
    assert not verdict.passed
    assert verdict.reason == "token 2 has probability 0.100 < 0.2"


async def test_logprob_missing_fails_by_default() -> None:
    verdict = await LogprobConfidenceVerifier().verify(REQUEST, answer("42"))
    assert (verdict.passed, verdict.score) == (False, None)
    assert "logprobs are missing" in verdict.reason


async def test_logprob_missing_can_pass() -> None:
    verdict = await LogprobConfidenceVerifier(missing="pass").verify(REQUEST, answer("42"))
    assert verdict == Verdict("logprob_confidence", True, None, verdict.reason)
    assert "no logprobs" in verdict.reason


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_mean_prob": 1.5}, r"min_mean_prob must be in \[0, 1\]"),
        ({"min_token_prob": -0.1}, r"min_token_prob must be in \[0, 1\]"),
        ({"missing": "skip"}, "missing must be 'fail' or 'pass'"),
    ],
)
def test_logprob_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LogprobConfidenceVerifier(**kwargs)  # type: ignore[arg-type]
