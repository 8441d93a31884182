"""Calibration: routing metrics (PGR/APGR/CPT), datasets, learned scorers and the fitting of
thresholds to a target quality or budget, from recorded outcomes or from ledger rows."""

from __future__ import annotations
