"""WellFormedVerifier: broken answers become failed verdicts, so the router escalates."""

from __future__ import annotations

import pytest

from paxis_router.types import ChatRequest, Completion, Usage
from paxis_router.verifiers.well_formed import WellFormedVerifier

USAGE = Usage(5, 2)
JSON_REQUEST = ChatRequest.from_text("q").model_copy(
    update={"response_format": {"type": "json_object"}}
)


@pytest.mark.parametrize(
    ("completion", "request_", "reason"),
    [
        (Completion("", "m", USAGE), None, "empty answer"),
        (Completion("  \n", "m", USAGE), None, "empty answer"),
        (Completion("cut", "m", USAGE, finish_reason="length"), None, "finish_reason=length"),
        (Completion("a\ufffdb", "m", USAGE), None, "not valid UTF-8"),
        (Completion("a\udcffb", "m", USAGE), None, "not valid UTF-8"),
        (Completion("fine", "m", None), None, "no token usage reported"),
        (Completion("{not json", "m", USAGE), JSON_REQUEST, "not the JSON the request asked"),
    ],
)
async def test_broken_answers_fail(
    completion: Completion, request_: ChatRequest | None, reason: str
) -> None:
    verdict = await WellFormedVerifier().verify(request_ or ChatRequest.from_text("q"), completion)
    assert (verdict.verifier, verdict.passed, verdict.score) == ("well_formed", False, 0.0)
    assert reason in verdict.reason


@pytest.mark.parametrize(
    ("completion", "request_", "verifier"),
    [
        (Completion("42", "m", USAGE, finish_reason="stop"), None, WellFormedVerifier()),
        (Completion('{"a": 1}', "m", USAGE), JSON_REQUEST, WellFormedVerifier()),
        (Completion("42", "m", None), None, WellFormedVerifier(require_usage=False)),
    ],
)
async def test_sound_answers_pass(
    completion: Completion, request_: ChatRequest | None, verifier: WellFormedVerifier
) -> None:
    verdict = await verifier.verify(request_ or ChatRequest.from_text("q"), completion)
    assert verdict.passed is True
