"""paxis_router: cheap workers first, frontier models only when the checks fail.

The public API is what ``__all__`` lists. Importing this package opens no socket, imports no
heavy dependency and writes no environment variable. Every public name but the exceptions is
loaded on first use (PEP 562), so ``import paxis_router`` stays fast and a program pays only for
the parts it touches; ``from paxis_router import Router`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from paxis_router.errors import (
    AuditError,
    BudgetExceeded,
    CircuitOpen,
    ConfigError,
    ContextWindowExceeded,
    ContextWindowTooSmall,
    DegradedRefused,
    EscalationExhausted,
    LedgerError,
    PaxisError,
    PolicyDenied,
    RedactionError,
    SandboxError,
    SkillError,
    SkillSelectionError,
    TiersUnavailable,
    UnsupportedContent,
    WorkerError,
    WorkerTimeout,
    WorkerUnavailable,
)

if TYPE_CHECKING:
    from paxis_router.config.schema import RouterConfig, load_config
    from paxis_router.governance.audit import AuditLog
    from paxis_router.governance.budgets import Budget, Budgets
    from paxis_router.governance.gate import Action, Gate, GateDecision, GatePolicy
    from paxis_router.governance.sandbox import RunResult, Sandbox, SandboxLimits
    from paxis_router.ledger import open_ledger
    from paxis_router.ledger.postgres import PostgresLedger
    from paxis_router.ledger.sqlite import SQLiteLedger
    from paxis_router.policy.predicates import (
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
    from paxis_router.reports.cost_report import CostReport
    from paxis_router.router import Router
    from paxis_router.training.rewards import reward_function
    from paxis_router.training.worker_plan import WorkerPlan
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
        ResponseFormatVerifier,
        ToolCallVerifier,
        Verifier,
    )
    from paxis_router.verifiers.script import ScriptVerifier
    from paxis_router.workers.base import Tier, Worker
    from paxis_router.workers.litellm import LiteLLMWorker
    from paxis_router.workers.lora import LoRAWorker
    from paxis_router.workers.openai_compat import OpenAICompatWorker
    from paxis_router.workers.replay import Outcome, ReplayWorker
    from paxis_router.workers.resilience import (
        BreakerConfig,
        CircuitBreaker,
        OutagePolicy,
        Resilience,
        ResilienceConfig,
        WellFormedVerifier,
    )

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY: dict[str, str] = {
    "Action": "paxis_router.governance.gate",
    "AllOf": "paxis_router.verifiers",
    "AnyOf": "paxis_router.verifiers",
    "ArithmeticVerifier": "paxis_router.verifiers",
    "Attempt": "paxis_router.types",
    "AuditLog": "paxis_router.governance.audit",
    "BreakerConfig": "paxis_router.workers.resilience",
    "Budget": "paxis_router.governance.budgets",
    "Budgets": "paxis_router.governance.budgets",
    "CallRecord": "paxis_router.types",
    "CallableVerifier": "paxis_router.verifiers",
    "ChatRequest": "paxis_router.types",
    "CircuitBreaker": "paxis_router.workers.resilience",
    "Completion": "paxis_router.types",
    "CostReport": "paxis_router.reports.cost_report",
    "Decision": "paxis_router.types",
    "EscalationPolicy": "paxis_router.policy.predicates",
    "Gate": "paxis_router.governance.gate",
    "GateDecision": "paxis_router.governance.gate",
    "GatePolicy": "paxis_router.governance.gate",
    "GpuHourPrice": "paxis_router.pricing",
    "JsonSchemaVerifier": "paxis_router.verifiers",
    "LiteLLMWorker": "paxis_router.workers.litellm",
    "LoRAWorker": "paxis_router.workers.lora",
    "LogprobConfidenceVerifier": "paxis_router.verifiers",
    "Message": "paxis_router.types",
    "NonEmptyVerifier": "paxis_router.verifiers",
    "OpenAICompatWorker": "paxis_router.workers.openai_compat",
    "OutagePolicy": "paxis_router.workers.resilience",
    "Outcome": "paxis_router.workers.replay",
    "PostgresLedger": "paxis_router.ledger.postgres",
    "RegexVerifier": "paxis_router.verifiers",
    "ReplayWorker": "paxis_router.workers.replay",
    "Resilience": "paxis_router.workers.resilience",
    "ResilienceConfig": "paxis_router.workers.resilience",
    "RouteResult": "paxis_router.types",
    "RouteState": "paxis_router.policy.predicates",
    "ResponseFormatVerifier": "paxis_router.verifiers",
    "Router": "paxis_router.router",
    "RouterConfig": "paxis_router.config.schema",
    "RunResult": "paxis_router.governance.sandbox",
    "SQLiteLedger": "paxis_router.ledger.sqlite",
    "Sandbox": "paxis_router.governance.sandbox",
    "SandboxLimits": "paxis_router.governance.sandbox",
    "ScriptVerifier": "paxis_router.verifiers.script",
    "Tier": "paxis_router.workers.base",
    "ToolCallVerifier": "paxis_router.verifiers",
    "TokenPrice": "paxis_router.pricing",
    "Usage": "paxis_router.types",
    "Verdict": "paxis_router.types",
    "Verifier": "paxis_router.verifiers",
    "WellFormedVerifier": "paxis_router.workers.resilience",
    "Worker": "paxis_router.workers.base",
    "WorkerPlan": "paxis_router.training.worker_plan",
    "all_of": "paxis_router.policy.predicates",
    "any_of": "paxis_router.policy.predicates",
    "confidence_below": "paxis_router.policy.predicates",
    "litellm_price": "paxis_router.pricing",
    "load_config": "paxis_router.config.schema",
    "not_": "paxis_router.policy.predicates",
    "open_ledger": "paxis_router.ledger",
    "reward_function": "paxis_router.training.rewards",
    "spent_over": "paxis_router.policy.predicates",
    "tiers_exhausted": "paxis_router.policy.predicates",
    "verdict_failed": "paxis_router.policy.predicates",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'paxis_router' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Action",
    "AllOf",
    "AnyOf",
    "ArithmeticVerifier",
    "Attempt",
    "AuditError",
    "AuditLog",
    "BreakerConfig",
    "Budget",
    "BudgetExceeded",
    "Budgets",
    "CallRecord",
    "CallableVerifier",
    "ChatRequest",
    "CircuitBreaker",
    "CircuitOpen",
    "Completion",
    "ConfigError",
    "ContextWindowExceeded",
    "ContextWindowTooSmall",
    "CostReport",
    "Decision",
    "DegradedRefused",
    "EscalationExhausted",
    "EscalationPolicy",
    "Gate",
    "GateDecision",
    "GatePolicy",
    "GpuHourPrice",
    "JsonSchemaVerifier",
    "LedgerError",
    "LiteLLMWorker",
    "LoRAWorker",
    "LogprobConfidenceVerifier",
    "Message",
    "NonEmptyVerifier",
    "OpenAICompatWorker",
    "OutagePolicy",
    "Outcome",
    "PaxisError",
    "PolicyDenied",
    "PostgresLedger",
    "RedactionError",
    "RegexVerifier",
    "ReplayWorker",
    "Resilience",
    "ResilienceConfig",
    "ResponseFormatVerifier",
    "RouteResult",
    "RouteState",
    "Router",
    "RouterConfig",
    "RunResult",
    "SQLiteLedger",
    "Sandbox",
    "SandboxError",
    "SandboxLimits",
    "ScriptVerifier",
    "SkillError",
    "SkillSelectionError",
    "Tier",
    "TiersUnavailable",
    "TokenPrice",
    "ToolCallVerifier",
    "UnsupportedContent",
    "Usage",
    "Verdict",
    "Verifier",
    "WellFormedVerifier",
    "Worker",
    "WorkerError",
    "WorkerPlan",
    "WorkerTimeout",
    "WorkerUnavailable",
    "all_of",
    "any_of",
    "confidence_below",
    "litellm_price",
    "load_config",
    "not_",
    "open_ledger",
    "reward_function",
    "spent_over",
    "tiers_exhausted",
    "verdict_failed",
]
