"""The offline serving demo: the shipped policy over a fake model server, called with the SDK."""

from __future__ import annotations

from pathlib import Path

import httpx2
import openai
import pytest

from paxis_router.cli._serve_offline import OFFLINE_KEY, OFFLINE_POLICY, offline_server
from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.proxy import create_app


async def test_the_offline_policy_serves_answers_escalates_and_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the policy's ledger and audit log are relative to it
    with offline_server("127.0.0.1", 8080) as (router, settings, lines):
        assert lines[0] == (
            "paxis serve --demo: offline, on http://127.0.0.1:8080/v1 (model paxis/auto), "
            f"API key {OFFLINE_KEY}"
        )
        assert f"policy: {OFFLINE_POLICY}" in lines[1]
        app = create_app(router, settings)
        async with httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://paxis.test"
        ) as http:
            client = openai.AsyncOpenAI(
                base_url="http://paxis.test/v1", api_key=OFFLINE_KEY, http_client=http
            )
            raw = await client.chat.completions.with_raw_response.create(
                model="paxis/auto", messages=[{"role": "user", "content": "What is 17 * 3?"}]
            )
            assert raw.parse().choices[0].message.content == "17 * 3 = 51"
            assert raw.headers["x-paxis-tier"] == "local:offline-worker"
            raw = await client.chat.completions.with_raw_response.create(
                model="paxis/auto", messages=[{"role": "user", "content": "Capital of France?"}]
            )
            answer = raw.parse().choices[0].message.content
            assert answer == "(the offline frontier model) You asked: Capital of France?"
            assert raw.headers["x-paxis-tier"] == "frontier:offline-gpt-4o"
            assert raw.headers["x-paxis-escalated"] == "true"
            with pytest.raises(openai.AuthenticationError):
                await openai.AsyncOpenAI(
                    base_url="http://paxis.test/v1", api_key="wrong", http_client=http
                ).chat.completions.create(
                    model="paxis/auto", messages=[{"role": "user", "content": "1 + 1"}]
                )
        await router.aclose()
    with SQLiteLedger(tmp_path / "paxis-offline-ledger.db") as ledger:
        rows = ledger.rows()
    assert [(r.tier, r.team, str(r.decision)) for r in rows] == [
        ("local:offline-worker", "demo", "accept"),
        ("local:offline-worker", "demo", "escalate"),
        ("frontier:offline-gpt-4o", "demo", "accept"),
    ]
    assert all(r.cost_usd is not None and r.cost_usd > 0 for r in rows)  # both tiers priced
    assert (tmp_path / "paxis-offline-audit.jsonl").is_file()


def test_paxis_serve_demo_listens_and_answers_the_sdk(tmp_path: Path) -> None:
    import re
    import subprocess
    import sys

    server = subprocess.Popen(  # --port 0: any free port, and the first line says which
        [sys.executable, "-m", "paxis_router", "serve", "--demo", "--port", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        listening = re.search(r"on http://127\.0\.0\.1:(\d+)/v1", first)
        assert listening is not None, first
        port = int(listening[1])
        assert port != 0
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=OFFLINE_KEY, max_retries=8
        )
        answer = client.chat.completions.create(
            model="paxis/auto", messages=[{"role": "user", "content": "What is 17 * 3?"}]
        )
        assert answer.choices[0].message.content == "17 * 3 = 51"
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        assert server.stdout is not None
        server.stdout.close()
