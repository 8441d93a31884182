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
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, cast, get_args

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


@dataclass(frozen=True)
class BuildContext:
    """What building a verifier may need: the policy file's folder (where ``schema_file`` paths
    start) and the policy's gate and audit log (a ``script`` verifier's sandbox asks the gate
    before every run and records each run or denial in the log)."""

    base_dir: Path
    gate: ScriptGate | None = None
    audit: AuditLog | None = None


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str | None = Field(default=None, description="overrides the verifier's default name")

    def _named(self, default: str) -> str:
        return self.name or default


class NonEmptySpec(_Spec):
    """``{kind: non_empty}``: see NonEmptyVerifier."""

    kind: Literal["non_empty"]

    def build(self, ctx: BuildContext) -> Verifier:
        return NonEmptyVerifier(name=self._named("non_empty"))


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

    def build(self, ctx: BuildContext) -> Verifier:
        flags = re.RegexFlag(0)
        for flag in self.flags:
            flags |= re.RegexFlag[flag]
        return RegexVerifier(
            must_match=self.must_match,
            must_not_match=self.must_not_match,
            flags=flags,
            name=self._named("regex"),
        )


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

    def build(self, ctx: BuildContext) -> Verifier:
        if self.schema_file is None:
            assert self.inline_schema is not None
            return JsonSchemaVerifier(self.inline_schema, name=self._named("json_schema"))
        path = ctx.base_dir / self.schema_file
        schema = _load_schema_file(path)
        try:
            return JsonSchemaVerifier(schema, name=self._named("json_schema"))
        except ConfigError as exc:
            raise ConfigError(str(exc), source=str(path)) from exc


class LogprobConfidenceSpec(_Spec):
    """``{kind: logprob_confidence, min_mean_prob: 0.7, min_token_prob: 0.1, missing: fail}``."""

    kind: Literal["logprob_confidence"]
    min_mean_prob: float | None = Field(default=0.7, ge=0.0, le=1.0)
    min_token_prob: float | None = Field(default=None, ge=0.0, le=1.0)
    missing: Literal["fail", "pass"] = "fail"

    def build(self, ctx: BuildContext) -> Verifier:
        return LogprobConfidenceVerifier(
            min_mean_prob=self.min_mean_prob,
            min_token_prob=self.min_token_prob,
            missing=self.missing,
            name=self._named("logprob_confidence"),
        )


class PythonSpec(_Spec):
    """``{kind: python, function: "package.module:function", threshold: 0.5}``."""

    kind: Literal["python"]
    function: str = Field(min_length=1)
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)

    def build(self, ctx: BuildContext) -> Verifier:
        return CallableVerifier(self.function, name=self.name, threshold=self.threshold)


class ArithmeticSpec(_Spec):
    """``{kind: arithmetic, require_final_answer: true, require_supported_answer: true,
    rel_tol: 1e-6, abs_tol: 1e-9}``."""

    kind: Literal["arithmetic"]
    require_final_answer: bool = True
    require_supported_answer: bool = True
    rel_tol: float = Field(default=1e-6, ge=0.0, allow_inf_nan=False)
    abs_tol: float = Field(default=1e-9, ge=0.0, allow_inf_nan=False)

    def build(self, ctx: BuildContext) -> Verifier:
        return ArithmeticVerifier(
            require_final_answer=self.require_final_answer,
            require_supported_answer=self.require_supported_answer,
            rel_tol=self.rel_tol,
            abs_tol=self.abs_tol,
            name=self._named("arithmetic"),
        )


class ScriptSpec(_Spec):
    """``{kind: script, skill: skills/invoice, script: scripts/check.py, answer_via: stdin,
    wall_s: 30, cpu_s: 10}``: the skill's own check script, run in the sandbox under the
    policy's gate and audit log."""

    kind: Literal["script"]
    skill: str = Field(min_length=1)
    script: str = Field(min_length=1)
    args: tuple[str, ...] = ()
    answer_via: Literal["stdin", "file"] = "stdin"
    wall_s: float = Field(default=30.0, gt=0, allow_inf_nan=False)
    cpu_s: int = Field(default=10, gt=0)

    def build(self, ctx: BuildContext) -> Verifier:
        from paxis_router.governance.sandbox import Sandbox, SandboxLimits
        from paxis_router.verifiers.script import ScriptVerifier

        sandbox = Sandbox(
            SandboxLimits(wall_s=self.wall_s, cpu_s=self.cpu_s), gate=ctx.gate, audit=ctx.audit
        )
        return ScriptVerifier(
            ctx.base_dir / self.skill,  # an absolute skill path replaces base_dir
            self.script,
            args=self.args,
            answer_via=self.answer_via,
            sandbox=sandbox,
            name=self.name,
        )


class ToolCallsSpec(_Spec):
    """``{kind: tool_calls, relevance: "package.module:function"}``: see ToolCallVerifier.
    ``relevance`` (optional) names a function of the request returning True (a call is
    needed), False (no offered tool is relevant) or None (no judgement)."""

    kind: Literal["tool_calls"]
    relevance: str | None = Field(default=None, min_length=1)

    def build(self, ctx: BuildContext) -> Verifier:
        relevance = None
        if self.relevance is not None:
            from paxis_router.verifiers.callable import import_callable

            found = import_callable(self.relevance)
            relevance = cast("Callable[[ChatRequest], bool | None]", found)
        return ToolCallVerifier(relevance=relevance, name=self._named("tool_calls"))


class WellFormedSpec(_Spec):
    """``{kind: well_formed, require_usage: true}``: see WellFormedVerifier."""

    kind: Literal["well_formed"]
    require_usage: bool = True

    def build(self, ctx: BuildContext) -> Verifier:
        return WellFormedVerifier(require_usage=self.require_usage, name=self._named("well_formed"))


class ResponseFormatSpec(_Spec):
    """``{kind: response_format}``: see ResponseFormatVerifier (the router also adds it by
    itself to a request that asks for JSON)."""

    kind: Literal["response_format"]

    def build(self, ctx: BuildContext) -> Verifier:
        return ResponseFormatVerifier(name=self._named("response_format"))


class AllOfSpec(_Spec):
    """``{kind: all_of, verifiers: [...]}``: every inner verifier must pass."""

    kind: Literal["all_of"]
    verifiers: tuple[VerifierSpec, ...] = Field(min_length=1)

    def build(self, ctx: BuildContext) -> Verifier:
        return AllOf(*(s.build(ctx) for s in self.verifiers), name=self._named("all_of"))


class AnyOfSpec(_Spec):
    """``{kind: any_of, verifiers: [...]}``: one passing inner verifier is enough."""

    kind: Literal["any_of"]
    verifiers: tuple[VerifierSpec, ...] = Field(min_length=1)

    def build(self, ctx: BuildContext) -> Verifier:
        return AnyOf(*(s.build(ctx) for s in self.verifiers), name=self._named("any_of"))


def _shorthand(value: object) -> object:
    """A bare kind name is short for ``{kind: name}``."""
    return {"kind": value} if isinstance(value, str) else value


# Every verifier kind: adding one is a spec class with ``kind`` and ``build``, listed here.
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

VERIFIER_SPECS: tuple[type[_Spec], ...] = get_args(get_args(VerifierSpec)[0])
VERIFIER_KINDS: tuple[str, ...] = tuple(
    kind for spec in VERIFIER_SPECS for kind in get_args(spec.model_fields["kind"].annotation)
)


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
    return spec.build(BuildContext(base_dir, gate, audit))


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
