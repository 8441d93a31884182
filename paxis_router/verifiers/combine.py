"""AllOf / AnyOf: combine verifiers into one verdict."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from paxis_router.errors import ConfigError
from paxis_router.types import Verdict

if TYPE_CHECKING:
    from collections.abc import Sequence

    from paxis_router.types import ChatRequest, Completion
    from paxis_router.verifiers.base import Verifier


class AllOf:
    """Passes when every inner verifier passes. ``score`` is the lowest inner score (None when
    none scored); the reason lists every sub-verdict. Inner verifiers run concurrently.

    Example:
        >>> import asyncio
        >>> from paxis_router.types import ChatRequest, Completion
        >>> from paxis_router.verifiers import NonEmptyVerifier, RegexVerifier
        >>> v = AllOf(NonEmptyVerifier(), RegexVerifier(must_match="yes"))
        >>> verdict = asyncio.run(v.verify(ChatRequest.from_text("?"), Completion("no", "m")))
        >>> verdict.passed, verdict.reason
        (False, "non_empty: pass (2 characters); regex: FAIL (answer does not match 'yes')")
    """

    def __init__(self, *verifiers: Verifier, name: str = "all_of"):
        if not verifiers:
            raise ConfigError(f"{name} needs at least one verifier")
        self.verifiers: tuple[Verifier, ...] = verifiers
        self.name = name

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        verdicts = await _run_all(self.verifiers, request, completion)
        passed = all(v.passed for v in verdicts)
        scores = [v.score for v in verdicts if v.score is not None]
        return Verdict(self.name, passed, min(scores) if scores else None, _describe(verdicts))


class AnyOf:
    """Passes when at least one inner verifier passes. ``score`` is the highest score among
    the passing ones (among all when none passed; None when none scored); the reason lists
    every sub-verdict.

    Example:
        >>> import asyncio
        >>> from paxis_router.types import ChatRequest, Completion
        >>> from paxis_router.verifiers import RegexVerifier
        >>> v = AnyOf(RegexVerifier(must_match="yes"), RegexVerifier(must_match="ok"))
        >>> asyncio.run(v.verify(ChatRequest.from_text("?"), Completion("ok", "m"))).passed
        True
    """

    def __init__(self, *verifiers: Verifier, name: str = "any_of"):
        if not verifiers:
            raise ConfigError(f"{name} needs at least one verifier")
        self.verifiers: tuple[Verifier, ...] = verifiers
        self.name = name

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        verdicts = await _run_all(self.verifiers, request, completion)
        passing = [v for v in verdicts if v.passed]
        scores = [v.score for v in (passing or verdicts) if v.score is not None]
        return Verdict(
            self.name, bool(passing), max(scores) if scores else None, _describe(verdicts)
        )


async def _run_all(
    verifiers: Sequence[Verifier], request: ChatRequest, completion: Completion
) -> list[Verdict]:
    return list(await asyncio.gather(*(v.verify(request, completion) for v in verifiers)))


def _describe(verdicts: Sequence[Verdict]) -> str:
    parts = []
    for verdict in verdicts:
        status = "pass" if verdict.passed else "FAIL"
        detail = f" ({verdict.reason})" if verdict.reason else ""
        parts.append(f"{verdict.verifier}: {status}{detail}")
    return "; ".join(parts)
