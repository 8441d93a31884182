"""Verifiers judge a worker's answer; a rejection is a returned Verdict, never an exception.

Built-ins: NonEmptyVerifier, RegexVerifier, JsonSchemaVerifier, LogprobConfidenceVerifier,
CallableVerifier, ArithmeticVerifier, and the combinators AllOf / AnyOf. Their YAML forms are in
``paxis_router.config.verifiers``.
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

__all__ = [
    "AllOf",
    "AnyOf",
    "ArithmeticVerifier",
    "CallableVerifier",
    "JsonSchemaVerifier",
    "LogprobConfidenceVerifier",
    "NonEmptyVerifier",
    "RegexVerifier",
    "Verifier",
]
