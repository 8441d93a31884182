"""Public fakes for tests at the model seam: no weights, no keys, no network.

``FakeWorker``/``FunctionWorker`` stand in for a tier, ``FakeVerifier`` for a verifier,
``FakeClock`` for time, ``make_state``/``call_record`` build policy states and ledger rows.
``paxis_router.testing.upstream`` is a real OpenAI-compatible HTTP server on loopback that can be
told to stall, drop or fail (``python -m paxis_router.testing`` runs it).
"""

from __future__ import annotations

from paxis_router.testing.fakes import (
    FakeClock,
    FakeVerifier,
    FakeWorker,
    FunctionWorker,
    call_record,
    make_attempt,
    make_state,
)

__all__ = [
    "FakeClock",
    "FakeVerifier",
    "FakeWorker",
    "FunctionWorker",
    "call_record",
    "make_attempt",
    "make_state",
]
