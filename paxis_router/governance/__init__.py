"""Governance: the action gate, PII detection and redaction, team budgets, the hash-chained
audit log, the bubblewrap sandbox that runs skill scripts, and secret scrubbing for untrusted
text (``secrets.scrub_secrets``)."""

from __future__ import annotations
