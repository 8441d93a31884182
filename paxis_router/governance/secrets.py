"""Redact secret-looking strings from text that leaves a trust boundary, and bound its length.

Text written by something we do not control (a skill script's verdict reason, an upstream's
error body) may carry a credential: a key pasted into a prompt, an ``Authorization`` header
echoed back, a private key read from a file. Before such text is stored or shown it goes
through :func:`scrub_secrets`, which replaces with ``[REDACTED]``:

- API keys by shape: OpenAI/Anthropic ``sk-…``, paxis ``pxs-…``, Google ``AIza…``, GitHub
  ``ghp_…``/``github_pat_…``, Slack ``xox?-…``, AWS access key ids (``AKIA…``), JSON Web Tokens;
- the credential of ``Bearer …`` / ``Basic …`` and the value of ``password=…``,
  ``"api_key": "…"``, ``client_secret: …`` and the like;
- PEM private keys (a block cut short is redacted to the end of the text);
- long opaque tokens: 32+ hex characters mixing digits and letters, 40+ base64 characters
  mixing upper case, lower case and digits;
- the value of every environment variable whose name contains KEY, TOKEN, SECRET, PASSWORD,
  PASSWD or CREDENTIAL (values of 8 characters or more: shorter ones match too much by chance).

Then the text is cut to ``max_chars`` (redacting first, so no cut ever leaves half a secret).
It is a last line of defence, not a guarantee: a secret of no known shape held in an
unremarkable variable goes through.

Example:
    >>> scrub_secrets("bad key sk-proj-AbCdEf0123456789xyzXYZ", max_chars=100, environ={})
    'bad key [REDACTED]'
    >>> scrub_secrets("x" * 50, max_chars=20, environ={})
    'xxxxxxxx…[truncated]'
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["REDACTED", "scrub_secrets"]

REDACTED = "[REDACTED]"
_TRUNCATED = "…[truncated]"
_MIN_ENV_VALUE_CHARS = 8

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)

# Every pattern runs in linear time on hostile input: runs are matched possessively (``*+``,
# ``{n,}+``) and start only where a run starts, so no text makes a pattern backtrack.
_PEM = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|.*+\Z)",
    re.DOTALL,
)
# Whole-match redactions: a token of a known shape.
_SHAPES = re.compile(
    "|".join(
        (
            r"\bsk-[A-Za-z0-9_-]{16,}+",  # OpenAI, Anthropic (sk-ant-...), sk-proj-...
            r"\bpxs-[A-Za-z0-9_-]{12,}+",  # paxis proxy keys
            r"\bAIza[0-9A-Za-z_-]{30,}+",  # Google API keys
            r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}+",  # GitHub tokens
            r"\bgithub_pat_[A-Za-z0-9_]{20,}+",
            r"\bxox[abposr]-[A-Za-z0-9-]{10,}+",  # Slack
            r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b",  # AWS key ids
            r"\beyJ[A-Za-z0-9_-]{10,}+\.[A-Za-z0-9_-]{10,}+\.[A-Za-z0-9_-]*+",  # JWT
        )
    )
)
# The credential after an HTTP auth scheme.
_CREDENTIAL = re.compile(r"(?i)\b(?:Bearer|Basic)\s++(?P<secret>[A-Za-z0-9._~+/=-]{8,}+)")
# ``name = value`` / ``"name": "value"``: a name run, checked by _redact_assigned.
_ASSIGNED = re.compile(
    r"""(?x)
    (?<![A-Za-z0-9_.-])(?P<name>[A-Za-z0-9_.-]++)["']?+\s*+[:=]\s*+
    (?:"(?P<dq>[^"\n]++)"|'(?P<sq>[^'\n]++)'|(?P<bare>[^\s"',;}\]]++))
    """
)
_SECRET_FIELD = re.compile(
    r"password|passwd|secret|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|auth[_-]?token|access[_-]?token|refresh[_-]?token|credential",
    re.IGNORECASE,
)
_HEX = re.compile(r"(?<![0-9A-Za-z_])[0-9a-fA-F]{32,}+(?![0-9A-Za-z_])")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{40,}+={0,2}")


def scrub_secrets(text: str, *, max_chars: int, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with secret-looking strings replaced by ``[REDACTED]``, then cut to
    ``max_chars`` characters (ending ``…[truncated]`` when cut).

    Args:
        text: the untrusted text.
        max_chars: the most characters returned (0 or more).
        environ: whose secret-named variables' values to redact (default: ``os.environ``,
            read at the call).

    Raises:
        ValueError: ``max_chars`` is negative.

    Example:
        >>> scrub_secrets("Authorization: Bearer abc.def.ghi-123", max_chars=80, environ={})
        'Authorization: Bearer [REDACTED]'
    """
    if max_chars < 0:
        raise ValueError(f"max_chars must be at least 0, got {max_chars}")
    env = os.environ if environ is None else environ
    values = sorted(
        {
            value
            for name, value in env.items()
            if _SECRET_NAME.search(name) and len(value) >= _MIN_ENV_VALUE_CHARS
        },
        key=len,
        reverse=True,
    )
    for value in values:
        text = text.replace(value, REDACTED)
    text = _PEM.sub(REDACTED, text)
    text = _SHAPES.sub(REDACTED, text)
    text = _CREDENTIAL.sub(_redact_group, text)
    text = _ASSIGNED.sub(_redact_assigned, text)
    text = _HEX.sub(_redact_opaque, text)
    text = _BASE64.sub(_redact_opaque, text)
    if len(text) <= max_chars:
        return text
    if max_chars < len(_TRUNCATED):
        return text[:max_chars]
    return text[: max_chars - len(_TRUNCATED)] + _TRUNCATED


def _redact_group(match: re.Match[str]) -> str:
    """The match with its one named group that took part replaced by ``[REDACTED]``."""
    name = next(
        key for key, value in match.groupdict().items() if value is not None and key != "name"
    )
    start, end = match.span(name)
    whole_start = match.start()
    whole = match.group(0)
    return whole[: start - whole_start] + REDACTED + whole[end - whole_start :]


def _redact_assigned(match: re.Match[str]) -> str:
    """Redact the value of an assignment whose name says it holds a secret."""
    if not _SECRET_FIELD.search(match.group("name")):
        return match.group(0)
    return _redact_group(match)


def _redact_opaque(match: re.Match[str]) -> str:
    """Redact a long run of hex or base64 characters only when it looks random: digits and
    letters for hex; upper case, lower case and digits for base64 (paths, words, numbers and
    kebab-case names rarely have them all)."""
    token = match.group(0)
    digits = any(c.isdigit() for c in token)
    letters = [c for c in token if c.isalpha()]
    if not digits or not letters:
        return token
    if all(c in "0123456789abcdefABCDEF" for c in token):
        return REDACTED
    mixed_case = any(c.isupper() for c in letters) and any(c.islower() for c in letters)
    return REDACTED if mixed_case else token
