"""Proxy settings: hashed keys, constant-time lookup, YAML loading with errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from paxis_router.errors import ConfigError
from paxis_router.proxy import ProxySettings, TeamKey, hash_key, load_proxy_settings, new_key
from paxis_router.proxy.config import settings_from_mapping


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


def test_keys_may_be_given_as_sha256_hashes_in_the_yaml(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text(
        "proxy:\n"
        "  keys:\n"
        f"    - {{team: ops, key: 'sha256:{hash_key('pxs-ops').upper()}', passthrough: true}}\n"
        f"    - {{team: old, key_sha256: '{hash_key('pxs-old')}'}}\n"
        "  admin_keys:\n"
        f"    - {{name: prometheus, key: 'sha256:{hash_key('pxs-scrape')}'}}\n",
        encoding="utf-8",
    )
    settings = load_proxy_settings(path)
    ops = settings.team_for("pxs-ops")
    assert ops is not None
    assert (ops.team, ops.passthrough) == ("ops", True)
    assert settings.team_for("pxs-old") == TeamKey(team="old", key_sha256=hash_key("pxs-old"))
    admin = settings.admin_for("pxs-scrape")
    assert admin is not None
    assert admin.name == "prometheus"
    # Team keys and admin keys are separate tables.
    assert settings.admin_for("pxs-ops") is None
    assert settings.team_for("pxs-scrape") is None


def test_a_plaintext_key_in_the_config_is_refused_without_being_echoed(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text("proxy:\n  keys: [{team: ops, key: pxs-plain-secret-123}]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"proxy\.keys\.0: .*never the key itself") as err:
        load_proxy_settings(path)
    assert "pxs-plain-secret-123" not in str(err.value)
    assert "pxs-plain-secret-123" not in str(err.value.__cause__)


def test_key_env_hashes_the_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM_BATCH_KEY", "pxs-from-the-environment")
    settings = settings_from_mapping({"keys": [{"team": "batch", "key_env": "TEAM_BATCH_KEY"}]})
    entry = settings.team_for("pxs-from-the-environment")
    assert entry is not None
    assert (entry.team, entry.key_sha256) == ("batch", hash_key("pxs-from-the-environment"))
    monkeypatch.delenv("TEAM_BATCH_KEY")
    with pytest.raises(ConfigError, match=r"\$TEAM_BATCH_KEY, which is not set"):
        settings_from_mapping({"keys": [{"team": "batch", "key_env": "TEAM_BATCH_KEY"}]})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"keys": [{"team": "a"}]}, "give the key exactly once"),
        (
            {"keys": [{"team": "a", "key_sha256": hash_key("k"), "key": "sha256:" + "0" * 64}]},
            "give the key exactly once",
        ),
        (
            {
                "keys": [{"team": "a", "key_sha256": hash_key("k")}],
                "admin_keys": [{"name": "ops", "key_sha256": hash_key("k")}],
            },
            "the same key is configured twice",
        ),
        ({"keys": [{"team": "a", "key": "sha256:abc"}]}, "proxy.keys.0.key_sha256"),
    ],
)
def test_bad_keys_are_config_errors(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_mapping(data)


def test_a_key_is_found_among_ten_thousand_by_its_hash() -> None:
    keys = [f"pxs-team-{i}" for i in range(10_000)]
    settings = ProxySettings(
        keys=tuple(TeamKey(team=f"team{i}", key_sha256=hash_key(k)) for i, k in enumerate(keys))
    )
    found = [settings.team_for(keys[i]) for i in (0, 4_321, 9_999)]
    assert [f.team if f else None for f in found] == ["team0", "team4321", "team9999"]
    assert settings.team_for("pxs-team-10000") is None
    assert settings.team_for(hash_key(keys[0])) is None  # the stored hash is not a key
