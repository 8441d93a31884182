"""The proxy's own settings: per-team API keys (stored hashed) and request limits.

They live under a ``proxy:`` key of the policy file, or in a file of their own::

    proxy:
      model: paxis/auto            # the model name clients send (GET /v1/models lists it)
      max_body_bytes: 1048576      # larger bodies get 413
      max_concurrent_routes: 64    # routes in flight at once; later requests wait their turn
      passthrough_stream: false    # serve the first tier unverified (routes without verifiers)
      keys:
        - {team: claims, key_sha256: "9f86d08...", max_in_flight: 64}
        - {team: search, key_sha256: "60303ae...", data_class: public}

Only the SHA-256 of each key is stored (keys are random 256-bit tokens, so a salt adds nothing);
``hash_key`` computes it and ``new_key`` makes a fresh key. Presented keys are compared in
constant time against every configured hash.

Example:
    >>> key = "pxs-example"
    >>> settings = ProxySettings(keys=[TeamKey(team="claims", key_sha256=hash_key(key))])
    >>> settings.team_for(key).team, settings.team_for("wrong")
    ('claims', None)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from paxis_router.errors import ConfigError

KEY_PREFIX = "pxs-"


def hash_key(key: str) -> str:
    """The hex SHA-256 of an API key: what the config stores instead of the key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key (``pxs-`` + 43 URL-safe characters, 256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class TeamKey(BaseModel):
    """One API key: the team it bills, and that team's limits.

    ``data_class`` is set on every request made with this key (the client cannot choose it);
    ``max_in_flight`` caps the team's concurrent requests (further ones get 429).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    team: str = Field(min_length=1)
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    data_class: str | None = None
    max_in_flight: int | None = Field(default=None, gt=0)


class ProxySettings(BaseModel):
    """Settings of the OpenAI-compatible endpoint (see the module docstring for the YAML).

    ``anonymous_team`` lets requests without an ``Authorization`` header in, billed to that team
    (for a laptop; leave it unset in production, where a missing key gets 401).
    ``allow_passthrough_header`` lets a client ask for the unverified first-tier stream with
    ``x-paxis-passthrough: 1``. ``max_concurrent_routes`` bounds the routes in flight in
    this process (later requests queue for a slot): it keeps the connections to the workers
    within their pools under a burst of clients; None = unbounded.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(default="paxis/auto", min_length=1)
    keys: tuple[TeamKey, ...] = ()
    anonymous_team: str | None = None
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    max_concurrent_routes: int | None = Field(default=64, gt=0)
    passthrough_stream: bool = False
    allow_passthrough_header: bool = True

    def team_for(self, key: str) -> TeamKey | None:
        """The TeamKey whose hash matches ``key``, or None; constant time in the key's content."""
        digest = hash_key(key)
        found: TeamKey | None = None
        for entry in self.keys:
            # Compare against every entry, without an early exit, so timing reveals nothing.
            if hmac.compare_digest(digest, entry.key_sha256):
                found = entry
        return found


def settings_from_mapping(data: object, *, source: str = "<dict>") -> ProxySettings:
    """Validate a ``proxy:`` mapping; errors name ``source`` and the field."""
    try:
        return ProxySettings.model_validate(data if data is not None else {})
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "proxy." + ".".join(str(p) for p in first["loc"]) if first["loc"] else "proxy"
        raise ConfigError(
            f"{first['msg']}; see the proxy settings in the paxis_router.proxy.config docs",
            source=source,
            field=field,
        ) from exc


def load_proxy_settings(path: str | Path) -> ProxySettings:
    """Read the ``proxy:`` section of a YAML file (defaults when the file has none)."""
    path = Path(path)
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))  # Any: parsed YAML
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read proxy settings: {exc}", source=str(path)) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("the file must hold a mapping", source=str(path))
    return settings_from_mapping(raw.get("proxy"), source=str(path))
