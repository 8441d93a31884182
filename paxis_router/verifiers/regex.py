"""RegexVerifier: the answer must (or must not) match a regular expression."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from paxis_router.errors import ConfigError
from paxis_router.types import Verdict

if TYPE_CHECKING:
    from paxis_router.types import ChatRequest, Completion


class RegexVerifier:
    """Passes when the answer matches ``must_match`` (searched anywhere) and does not match
    ``must_not_match``. Give at least one; ``flags`` are ``re`` flags for both.

    Example:
        >>> import asyncio
        >>> from paxis_router.types import ChatRequest, Completion
        >>> v = RegexVerifier(must_match=r"\\d", must_not_match=r"(?i)as an ai")
        >>> asyncio.run(v.verify(ChatRequest.from_text("6*7?"), Completion("42", "m"))).passed
        True
    """

    def __init__(
        self,
        *,
        must_match: str | None = None,
        must_not_match: str | None = None,
        flags: int | re.RegexFlag = 0,
        name: str = "regex",
    ):
        if must_match is None and must_not_match is None:
            raise ConfigError("RegexVerifier needs must_match, must_not_match or both")
        self.name = name
        self.must_match = _compile(must_match, flags, "must_match")
        self.must_not_match = _compile(must_not_match, flags, "must_not_match")

    async def verify(self, request: ChatRequest, completion: Completion) -> Verdict:
        text = completion.content
        if self.must_match is not None and not self.must_match.search(text):
            return Verdict(
                self.name, False, None, f"answer does not match {self.must_match.pattern!r}"
            )
        if self.must_not_match is not None:
            found = self.must_not_match.search(text)
            if found:
                return Verdict(
                    self.name,
                    False,
                    None,
                    f"answer matches forbidden {self.must_not_match.pattern!r} "
                    f"at {found.start()}: {found.group()[:80]!r}",
                )
        return Verdict(self.name, True, None, "pattern checks passed")


def _compile(pattern: str | None, flags: int | re.RegexFlag, field: str) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise ConfigError(f"invalid regular expression {pattern!r}: {exc}", field=field) from exc
