"""``python -m paxis_router.testing``: run the fake OpenAI-compatible upstream."""

from __future__ import annotations

from paxis_router.testing.upstream import main

raise SystemExit(main())
