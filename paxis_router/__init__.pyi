"""The public API of paxis_router, one name a line: what type checkers see, and what
``paxis_router/__init__.py`` reads at import to load each name on first use (PEP 562).
A public name is added here and nowhere else."""

__version__: str
__all__: list[str]

from paxis_router.config import load_config as load_config
from paxis_router.errors import (
    AuditError as AuditError,
    BudgetExceeded as BudgetExceeded,
    ConfigError as ConfigError,
    DegradedRefused as DegradedRefused,
    EscalationExhausted as EscalationExhausted,
    LedgerError as LedgerError,
    PaxisError as PaxisError,
    PolicyDenied as PolicyDenied,
    SandboxError as SandboxError,
    TiersUnavailable as TiersUnavailable,
    WorkerError as WorkerError,
    WorkerTimeout as WorkerTimeout,
    WorkerUnavailable as WorkerUnavailable,
)
from paxis_router.governance.audit import AuditLog as AuditLog
from paxis_router.governance.gate import Gate as Gate
from paxis_router.governance.sandbox import Sandbox as Sandbox
from paxis_router.ledger import open_ledger as open_ledger
from paxis_router.ledger.sqlite import SQLiteLedger as SQLiteLedger
from paxis_router.policy.outage import OutagePolicy as OutagePolicy
from paxis_router.policy.predicates import (
    EscalationPolicy as EscalationPolicy,
    all_of as all_of,
    any_of as any_of,
    confidence_below as confidence_below,
    spent_over as spent_over,
    tiers_exhausted as tiers_exhausted,
    verdict_failed as verdict_failed,
)
from paxis_router.pricing import (
    GpuHourPrice as GpuHourPrice,
    TokenPrice as TokenPrice,
)
from paxis_router.reports.cost_report import CostReport as CostReport
from paxis_router.router import Router as Router
from paxis_router.skills.library import SkillLibrary as SkillLibrary
from paxis_router.types import (
    CallRecord as CallRecord,
    ChatRequest as ChatRequest,
    Completion as Completion,
    Decision as Decision,
    Message as Message,
    RouteResult as RouteResult,
    Usage as Usage,
    Verdict as Verdict,
)
from paxis_router.verifiers import (
    ArithmeticVerifier as ArithmeticVerifier,
    CallableVerifier as CallableVerifier,
    JsonSchemaVerifier as JsonSchemaVerifier,
    LogprobConfidenceVerifier as LogprobConfidenceVerifier,
    NonEmptyVerifier as NonEmptyVerifier,
    RegexVerifier as RegexVerifier,
    Verifier as Verifier,
)
from paxis_router.verifiers.well_formed import WellFormedVerifier as WellFormedVerifier
from paxis_router.workers.base import (
    Tier as Tier,
    Worker as Worker,
)
from paxis_router.workers.litellm import LiteLLMWorker as LiteLLMWorker
from paxis_router.workers.openai_compat import OpenAICompatWorker as OpenAICompatWorker
from paxis_router.workers.replay import ReplayWorker as ReplayWorker
from paxis_router.workers.resilience import (
    Resilience as Resilience,
    ResilienceConfig as ResilienceConfig,
)
