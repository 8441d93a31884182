"""Verifiers judge a worker's answer; a rejection is a returned Verdict, never an exception.

Built-ins: NonEmptyVerifier, WellFormedVerifier, RegexVerifier, JsonSchemaVerifier,
ResponseFormatVerifier, ToolCallVerifier, LogprobConfidenceVerifier, CallableVerifier,
ArithmeticVerifier, and the combinators AllOf / AnyOf. Their YAML forms are in
``paxis_router.config.verifiers``; ``implicit.implicit_verifiers`` names the checks a request
asks for by itself (JSON ``response_format``, tools).
"""

from __future__ import annotations

from paxis_router.verifiers.arithmetic import ArithmeticVerifier
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

__all__ = [
    "AllOf",
    "AnyOf",
    "ArithmeticVerifier",
    "CallableVerifier",
    "JsonSchemaVerifier",
    "LogprobConfidenceVerifier",
    "NonEmptyVerifier",
    "RegexVerifier",
    "ResponseFormatVerifier",
    "ToolCallVerifier",
    "Verifier",
    "WellFormedVerifier",
]
