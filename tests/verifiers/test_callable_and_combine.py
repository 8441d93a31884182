from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from paxis_router.errors import ConfigError
from paxis_router.types import ChatRequest, Completion, Verdict
from paxis_router.verifiers import (
    AllOf,
    AnyOf,
    CallableVerifier,
    NonEmptyVerifier,
    RegexVerifier,
)
from paxis_router.verifiers.callable import import_callable

if TYPE_CHECKING:
    from pathlib import Path

REQUEST = ChatRequest.from_text("question")


def answer(text: str) -> Completion:
    return Completion(text, "m")


def contains_42(request: ChatRequest, completion: Completion) -> bool:
    return "42" in completion.content


async def async_score(request: ChatRequest, completion: Completion) -> float:
    return len(completion.content) / 10


def full_verdict(request: ChatRequest, completion: Completion) -> Verdict:
    return Verdict("inner-name", False, 0.25, "custom reason")


def returns_text(request: ChatRequest, completion: Completion) -> str:
    return "yes"


# --- callable ------------------------------------------------------------------------------------


async def test_bool_function() -> None:
    verifier = CallableVerifier(contains_42)
    assert verifier.name.endswith(":contains_42")
    assert (await verifier.verify(REQUEST, answer("42"))).passed
    assert not (await verifier.verify(REQUEST, answer("41"))).passed


async def test_async_float_function_uses_threshold() -> None:
    verifier = CallableVerifier(async_score, name="length", threshold=0.5)
    high = await verifier.verify(REQUEST, answer("0123456789"))
    low = await verifier.verify(REQUEST, answer("01"))
    assert (high.passed, high.score, high.reason) == (True, 1.0, "score 1.000 >= 0.5")
    assert (low.passed, low.score, low.reason) == (False, 0.2, "score 0.200 < 0.5")


async def test_verdict_is_kept_and_renamed() -> None:
    verdict = await CallableVerifier(full_verdict, name="mine").verify(REQUEST, answer("x"))
    assert verdict == Verdict("mine", False, 0.25, "custom reason")


async def test_unexpected_return_type_fails() -> None:
    verifier = CallableVerifier(returns_text)  # type: ignore[arg-type]  # the wrong type on purpose
    verdict = await verifier.verify(REQUEST, answer("x"))
    assert not verdict.passed
    assert verdict.reason == "function returned str 'yes'; expected bool, float or Verdict"


@pytest.mark.parametrize("separator", [":", "."])
async def test_dotted_paths(
    separator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"my_checks_{'colon' if separator == ':' else 'dot'}"
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    module = "rules"
    (package / f"{module}.py").write_text(
        "def has_42(request, completion):\n    return '42' in completion.content\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = f"{name}.{module}{separator}has_42"
    verifier = CallableVerifier(path)
    assert verifier.name == f"python:{path}"
    assert (await verifier.verify(REQUEST, answer("42"))).passed
    assert not (await verifier.verify(REQUEST, answer("41"))).passed


def test_nested_attribute_path() -> None:
    assert import_callable("pathlib:Path.cwd").__name__ == "cwd"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_such_module_xyz:check", "cannot import module 'no_such_module_xyz' of verifier"),
        ("math:no_such_function", "module 'math' has no attribute 'no_such_function'"),
        ("math.pi", "verifier 'math.pi' is a float, not a function"),
        ("justaname", "bad dotted path 'justaname'"),
        (":fn", "bad dotted path ':fn'"),
    ],
)
def test_bad_dotted_paths_fail_at_construction(path: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CallableVerifier(path)


def test_non_callable_object_is_rejected() -> None:
    with pytest.raises(ConfigError, match="is not callable"):
        CallableVerifier(42)  # type: ignore[arg-type]


# --- all_of / any_of -----------------------------------------------------------------------------


async def test_all_of_needs_every_verifier() -> None:
    combined = AllOf(NonEmptyVerifier(), RegexVerifier(must_match=r"\d"))
    passed = await combined.verify(REQUEST, answer("42"))
    failed = await combined.verify(REQUEST, answer("none"))
    assert (passed.verifier, passed.passed) == ("all_of", True)
    assert not failed.passed
    assert failed.reason == (
        "non_empty: pass (4 characters); regex: FAIL (answer does not match '\\\\d')"
    )


async def test_any_of_needs_one_verifier() -> None:
    combined = AnyOf(RegexVerifier(must_match="yes"), RegexVerifier(must_match="ok"), name="either")
    passed = await combined.verify(REQUEST, answer("ok"))
    failed = await combined.verify(REQUEST, answer("no"))
    assert (passed.verifier, passed.passed) == ("either", True)
    assert not failed.passed
    assert failed.reason.count("FAIL") == 2


async def test_combined_scores() -> None:
    low = CallableVerifier(lambda r, c: 0.3, name="low")
    high = CallableVerifier(lambda r, c: 0.9, name="high")
    assert (await AllOf(low, high).verify(REQUEST, answer("x"))).score == 0.3
    any_verdict = await AnyOf(low, high).verify(REQUEST, answer("x"))
    assert (any_verdict.passed, any_verdict.score) == (True, 0.9)
    none_passed = await AnyOf(low, CallableVerifier(lambda r, c: 0.1)).verify(REQUEST, answer("x"))
    assert (none_passed.passed, none_passed.score) == (False, 0.3)


async def test_combinators_nest() -> None:
    nested = AllOf(
        NonEmptyVerifier(), AnyOf(RegexVerifier(must_match="a"), RegexVerifier(must_match="b"))
    )
    assert (await nested.verify(REQUEST, answer("b"))).passed
    assert not (await nested.verify(REQUEST, answer("c"))).passed


@pytest.mark.parametrize("combinator", [AllOf, AnyOf])
def test_combinators_need_a_verifier(combinator: type[AllOf] | type[AnyOf]) -> None:
    with pytest.raises(ConfigError, match="needs at least one verifier"):
        combinator()
