"""Scrub credentials out of free text before it leaves the process (error bodies, logs).

A verifier's reason, an upstream's error message or a script's output is free text: it may
quote an API key, a bearer token, an AWS key or a private key it saw. ``scrub_secrets`` replaces
each such span with ``[REDACTED]`` and bounds the length, so that the text can go into an HTTP
error body or a log line.

What is recognised: provider API keys (``sk-...``, ``sk-ant-...``, ``pxs-...``, ``AIza...``,
GitHub ``ghp_...``, Slack ``xox.-...``), ``Bearer``/``Basic`` credentials, AWS access key ids
and secret keys, PEM private-key blocks, JSON Web Tokens, ``key=value`` pairs whose key names a
secret (``api_key``, ``password``, ``token``, ``secret`` ...), and any long unbroken run of
token characters that mixes letters and digits (32 or more), which is how most secrets look.
It errs toward redacting too much: a long hash in the text is redacted too.

Example:
    >>> scrub_secrets("upstream said: invalid key sk-proj-abc123def456ghi789jkl0", max_chars=200)
    'upstream said: invalid key [REDACTED]'
    >>> scrub_secrets("x" * 50, max_chars=10)
    'xxxxxxxxxx… [40 more characters]'
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "scrub_secrets"]

REDACTED = "[REDACTED]"

# A text longer than this many times max_chars is cut before scrubbing (bounded work).
_WORK_FACTOR = 8

_TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_=.-"
_PEM = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----"
    r".*?(?:-----END [A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----|\Z)",
    re.DOTALL,
)
_AUTH_HEADER = re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=:-]{8,}")
# key=value or "key": "value" where the key names a secret (OPENAI_API_KEY=..., "password": ...).
_NAMED = re.compile(
    r"""(?ix)
    ((?<![A-Za-z0-9])
     (?:api[_-]?key|apikey|secret|password|passwd|token|credentials?|private[_-]?key)
     \b["']?\s*[:=]\s*["']?)
    (?!(?:bearer|basic)\b)
    ([^\s"',;&}\[][^\s"',;&}]{3,})
    """
)
_PATTERNS: tuple[re.Pattern[str], ...] = (
    # Provider keys with a known prefix (OpenAI sk-/sk-proj-, Anthropic sk-ant-, paxis pxs-).
    re.compile(r"\b(?:sk|pxs|rk|pk)-[A-Za-z0-9_-]{12,}"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{30,}"),  # Google API keys
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"),  # GitHub tokens
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{30,}"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),  # Slack tokens
    re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"),  # AWS key ids
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWTs
)
# A long run of token characters with both letters and digits: most secrets look like this.
_LONG_TOKEN = re.compile(
    r"(?<![A-Za-z0-9+/_=-])(?=[A-Za-z0-9+/_=-]*\d)(?=[A-Za-z0-9+/_=-]*[A-Za-z])[A-Za-z0-9+/_=-]{32,}"
)


def scrub_secrets(text: str, *, max_chars: int) -> str:
    """``text`` with credentials replaced by ``[REDACTED]``, cut to ``max_chars`` characters.

    Args:
        text: free text from outside (a verifier's reason, an upstream's error message).
        max_chars: the longest result (not counting the ``… [N more characters]`` note that a
            cut text ends with); at least 1.

    Returns:
        The scrubbed, bounded text. Scrubbing runs before the cut, so a secret that straddles
        the cut is still redacted.

    Example:
        >>> scrub_secrets("Authorization: Bearer abc.def-123456789", max_chars=100)
        'Authorization: Bearer [REDACTED]'
        >>> scrub_secrets("db password=hunter2!", max_chars=100)
        'db password=[REDACTED]'
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    limit = max(max_chars * _WORK_FACTOR, 4096)
    dropped = 0
    if len(text) > limit:
        # Bound the work; cut at whitespace so that no secret's tail survives the cut unscrubbed.
        cut = text.rfind(" ", 0, limit)
        cut = cut if cut > 0 else limit
        dropped = len(text) - cut
        text = text[:cut]
        if cut == limit:  # no whitespace: the last run may be a secret cut short
            run = len(text) - len(text.rstrip(_TOKEN_CHARS))
            if run >= 8:
                text = text[: len(text) - run] + REDACTED
    text = _PEM.sub(REDACTED, text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _NAMED.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    text = _LONG_TOKEN.sub(REDACTED, text)
    if len(text) > max_chars:
        dropped += len(text) - max_chars
        text = text[:max_chars]
    if dropped:
        text += f"… [{dropped} more characters]"
    return text
