"""Governance: the action gate, PII detection and redaction, team budgets, the hash-chained
audit log and the bubblewrap sandbox that runs skill scripts."""

from __future__ import annotations
