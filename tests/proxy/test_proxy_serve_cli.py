"""``paxis serve``: a real process on 127.0.0.1 serving a policy file over fake upstreams."""

from __future__ import annotations

import re
import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest

from paxis_router import SQLiteLedger
from paxis_router.cli import main
from paxis_router.proxy import hash_key
from paxis_router.testing.upstream import FakeUpstream

KEY = "pxs-cli-test-key"
_RUNNING = re.compile(r"running on http://127\.0\.0\.1:(\d+)")


def _policy(tmp_path: Path, worker_url: str, frontier_url: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(
        f"""
tiers:
  - {{kind: local, name: "local:w", model: w, base_url: "{worker_url}",
     usd_per_mtok_in: "0.1", usd_per_mtok_out: "0.1"}}
  - {{kind: local, name: "frontier:f", model: f, base_url: "{frontier_url}",
     usd_per_mtok_in: "2.5", usd_per_mtok_out: "10"}}
verifiers:
  - {{kind: regex, must_match: "[0-9]"}}
policy: {{escalate_when: verdict_failed}}
ledger: {{path: "{tmp_path / "ledger.db"}"}}
proxy:
  model: paxis/auto
  keys:
    - {{team: claims, key_sha256: "{hash_key(KEY)}"}}
""",
        encoding="utf-8",
    )
    return path


@contextmanager
def paxis_serve(policy: Path, *extra: str) -> Iterator[str]:
    """``paxis serve --port 0`` in a subprocess; yields its /v1 URL, stops it after."""
    command = [sys.executable, "-m", "paxis_router", "serve", "--policy", str(policy)]
    proc = subprocess.Popen(
        [*command, "--port", "0", "--log-level", "info", *extra],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    try:
        port = None
        seen: list[str] = []
        while port is None:
            ready, _, _ = select.select([proc.stderr], [], [], 60)
            line = proc.stderr.readline() if ready else ""
            if not line:
                pytest.fail(f"paxis serve did not start: {''.join(seen)}")
            seen.append(line)
            match = _RUNNING.search(line)
            port = int(match.group(1)) if match else None
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stderr.close()


def test_paxis_serve_routes_a_policy_with_team_keys(tmp_path: Path) -> None:
    with (
        FakeUpstream(answer="not sure") as worker,
        FakeUpstream(answer="It is 42") as frontier,
    ):
        policy = _policy(tmp_path, worker.base_url, frontier.base_url)
        with paxis_serve(policy) as base_url:
            client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0)
            raw = client.chat.completions.with_raw_response.create(
                model="paxis/auto", messages=[{"role": "user", "content": "6*7?"}]
            )
            models = client.models.list()
            with pytest.raises(openai.AuthenticationError):
                openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
    assert raw.parse().choices[0].message.content == "It is 42"
    assert raw.headers["x-paxis-tier"] == "frontier:f"
    assert [m.id for m in models.data] == ["paxis/auto"]
    rows = SQLiteLedger(tmp_path / "ledger.db").rows()
    assert [(r.tier, r.team) for r in rows] == [("local:w", "claims"), ("frontier:f", "claims")]


def test_new_key_prints_a_key_and_its_hash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--new-key", "claims"]) == 0
    out = capsys.readouterr().out
    key = re.search(r"(pxs-\S+)", out)
    assert key is not None
    assert f'{{team: claims, key: "sha256:{hash_key(key.group(1))}"}}' in out
    assert f'{{name: claims, key: "sha256:{hash_key(key.group(1))}"}}' in out


def test_serve_without_a_policy_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve"]) == 2
    assert "needs --policy FILE" in capsys.readouterr().err


def test_a_bad_proxy_section_names_the_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        'tiers: [{kind: local, model: w, base_url: "http://127.0.0.1:9/v1"}]\n'
        "proxy: {keys: [{team: a, key_sha256: short}]}\n",
        encoding="utf-8",
    )
    assert main(["serve", "--policy", str(policy)]) == 2
    err = capsys.readouterr().err
    assert f"{policy}: proxy.keys.0.key_sha256:" in err


def test_proxy_config_file_overrides_the_policy_section(tmp_path: Path) -> None:
    from paxis_router.cli.serve import load

    policy = _policy(tmp_path, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1")
    separate = tmp_path / "proxy.yaml"
    separate.write_text("proxy: {model: paxis/other, anonymous_team: lab}\n", encoding="utf-8")
    router, from_policy = load(str(policy), None)
    _, from_file = load(str(policy), str(separate))
    assert [t.name for t in router.tiers] == ["local:w", "frontier:f"]
    assert (from_policy.model, [k.team for k in from_policy.keys]) == ("paxis/auto", ["claims"])
    assert (from_file.model, from_file.keys, from_file.anonymous_team) == ("paxis/other", (), "lab")


def test_paxis_serve_with_two_worker_processes_shares_the_ledger(tmp_path: Path) -> None:
    with FakeUpstream(answer="It is 42") as worker:
        policy = _policy(tmp_path, worker.base_url, worker.base_url)
        with paxis_serve(policy, "--workers", "2") as base_url:
            client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0)
            answers = [
                client.chat.completions.create(
                    model="paxis/auto", messages=[{"role": "user", "content": f"q{i}"}]
                )
                .choices[0]
                .message.content
                for i in range(4)
            ]
    assert answers == ["It is 42"] * 4
    rows = SQLiteLedger(tmp_path / "ledger.db").rows()
    assert [(r.tier, r.team) for r in rows] == [("local:w", "claims")] * 4
