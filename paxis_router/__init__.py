"""paxis_router: cheap workers first, frontier models only when the checks fail.

The public API is what ``__all__`` lists. Importing this package opens no socket, imports no
heavy dependency and writes no environment variable.
"""

from __future__ import annotations

from paxis_router.errors import (
    BudgetExceeded,
    ConfigError,
    ContextWindowExceeded,
    EscalationExhausted,
    LedgerError,
    PaxisError,
    PolicyDenied,
    SandboxError,
    SkillError,
    SkillSelectionError,
    WorkerError,
    WorkerTimeout,
    WorkerUnavailable,
)
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.policy import (
    EscalationPolicy,
    RouteState,
    all_of,
    any_of,
    confidence_below,
    not_,
    spent_over,
    tiers_exhausted,
    verdict_failed,
)
from paxis_router.pricing import GpuHourPrice, TokenPrice, litellm_price
from paxis_router.router import Router
from paxis_router.sandbox import RunResult, Sandbox, SandboxLimits
from paxis_router.types import (
    Attempt,
    CallRecord,
    ChatRequest,
    Completion,
    Decision,
    Message,
    RouteResult,
    Usage,
    Verdict,
)
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
from paxis_router.verifiers.script import ScriptVerifier
from paxis_router.workers.base import Tier, Worker

__version__ = "0.1.0"

__all__ = [
    "AllOf",
    "AnyOf",
    "ArithmeticVerifier",
    "Attempt",
    "BudgetExceeded",
    "CallRecord",
    "CallableVerifier",
    "ChatRequest",
    "Completion",
    "ConfigError",
    "ContextWindowExceeded",
    "Decision",
    "EscalationExhausted",
    "EscalationPolicy",
    "GpuHourPrice",
    "JsonSchemaVerifier",
    "LedgerError",
    "LogprobConfidenceVerifier",
    "Message",
    "NonEmptyVerifier",
    "PaxisError",
    "PolicyDenied",
    "RegexVerifier",
    "RouteResult",
    "RouteState",
    "Router",
    "RunResult",
    "SQLiteLedger",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "ScriptVerifier",
    "SkillError",
    "SkillSelectionError",
    "Tier",
    "TokenPrice",
    "Usage",
    "Verdict",
    "Verifier",
    "Worker",
    "WorkerError",
    "WorkerTimeout",
    "WorkerUnavailable",
    "all_of",
    "any_of",
    "confidence_below",
    "litellm_price",
    "not_",
    "spent_over",
    "tiers_exhausted",
    "verdict_failed",
]
