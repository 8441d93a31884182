"""The proxy's own settings: per-team API keys (stored hashed), admin keys and request limits.

They live under a ``proxy:`` key of the policy file, or in a file of their own::

    proxy:
      model: paxis/auto            # the model name clients send (GET /v1/models lists it)
      max_body_bytes: 1048576      # larger bodies get 413
      max_concurrent_routes: 64    # routes in flight at once; later requests wait their turn
      passthrough_stream: false    # serve the first tier unverified (routes without verifiers)
      keys:
        - {team: claims, key: "sha256:9f86d08...", max_in_flight: 64}
        - {team: search, key: "sha256:60303ae...", data_class: public, passthrough: true}
        - {team: batch, key_env: PAXIS_BATCH_KEY}     # the key itself, from the environment
      admin_keys:                  # may read GET /metrics (spend per team); none: it is closed
        - {name: prometheus, key: "sha256:2c26b46..."}

A key is given by its SHA-256 (``key: "sha256:<64 hex>"``, or the older ``key_sha256: <64
hex>``), never in plain text: a config file is not a place for secrets. ``key_env`` names an
environment variable holding the key itself, hashed when the settings are loaded. ``hash_key``
computes the hash and ``new_key`` makes a fresh key (``paxis serve --new-key TEAM`` prints
both). Keys are random 256-bit tokens, so a salt adds nothing and a plain SHA-256 is what
GitHub and Stripe store for theirs.

A presented key is hashed once and looked up in a dict of the configured hashes: constant
time whatever the number of keys (the loop over every key cost 1-3 ms per request at 10,000
keys), and the one match is confirmed with ``hmac.compare_digest``. The lookup's timing can
only tell an attacker about the hash of a key they chose, which says nothing about a real key.

Example:
    >>> key = "pxs-example"
    >>> settings = ProxySettings(keys=[TeamKey(team="claims", key="sha256:" + hash_key(key))])
    >>> settings.team_for(key).team, settings.team_for("wrong")
    ('claims', None)
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from paxis_router.errors import ConfigError

KEY_PREFIX = "pxs-"
HASH_PREFIX = "sha256:"
_HEX64 = r"^[0-9a-f]{64}$"


def hash_key(key: str) -> str:
    """The hex SHA-256 of an API key: what the config stores instead of the key."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key (``pxs-`` + 43 URL-safe characters, 256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class _HashedKey(BaseModel):
    """A key known by its SHA-256: ``key: "sha256:<hex>"``, ``key_sha256`` or ``key_env``."""

    # Inputs may hold a key: never echo them in validation errors.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    key_sha256: str = Field(pattern=_HEX64)
    key_env: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _to_hash(cls, data: Any) -> Any:  # Any: the raw mapping pydantic passes in
        if not isinstance(data, dict):
            return data
        data = dict(data)
        given = [f for f in ("key", "key_sha256", "key_env") if data.get(f) is not None]
        if len(given) != 1:
            raise ValueError(
                "give the key exactly once: key: 'sha256:<hex>' (paxis serve --new-key prints "
                f"it), key_sha256 or key_env; got {given or 'none'}"
            )
        if "key" in data:
            value = data.pop("key")
            if not isinstance(value, str) or not value.startswith(HASH_PREFIX):
                raise ValueError(
                    "key must be the key's hash, 'sha256:<64 hex>', never the key itself; "
                    "'paxis serve --new-key TEAM' prints it, or name an environment variable "
                    "holding the key with key_env"
                )
            data["key_sha256"] = value[len(HASH_PREFIX) :].lower()
        elif data.get("key_env") is not None:
            name = str(data["key_env"])
            value = os.environ.get(name)
            if not value:
                raise ValueError(f"key_env names ${name}, which is not set or is empty")
            data["key_sha256"] = hash_key(value)
        return data


_K = TypeVar("_K", bound=_HashedKey)


class TeamKey(_HashedKey):
    """One API key: the team it bills, and that team's limits.

    ``data_class`` is set on every request made with this key (the client cannot choose it);
    ``max_in_flight`` caps the team's concurrent requests (further ones get 429).
    ``passthrough`` lets this key ask for the first tier's answer unverified with the header
    ``x-paxis-passthrough: 1`` (off by default: the header is ignored and the answer verified).

    Example:
        >>> TeamKey(team="claims", key="sha256:" + "ab" * 32).key_sha256 == "ab" * 32
        True
    """

    team: str = Field(min_length=1)
    data_class: str | None = None
    max_in_flight: int | None = Field(default=None, gt=0)
    passthrough: bool = False


class AdminKey(_HashedKey):
    """A key that may read the operator's endpoints (``GET /metrics``); it bills no team.

    Example:
        >>> AdminKey(name="prometheus", key_sha256=hash_key("pxs-scrape")).name
        'prometheus'
    """

    name: str = Field(min_length=1)


class ProxySettings(BaseModel):
    """Settings of the OpenAI-compatible endpoint (see the module docstring for the YAML).

    ``anonymous_team`` lets requests without an ``Authorization`` header in, billed to that team
    (for a laptop; leave it unset in production, where a missing key gets 401).
    ``allow_passthrough_header`` honours ``x-paxis-passthrough: 1`` for every key and the
    anonymous team (off by default; prefer ``passthrough: true`` on the keys that need it).
    ``passthrough_timeout_s`` bounds a passthrough stream whose tier sets no total deadline of
    its own. ``max_concurrent_routes`` bounds the routes in flight in this process (later
    requests queue for a slot): it keeps the connections to the workers within their pools under
    a burst of clients; None = unbounded. ``admin_keys`` may read ``GET /metrics``; with none,
    ``/metrics`` is closed (it shows spend per team).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    model: str = Field(default="paxis/auto", min_length=1)
    keys: tuple[TeamKey, ...] = ()
    admin_keys: tuple[AdminKey, ...] = ()
    anonymous_team: str | None = None
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    max_concurrent_routes: int | None = Field(default=64, gt=0)
    passthrough_stream: bool = False
    allow_passthrough_header: bool = False
    passthrough_timeout_s: float = Field(default=120.0, gt=0, allow_inf_nan=False)

    _teams: dict[str, TeamKey] = PrivateAttr(default_factory=dict)
    _admins: dict[str, AdminKey] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _unique_keys(self) -> ProxySettings:
        seen: dict[str, str] = {}
        for kind, entries in (("team", self.keys), ("admin", self.admin_keys)):
            for entry in entries:
                owner = f"{kind} {entry.team if isinstance(entry, TeamKey) else entry.name!r}"
                if entry.key_sha256 in seen:
                    raise ValueError(
                        f"the same key is configured twice ({seen[entry.key_sha256]} and "
                        f"{owner}); give each team and each admin its own key"
                    )
                seen[entry.key_sha256] = owner
        return self

    def model_post_init(self, context: Any, /) -> None:  # Any: pydantic's hook signature
        self._teams = {entry.key_sha256: entry for entry in self.keys}
        self._admins = {entry.key_sha256: entry for entry in self.admin_keys}

    def team_for(self, key: str) -> TeamKey | None:
        """The TeamKey whose hash matches ``key``, or None: one dict lookup, any number of keys."""
        return _lookup(self._teams, key)

    def admin_for(self, key: str) -> AdminKey | None:
        """The AdminKey whose hash matches ``key``, or None."""
        return _lookup(self._admins, key)


def _lookup(table: dict[str, _K], key: str) -> _K | None:
    digest = hash_key(key)
    entry = table.get(digest)
    if entry is None or not hmac.compare_digest(entry.key_sha256, digest):
        return None
    return entry


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
