"""Cost reports built from the ledger: aggregation (``cost_report``) and its renderers."""

from __future__ import annotations
