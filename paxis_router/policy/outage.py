"""Outage policy: per skill, serve a lower tier's answer ``degraded`` or refuse, when an upper
tier could not serve.

Example:
    >>> policy = OutagePolicy(default="degrade", skills={"legal-review": "refuse"})
    >>> policy.mode_for(["legal-review"]), policy.mode_for(["faq"])
    ('refuse', 'degrade')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence

OutageMode = Literal["degrade", "refuse"]
_MODES = ("degrade", "refuse")


@dataclass(frozen=True)
class OutagePolicy:
    """What to do, per skill, when a route ends unanswered because an upper tier is down.

    ``degrade`` serves the best lower-tier answer, marked ``degraded`` and ``accepted=False``,
    with the reason; ``refuse`` raises :class:`~paxis_router.errors.DegradedRefused`. A request's
    skills are the selected ones plus ``metadata["skill"]``; if any of them says ``refuse``,
    the request is refused. When no tier answered at all the router raises
    :class:`~paxis_router.errors.TiersUnavailable` naming every cause, whatever the mode.
    (A plain dataclass: policy/ stays free of pydantic; the policy file validates it.)
    """

    # pydantic reads this when a config model holds an OutagePolicy: unknown keys are errors.
    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    default: OutageMode = "degrade"
    skills: dict[str, OutageMode] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = {k: v for k, v in {"default": self.default, **self.skills}.items() if v not in _MODES}
        if bad:
            raise ValueError(f"outage modes must be 'degrade' or 'refuse', got {bad}")

    def mode_for(self, skills: Sequence[str]) -> OutageMode:
        """The mode for a request using ``skills``: ``refuse`` if any of them refuses."""
        modes = [self.skills[s] for s in skills if s in self.skills]
        if "refuse" in modes:
            return "refuse"
        return modes[0] if modes else self.default
