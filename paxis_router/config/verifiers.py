"""The YAML side of verifiers: one pydantic model per ``kind``, and ``build_verifier``.

A policy file lists verifiers by kind; nested ``all_of`` / ``any_of`` take lists of them::

    verifiers:
      - {kind: non_empty}
      - {kind: json_schema, schema_file: schemas/answer.json}
      - kind: any_of
        verifiers:
          - {kind: arithmetic}
          - {kind: logprob_confidence, min_mean_prob: 0.8}
      - {kind: tool_calls, relevance: "my_app.checks:needs_a_tool"}
      - {kind: well_formed, require_usage: true}

A bare kind name (``- non_empty``) is short for ``{kind: non_empty}``.

Example:
    >>> from pathlib import Path
    >>> from pydantic import TypeAdapter
    >>> spec = TypeAdapter(VerifierSpec).validate_python({"kind": "regex", "must_match": "\\\\d"})
    >>> build_verifier(spec, Path(".")).name
    'regex'
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from paxis_router.errors import ConfigError
from paxis_router.verifiers.arithmetic import ArithmeticVerifier

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from paxis_router.governance.audit import AuditLog
    from paxis_router.governance.sandbox import ScriptGate
    from paxis_router.types import ChatRequest
    from paxis_router.verifiers.base import Verifier
from paxis_router.verifiers.callable import CallableVerifier
from paxis_router.verifiers.combine import AllOf, AnyOf
from paxis_router.verifiers.json_schema import JsonSchemaVerifier
from paxis_router.verifiers.logprob import LogprobConfidenceVerifier
from paxis_router.verifiers.non_empty import NonEmptyVerifier
from paxis_router.verifiers.regex import RegexVerifier
from paxis_router.verifiers.response_format import ResponseFormatVerifier
from paxis_router.verifiers.tool_calls import ToolCallVerifier
from paxis_router.verifiers.well_formed import WellFormedVerifier

RegexFlagName = Literal["IGNORECASE", "MULTILINE", "DOTALL", "VERBOSE", "ASCII"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str | None = Field(default=None, description="overrides the verifier's default name")


class NonEmptySpec(_Spec):
    """``{kind: non_empty}``: see NonEmptyVerifier."""

    kind: Literal["non_empty"]


class RegexSpec(_Spec):
    """``{kind: regex, must_match: ..., must_not_match: ..., flags: [IGNORECASE]}``."""

    kind: Literal["regex"]
    must_match: str | None = None
    must_not_match: str | None = None
    flags: tuple[RegexFlagName, ...] = ()

    @model_validator(mode="after")
    def _one_pattern(self) -> RegexSpec:
        if self.must_match is None and self.must_not_match is None:
            raise ValueError("regex needs must_match, must_not_match or both")
        for field, pattern in (
            ("must_match", self.must_match),
            ("must_not_match", self.must_not_match),
        ):
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(
                        f"{field}: invalid regular expression {pattern!r}: {exc}"
                    ) from exc
        return self


class JsonSchemaSpec(_Spec):
    """``{kind: json_schema, schema: {...}}`` or ``{kind: json_schema, schema_file: path}``
    (JSON or YAML, relative to the policy file's folder)."""

    kind: Literal["json_schema"]
    # "schema" would shadow a BaseModel attribute, hence the alias.
    # Any: a JSON Schema is free-form JSON (vendor boundary with jsonschema).
    inline_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    schema_file: str | None = None

    @model_validator(mode="after")
    def _exactly_one_schema(self) -> JsonSchemaSpec:
        if (self.inline_schema is None) == (self.schema_file is None):
            raise ValueError("json_schema needs exactly one of schema (inline) or schema_file")
        return self


class LogprobConfidenceSpec(_Spec):
    """``{kind: logprob_confidence, min_mean_prob: 0.7, min_token_prob: 0.1, missing: fail}``."""

    kind: Literal["logprob_confidence"]
    min_mean_prob: float | None = Field(default=0.7, ge=0.0, le=1.0)
    min_token_prob: float | None = Field(default=None, ge=0.0, le=1.0)
    missing: Literal["fail", "pass"] = "fail"


class PythonSpec(_Spec):
    """``{kind: python, function: "package.module:function", threshold: 0.5}``."""

    kind: Literal["python"]
    function: str = Field(min_length=1)
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)


class ArithmeticSpec(_Spec):
    """``{kind: arithmetic, require_final_answer: true, require_supported_answer: true,
    rel_tol: 1e-6, abs_tol: 1e-9}``."""

    kind: Literal["arithmetic"]
    require_final_answer: bool = True
    require_supported_answer: bool = True
    rel_tol: float = Field(default=1e-6, ge=0.0, allow_inf_nan=False)
    abs_tol: float = Field(default=1e-9, ge=0.0, allow_inf_nan=False)


