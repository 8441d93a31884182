"""``python -m paxis_router`` ≡ ``paxis``."""

from __future__ import annotations

from paxis_router.cli import main

raise SystemExit(main())
