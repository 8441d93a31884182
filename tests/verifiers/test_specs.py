from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest
from pydantic import TypeAdapter, ValidationError

from paxis_router.config.verifiers import (
    VERIFIER_KINDS,
    ArithmeticSpec,
    RegexSpec,
    VerifierSpec,
    build_verifier,
)
from paxis_router.errors import ConfigError
from paxis_router.types import ChatRequest, Completion
from paxis_router.verifiers import (
    AllOf,
    AnyOf,
    ArithmeticVerifier,
    CallableVerifier,
    JsonSchemaVerifier,
    LogprobConfidenceVerifier,
    NonEmptyVerifier,
    RegexVerifier,
)

if TYPE_CHECKING:
    from pathlib import Path

ADAPTER: TypeAdapter[VerifierSpec] = TypeAdapter(VerifierSpec)
REQUEST = ChatRequest.from_text("question")


def build(data: object, base_dir: Path) -> object:
    return build_verifier(ADAPTER.validate_python(data), base_dir)


@pytest.mark.parametrize(
    ("data", "cls", "name"),
    [
        ("non_empty", NonEmptyVerifier, "non_empty"),
        ({"kind": "non_empty", "name": "has_text"}, NonEmptyVerifier, "has_text"),
        ({"kind": "regex", "must_match": r"\d"}, RegexVerifier, "regex"),
        ({"kind": "json_schema", "schema": {"type": "object"}}, JsonSchemaVerifier, "json_schema"),
        ({"kind": "logprob_confidence", "min_mean_prob": 0.8}, LogprobConfidenceVerifier, None),
        ({"kind": "python", "function": "math:isfinite"}, CallableVerifier, "python:math:isfinite"),
        ({"kind": "arithmetic"}, ArithmeticVerifier, "arithmetic"),
        ({"kind": "all_of", "verifiers": ["non_empty"]}, AllOf, "all_of"),
        ({"kind": "any_of", "verifiers": ["non_empty"]}, AnyOf, "any_of"),
    ],
)
def test_every_kind_builds(data: object, cls: type, name: str | None, tmp_path: Path) -> None:
    verifier = build(data, tmp_path)
    assert isinstance(verifier, cls)
    assert getattr(verifier, "name") == (name or "logprob_confidence")  # noqa: B009


def test_kinds_list_matches_the_union() -> None:
    for kind in VERIFIER_KINDS:
        with pytest.raises(ValidationError) as info:
            ADAPTER.validate_python({"kind": kind, "unexpected_field": 1})
        assert "unexpected_field" in str(info.value)