class ScriptSpec(_Spec):
    """``{kind: script, skill: skills/invoice, script: scripts/check.py, answer_via: stdin,
    wall_s: 30, cpu_s: 10}``: the skill's own check script, run in the sandbox."""

    kind: Literal["script"]
    skill: str = Field(min_length=1)
    script: str = Field(min_length=1)
    args: tuple[str, ...] = ()
    answer_via: Literal["stdin", "file"] = "stdin"
    wall_s: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    cpu_s: int = Field(default=10, gt=0)


class ToolCallsSpec(_Spec):
    """``{kind: tool_calls, relevance: "package.module:function"}``: see ToolCallVerifier.
    ``relevance`` (optional) names a function of the request returning True (a call is
    needed), False (no offered tool is relevant) or None (no judgement)."""

    kind: Literal["tool_calls"]
    relevance: str | None = Field(default=None, min_length=1)


class WellFormedSpec(_Spec):
    """``{kind: well_formed, require_usage: true}``: see WellFormedVerifier."""

    kind: Literal["well_formed"]
    require_usage: bool = True


class ResponseFormatSpec(_Spec):
    """``{kind: response_format}``: see ResponseFormatVerifier (the router also adds it by
    itself to a request that asks for JSON)."""

    kind: Literal["response_format"]


class AllOfSpec(_Spec):
    """``{kind: all_of, verifiers: [...]}``: every inner verifier must pass."""

    kind: Literal["all_of"]
    verifiers: tuple[VerifierSpec, ...] = Field(min_length=1)


class AnyOfSpec(_Spec):
    """``{kind: any_of, verifiers: [...]}``: one passing inner verifier is enough."""

    kind: Literal["any_of"]
    verifiers: tuple[VerifierSpec, ...] = Field(min_length=1)


def _shorthand(value: object) -> object:
    """A bare kind name is short for ``{kind: name}``."""
    return {"kind": value} if isinstance(value, str) else value


VerifierSpec = Annotated[
    Union[  # noqa: UP007  # a discriminated union needs the Union form
        NonEmptySpec,
        RegexSpec,
        JsonSchemaSpec,
        LogprobConfidenceSpec,
        PythonSpec,
        ArithmeticSpec,
        ScriptSpec,
        ToolCallsSpec,
        WellFormedSpec,
        ResponseFormatSpec,
        AllOfSpec,
        AnyOfSpec,
    ],
    Field(discriminator="kind"),
    BeforeValidator(_shorthand),
]

AllOfSpec.model_rebuild()
AnyOfSpec.model_rebuild()

VERIFIER_KINDS = (
    "non_empty",
    "regex",
    "json_schema",
    "logprob_confidence",
    "python",
    "arithmetic",
    "script",
    "tool_calls",
    "well_formed",
    "response_format",
    "all_of",
    "any_of",
)


@dataclass(frozen=True)
class _Governance:
    """The policy's gate and audit log, for the verifiers that act (``script`` runs one)."""

    gate: ScriptGate | None = None
    audit: AuditLog | None = None


def build_verifier(
    spec: VerifierSpec,
    base_dir: Path,
    *,
    gate: ScriptGate | None = None,
    audit: AuditLog | None = None,
) -> Verifier:
    """Build the verifier a spec describes; ``base_dir`` is the policy file's folder (where
    ``schema_file`` paths start). Raises ConfigError for a missing or invalid schema file or
    a python path that does not import.

    ``gate`` and ``audit`` are the policy's gate and audit log: a ``script`` verifier's sandbox
    asks the gate before every run (a denial fails the answer; nothing runs) and records each
    run or denial in the log. Pass them whenever the policy has them.

    Example:
        >>> from pathlib import Path
        >>> build_verifier(ArithmeticSpec(kind="arithmetic"), Path(".")).name
        'arithmetic'
    """
    governed = _GOVERNED.get(spec.kind)
    if governed is not None:
        return governed(spec, base_dir, _Governance(gate, audit))
    return _FACTORIES[spec.kind](spec, base_dir)


def _named(spec: _Spec, default: str) -> str:
    return spec.name or default


def _non_empty(spec: Any, base_dir: Path) -> Verifier:  # Any: narrowed by the kind dispatch
    assert isinstance(spec, NonEmptySpec)
    return NonEmptyVerifier(name=_named(spec, "non_empty"))


def _regex(spec: Any, base_dir: Path) -> Verifier:  # Any: narrowed by the kind dispatch
    assert isinstance(spec, RegexSpec)
    flags = re.RegexFlag(0)
    for flag in spec.flags:
        flags |= re.RegexFlag[flag]
    return RegexVerifier(
        must_match=spec.must_match,
        must_not_match=spec.must_not_match,
        flags=flags,
        name=_named(spec, "regex"),
    )


def _json_schema(spec: Any, base_dir: Path) -> Verifier:  # Any: narrowed by the kind dispatch
    assert isinstance(spec, JsonSchemaSpec)
    if spec.schema_file is None:
        assert spec.inline_schema is not None
        return JsonSchemaVerifier(spec.inline_schema, name=_named(spec, "json_schema"))
    path = base_dir / spec.schema_file
    schema = _load_schema_file(path)
    try:
        return JsonSchemaVerifier(schema, name=_named(spec, "json_schema"))
    except ConfigError as exc:
        raise ConfigError(str(exc), source=str(path)) from exc


