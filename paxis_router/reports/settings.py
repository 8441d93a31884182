"""What a report reads from a policy file besides the ledger: budgets, reserved fleets, the top
tier's name.

A policy's top-level ``budgets:`` section (the router's, see ``governance.budgets``) and its
``reports:`` section::

    reports:
      fleet:                                   # reserved GPUs, amortised (reports/fleet.py)
        "local:qwen": {gpus: 2, usd_per_gpu_hour: "2.49"}

``paxis report --policy FILE`` loads the file as the router does (``config.load_config``) and
passes its sections and tiers here.

Example:
    >>> s = ReportSettings.from_sections({"teams": {"claims": {"month": "100"}}}, None)
    >>> [(b.team, b.period, b.limit_usd) for b in s.budgets]
    [('claims', 'month', Decimal('100'))]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paxis_router.errors import ConfigError
from paxis_router.governance.budgets import Budget, Budgets
from paxis_router.reports.fleet import Fleet, fleets_from_config

if TYPE_CHECKING:
    from collections.abc import Sequence

REPORTS_KEYS = ("fleet",)


@dataclass(frozen=True)
class ReportSettings:
    """Budgets, fleets and the ladder's top tier (named next to the frontier-only figure)."""

    budgets: tuple[Budget, ...] = ()
    fleets: tuple[Fleet, ...] = ()
    top_tier: str | None = None

    @classmethod
    def from_sections(
        cls,
        budgets: object,
        reports: object,
        *,
        tiers: Sequence[Mapping[str, Any]] = (),  # Any: each tier's YAML fields, with "name"
        source: str | None = None,
    ) -> ReportSettings:
        """From a policy's ``budgets:`` and ``reports:`` sections (None: absent) and its tiers
        (each a mapping with ``name`` and optionally ``gpus``, ``usd_per_gpu_hour``,
        ``throughput_tokens_per_s``), bottom of the ladder first."""
        chosen = () if budgets is None else Budgets.from_config(budgets, source=source).budgets
        fleets: tuple[Fleet, ...] = ()
        if reports is not None:
            if not isinstance(reports, Mapping):
                raise ConfigError("reports must be a mapping", source=source, field="reports")
            unknown = set(reports) - set(REPORTS_KEYS)
            if unknown:
                raise ConfigError(f"unknown keys {sorted(unknown)}; expected fleet",
                                  source=source, field="reports")  # fmt: skip
            by_name = {str(t["name"]): t for t in tiers}
            fleets = fleets_from_config(reports.get("fleet"), tiers=by_name, source=source)
        top = str(tiers[-1]["name"]) if tiers else None
        return cls(budgets=chosen, fleets=fleets, top_tier=top)
