"""Proxy settings: hashed keys, constant-time lookup, YAML loading with errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from paxis_router.errors import ConfigError
from paxis_router.proxy import ProxySettings, TeamKey, hash_key, load_proxy_settings, new_key


def test_new_keys_are_random_and_only_their_hash_matches() -> None:
    first, second = new_key(), new_key()
    assert first != second
    assert first.startswith("pxs-")
    assert len(first) == 4 + 43
    settings = ProxySettings(
        keys=(
            TeamKey(team="a", key_sha256=hash_key(first)),
            TeamKey(team="b", key_sha256=hash_key(second)),
        )
    )
    assert [settings.team_for(k) for k in (first, second)] == list(settings.keys)
    assert settings.team_for(hash_key(first)) is None  # the stored hash is not a key


def test_load_proxy_settings_reads_the_proxy_section(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    digest = hash_key("pxs-k")
    path.write_text(
        "proxy:\n"
        "  model: paxis/cheap\n"
        "  max_body_bytes: 2048\n"
        f"  keys: [{{team: ops, key_sha256: '{digest}', max_in_flight: 3}}]\n",
        encoding="utf-8",
    )
    settings = load_proxy_settings(path)
    assert settings.model == "paxis/cheap"
    assert settings.max_body_bytes == 2048
    assert settings.keys == (TeamKey(team="ops", key_sha256=digest, max_in_flight=3),)


def test_a_file_without_a_proxy_section_gives_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert load_proxy_settings(path) == ProxySettings()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a list\n", "must hold a mapping"),
        ("proxy: {max_body_bytes: 0}\n", "proxy.max_body_bytes"),
        ("proxy: {keyz: []}\n", "proxy.keyz"),
        ("proxy: [\n", "cannot read proxy settings"),
    ],
)
def test_bad_settings_name_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as err:
        load_proxy_settings(path)
    assert str(path) in str(err.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read proxy settings"):
        load_proxy_settings(tmp_path / "nope.yaml")