def _load_schema_file(path: Path) -> dict[str, Any]:  # Any: free-form JSON Schema
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read schema file: {exc.strerror}; schema_file is relative to the policy "
            "file's folder",
            source=str(path),
        ) from exc
    import yaml  # imported here: only YAML schema files need it

    try:
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"schema file is not valid JSON/YAML: {exc}", source=str(path)) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"a JSON Schema is an object, got {type(data).__name__}", source=str(path)
        )
    return data


def _logprob(spec: Any, base_dir: Path) -> Verifier:  # Any: narrowed by the kind dispatch
    assert isinstance(spec, LogprobConfidenceSpec)
    return LogprobConfidenceVerifier(
        min_mean_prob=spec.min_mean_prob,
        min_token_prob=spec.min_token_prob,
        missing=spec.missing,
        name=_named(spec, "logprob_confidence"),
    )


def _python(spec: Any, base_dir: Path) -> Verifier:  # Any: narrowed by the kind dispatch
    assert isinstance(spec, PythonSpec)
    return CallableVerifier(spec.function, name=spec.name, threshold=spec.threshold)


def _arithmetic(spec: Any, base_dir: Path) -> Verifier:  # Any: narrowed by the kind dispatch
    assert isinstance(spec, ArithmeticSpec)
    return ArithmeticVerifier(
        require_final_answer=spec.require_final_answer,
        require_supported_answer=spec.require_supported_answer,
        rel_tol=spec.rel_tol,
        abs_tol=spec.abs_tol,
        name=_named(spec, "arithmetic"),
    )


def _script(
    spec: Any, base_dir: Path, governance: _Governance
) -> Verifier:  # Any: narrowed by kind
    assert isinstance(spec, ScriptSpec)
    from paxis_router.governance.sandbox import Sandbox, SandboxLimits
    from paxis_router.verifiers.script import ScriptVerifier

    skill_dir = base_dir / spec.skill  # an absolute spec.skill replaces base_dir
    return ScriptVerifier(
        skill_dir,
        spec.script,
        args=spec.args,
        answer_via=spec.answer_via,
        sandbox=Sandbox(
            SandboxLimits(wall_s=spec.wall_s, cpu_s=spec.cpu_s),
            gate=governance.gate,
            audit=governance.audit,
        ),
        name=spec.name,
    )


def _tool_calls(spec: Any, base_dir: Path) -> Verifier:  # Any: narrowed by the kind dispatch
    assert isinstance(spec, ToolCallsSpec)
    relevance = None
    if spec.relevance is not None:
        from paxis_router.verifiers.callable import import_callable

        relevance = cast("Callable[[ChatRequest], bool | None]", import_callable(spec.relevance))
    return ToolCallVerifier(relevance=relevance, name=_named(spec, "tool_calls"))


def _well_formed(spec: Any, base_dir: Path) -> Verifier:  # Any: narrowed by the kind dispatch
    assert isinstance(spec, WellFormedSpec)
    return WellFormedVerifier(require_usage=spec.require_usage, name=_named(spec, "well_formed"))


def _response_format(spec: Any, base_dir: Path) -> Verifier:  # Any: narrowed by the kind dispatch
    assert isinstance(spec, ResponseFormatSpec)
    return ResponseFormatVerifier(name=_named(spec, "response_format"))


def _all_of(
    spec: Any, base_dir: Path, governance: _Governance
) -> Verifier:  # Any: narrowed by kind
    assert isinstance(spec, AllOfSpec)
    inner = [
        build_verifier(s, base_dir, gate=governance.gate, audit=governance.audit)
        for s in spec.verifiers
    ]
    return AllOf(*inner, name=_named(spec, "all_of"))


def _any_of(
    spec: Any, base_dir: Path, governance: _Governance
) -> Verifier:  # Any: narrowed by kind
    assert isinstance(spec, AnyOfSpec)
    inner = [
        build_verifier(s, base_dir, gate=governance.gate, audit=governance.audit)
        for s in spec.verifiers
    ]
    return AnyOf(*inner, name=_named(spec, "any_of"))


_FACTORIES: dict[str, Callable[[Any, Path], Verifier]] = {
    "non_empty": _non_empty,
    "regex": _regex,
    "json_schema": _json_schema,
    "logprob_confidence": _logprob,
    "python": _python,
    "arithmetic": _arithmetic,
    "tool_calls": _tool_calls,
    "well_formed": _well_formed,
    "response_format": _response_format,
}
# The kinds that run something (or hold verifiers that may): they get the policy's gate and log.
_GOVERNED: dict[str, Callable[[Any, Path, _Governance], Verifier]] = {
    "script": _script,
    "all_of": _all_of,
    "any_of": _any_of,
}
