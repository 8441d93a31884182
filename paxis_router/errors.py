"""One exception tree, rooted at :class:`PaxisError`.

Every exception paxis_router raises derives from ``PaxisError``; vendor exceptions are wrapped at
the worker boundary, so callers never import litellm or openai to catch a failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paxis_router.types import Attempt


class PaxisError(Exception):
    """Root of every error paxis_router raises."""


class ConfigError(PaxisError):
    """A configuration or policy file is invalid.

    Raised at load time, never mid-request. ``source`` names the file (or ``"<dict>"``) and
    ``field`` the dotted path of the offending key when one is known.
    """

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.source = source
        self.field = field
        where = ""
        if source:
            where = f"{source}: "
        if field:
            where += f"{field}: "
        super().__init__(f"{where}{message}")


class SkillSelectionError(PaxisError):
    """No skill matched the query and no fallback skill is configured."""


class SkillError(PaxisError):
    """A skill folder or SKILL.md is invalid; ``path`` names it."""

    def __init__(self, message: str, *, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class WorkerError(PaxisError):
    """A worker backend failed. ``worker`` is the tier name; ``__cause__`` is the vendor error."""

    def __init__(self, message: str, *, worker: str, request_id: str | None = None):
        self.worker = worker
        self.request_id = request_id
        super().__init__(f"{worker}: {message}")


class WorkerTimeout(WorkerError):
    """The backend did not answer in time."""


class WorkerUnavailable(WorkerError):
    """Connection refused, 5xx, rate limited, model withdrawn: the tier cannot serve now.

    ``transient`` is True for failures worth retrying (429, 5xx, resets) and False for failures
    that will not heal by retrying (401/403, model not found, DNS, connection refused).
    ``retry_after_s`` carries a server's Retry-After hint when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        worker: str,
        request_id: str | None = None,
        transient: bool = True,
        status_code: int | None = None,
        retry_after_s: float | None = None,
    ):
        super().__init__(message, worker=worker, request_id=request_id)
        self.transient = transient
        self.status_code = status_code
        self.retry_after_s = retry_after_s


class ContextWindowExceeded(WorkerError):
    """The prompt does not fit the tier's context window; a larger tier may still serve it."""


class CircuitOpen(WorkerUnavailable):
    """The tier's circuit breaker is open: the tier was skipped without a call (zero cost)."""


class ContextWindowTooSmall(ContextWindowExceeded):
    """The tier was skipped without a call: its window is no larger than one that overflowed."""


class UnsupportedContent(WorkerError):
    """The tier cannot take what the request carries (images sent to a text-only model):
    refused before any call, at zero cost, so the router tries the next tier."""


class EscalationExhausted(PaxisError):
    """Every tier failed or was rejected. ``attempts`` holds what each tier did."""

    def __init__(
        self, message: str, *, attempts: tuple[Attempt, ...], request_id: str | None = None
    ):
        self.attempts = attempts
        self.request_id = request_id
        super().__init__(message)


class TiersUnavailable(EscalationExhausted):
    """No tier could answer at all: each was down, timed out or had its breaker open.

    The message names every tier's cause; ``attempts`` holds them (all are in the ledger too).
    """


class DegradedRefused(EscalationExhausted):
    """An upper tier was unavailable and the skill's outage policy refuses degraded answers."""


class PolicyDenied(PaxisError):
    """The action gate refused an action and no alternative was allowed."""

    def __init__(self, message: str, *, rule_id: str | None = None, request_id: str | None = None):
        self.rule_id = rule_id
        self.request_id = request_id
        super().__init__(message)


class BudgetExceeded(PaxisError):
    """A team's budget is exhausted and the policy says to refuse rather than cap."""

    def __init__(self, message: str, *, team: str | None = None, request_id: str | None = None):
        self.team = team
        self.request_id = request_id
        super().__init__(message)


class LedgerError(PaxisError):
    """A CallRecord could not be persisted. Never swallowed: lost cost data is a bug."""


class RedactionError(PolicyDenied):
    """PII could not be redacted safely; the outward action it guarded is blocked (fail closed)."""


class AuditError(PaxisError):
    """The audit log cannot be appended to safely (unreadable, or its last line is damaged)."""


class SandboxError(PaxisError):
    """A skill script could not be run safely (no sandbox available, path escape, ...)."""