@pytest.mark.parametrize("data", [{"kind": "bogus_kind"}, "bogus_kind"])
def test_unknown_kind_names_the_kind(data: object) -> None:
    with pytest.raises(ValidationError, match=r"'bogus_kind'.*does not match any of the expected"):
        ADAPTER.validate_python(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "regex"}, "regex needs must_match, must_not_match or both"),
        ({"kind": "regex", "must_match": "("}, "must_match: invalid regular expression"),
        ({"kind": "regex", "must_match": "a", "flags": ["WEIRD"]}, "IGNORECASE"),
        ({"kind": "json_schema"}, "exactly one of schema"),
        ({"kind": "json_schema", "schema": {}, "schema_file": "a.json"}, "exactly one of schema"),
        ({"kind": "logprob_confidence", "min_mean_prob": 2}, "less than or equal to 1"),
        ({"kind": "logprob_confidence", "missing": "skip"}, "'fail' or 'pass'"),
        ({"kind": "python"}, "function"),
        ({"kind": "arithmetic", "rel_tol": -1}, "greater than or equal to 0"),
        ({"kind": "all_of", "verifiers": []}, "at least 1 item"),
        ({"kind": "any_of", "verifiers": [{"kind": "nope"}]}, "'nope'"),
    ],
)
def test_invalid_specs(data: object, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        ADAPTER.validate_python(data)


def test_arithmetic_spec_options_reach_the_verifier(tmp_path: Path) -> None:
    data = {
        "kind": "arithmetic",
        "require_final_answer": False,
        "require_supported_answer": False,
        "rel_tol": 0.01,
    }
    verifier = build(data, tmp_path)
    assert isinstance(verifier, ArithmeticVerifier)
    assert (verifier.require_final_answer, verifier.require_supported_answer) == (False, False)
    assert verifier.rel_tol == 0.01


def test_specs_are_frozen() -> None:
    spec = ArithmeticSpec(kind="arithmetic")
    with pytest.raises(ValidationError, match="frozen"):
        spec.rel_tol = 0.5  # type: ignore[misc]


def test_regex_flags_apply(tmp_path: Path) -> None:
    spec = RegexSpec(kind="regex", must_match="^answer", flags=("IGNORECASE", "MULTILINE"))
    verifier = build_verifier(spec, tmp_path)
    assert isinstance(verifier, RegexVerifier)
    assert verifier.must_match is not None
    assert verifier.must_match.flags & re.IGNORECASE
    assert verifier.must_match.flags & re.MULTILINE


async def test_nested_lists_build_and_run(tmp_path: Path) -> None:
    data = {
        "kind": "all_of",
        "verifiers": [
            "non_empty",
            {
                "kind": "any_of",
                "verifiers": [
                    {"kind": "regex", "must_match": "yes"},
                    {"kind": "arithmetic", "require_final_answer": False},
                ],
            },
        ],
    }
    verifier = build(data, tmp_path)
    assert isinstance(verifier, AllOf)
    ok = await verifier.verify(REQUEST, Completion("2 + 2 = 4", "m"))
    bad = await verifier.verify(REQUEST, Completion("2 + 2 = 5", "m"))
    assert ok.passed
    assert not bad.passed
    assert "arithmetic: FAIL (1 of 1 calculation(s) wrong" in bad.reason


async def test_schema_file_is_relative_to_the_policy_folder(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    schema = {"type": "object", "required": ["total"]}
    (tmp_path / "schemas" / "answer.json").write_text(json.dumps(schema))
    verifier = build({"kind": "json_schema", "schema_file": "schemas/answer.json"}, tmp_path)
    assert isinstance(verifier, JsonSchemaVerifier)
    assert (await verifier.verify(REQUEST, Completion('{"total": 1}', "m"))).passed
    assert not (await verifier.verify(REQUEST, Completion("{}", "m"))).passed


async def test_schema_file_may_be_yaml(tmp_path: Path) -> None:
    (tmp_path / "answer.yaml").write_text("type: object\nrequired: [total]\n")
    verifier = build({"kind": "json_schema", "schema_file": "answer.yaml"}, tmp_path)
    assert isinstance(verifier, JsonSchemaVerifier)
    assert not (await verifier.verify(REQUEST, Completion("{}", "m"))).passed


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read schema file"),
        ("{not json", "schema file is not valid JSON/YAML"),
        ("[1, 2]", "a JSON Schema is an object, got list"),
        ('{"type": 12}', r"invalid JSON Schema at \$.type"),
    ],
)
def test_bad_schema_files_name_the_file(content: str | None, message: str, tmp_path: Path) -> None:
    path = tmp_path / "answer.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        build({"kind": "json_schema", "schema_file": "answer.json"}, tmp_path)
    assert str(path) in str(info.value)


def test_python_path_that_does_not_import_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "cannot import module 'nowhere_pkg.checks' of verifier 'nowhere_pkg.checks:fn'"
        ),
    ):
        build({"kind": "python", "function": "nowhere_pkg.checks:fn"}, tmp_path)


def test_python_spec_name_and_threshold(tmp_path: Path) -> None:
    data = {"kind": "python", "function": "math:isfinite", "name": "finite", "threshold": 0.9}
    verifier = build(data, tmp_path)
    assert isinstance(verifier, CallableVerifier)
    assert (verifier.name, verifier.threshold) == ("finite", 0.9)
