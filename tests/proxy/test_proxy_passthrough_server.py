"""Passthrough streams on a real uvicorn server in front of the fake upstream (issue 14 item 6):
a client that goes away frees its route's slot at once and leaves a ledger row; the tier's
total deadline bounds the whole stream."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest
import uvicorn

from paxis_router import Router, SQLiteLedger
from paxis_router.proxy import AdminKey, ProxySettings, TeamKey, create_app, hash_key
from paxis_router.testing.upstream import FakeUpstream
from paxis_router.workers.base import Tier
from paxis_router.workers.openai_compat import OpenAICompatWorker
from paxis_router.workers.resilience import Resilience, ResilienceConfig

KEY = "pxs-passthrough-server-key"
KEY_ADMIN = "pxs-passthrough-admin-key"
LONG_ANSWER = " ".join(f"word{i}" for i in range(400))


def _settings(max_concurrent_routes: int | None = 64) -> ProxySettings:
    return ProxySettings(
        keys=(TeamKey(team="ops", key_sha256=hash_key(KEY), passthrough=True),),
        admin_keys=(AdminKey(name="prometheus", key_sha256=hash_key(KEY_ADMIN)),),
        max_concurrent_routes=max_concurrent_routes,
    )


@contextmanager
def serving(router: Router, settings: ProxySettings) -> Iterator[int]:
    """The proxy on uvicorn in a thread on a free loopback port; yields the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        create_app(router, settings), log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not stop"


def _stream_request(port: int) -> socket.socket:
    """A raw client that asks for a passthrough stream (and may then walk away)."""
    body = json.dumps(
        {
            "model": "paxis/auto",
            "stream": True,
            "messages": [{"role": "user", "content": "Tell me a long story"}],
        }
    ).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"Authorization: Bearer {KEY}\r\nx-paxis-passthrough: 1\r\n\r\n"
    )
    client = socket.create_connection(("127.0.0.1", port), timeout=30)
    client.sendall(head.encode() + body)
    return client


def _read_until(client: socket.socket, marker: bytes) -> bytes:
    received = b""
    while marker not in received:
        chunk = client.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_abandoned_streams_free_their_slots_and_are_recorded(tmp_path: Path) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    with FakeUpstream(answer=LONG_ANSWER, trickle_bytes=64, trickle_delay_s=0.02) as upstream:
        # Two streams, as in the issue, on a proxy with room for two routes: one stalls
        # before its first token, one trickles; both clients walk away.
        upstream.inject("stall_after_first_chunk", "slow_trickle")
        worker = OpenAICompatWorker("local:w", "w", upstream.base_url, timeout_s=60)
        router = Router(tiers=[worker], ledger=ledger)
        with serving(router, _settings(max_concurrent_routes=2)) as port:
            stalled = _stream_request(port)
            assert upstream.wait_for_requests(1)
            trickling = _stream_request(port)
            assert b'"content": "word0' in _read_until(trickling, b'"content": "word0')
            stalled.close()
            trickling.close()
            # Both slots must come free: two more routes at once, each needs one.
            client = openai.OpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0, timeout=20
            )
            with httpx.Client(timeout=20) as http:

                def ask(i: int) -> str | None:
                    reply = client.chat.completions.create(
                        model="paxis/auto", messages=[{"role": "user", "content": f"q{i}"}]
                    )
                    return reply.choices[0].message.content

                results: list[str | None] = []
                threads = [
                    threading.Thread(target=lambda i=i: results.append(ask(i))) for i in range(2)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(timeout=30)
                metrics = http.get(
                    f"http://127.0.0.1:{port}/metrics",
                    headers={"authorization": f"Bearer {KEY_ADMIN}"},
                ).text
    assert results == [LONG_ANSWER, LONG_ANSWER]
    abandoned = [r for r in ledger.rows() if r.finish_reason == "client_disconnected"]
    assert len(abandoned) == 2
    assert {(r.decision.value, r.passed, r.team, r.tier) for r in abandoned} == {
        ("stop", False, "ops", "local:w")
    }
    assert {r.verdicts[0].verifier for r in abandoned} == {"proxy:client_stayed"}
    assert 'paxis_requests_total{route="paxis/auto",team="ops",status="499"} 2' in metrics
    assert 'paxis_requests_total{route="paxis/auto",team="ops",status="200"} 2' in metrics


@pytest.mark.parametrize("stream_phase", ["before-first-token", "mid-stream"])
def test_the_tiers_total_deadline_bounds_a_passthrough_stream(
    tmp_path: Path, stream_phase: str
) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    fault = "stall_after_first_chunk" if stream_phase == "before-first-token" else "slow_trickle"
    with FakeUpstream(answer=LONG_ANSWER, trickle_bytes=64, trickle_delay_s=0.02) as upstream:
        upstream.inject(fault)
        worker = OpenAICompatWorker("local:w", "w", upstream.base_url, timeout_s=60)
        guard = Resilience(ResilienceConfig(total_timeout_s=1.0, max_attempts=1))
        router = Router(tiers=[Tier(worker, resilience=guard)], ledger=ledger)
        with serving(router, _settings()) as port, httpx.Client(timeout=30) as http:
            response = http.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                json={
                    "model": "paxis/auto",
                    "stream": True,
                    "messages": [{"role": "user", "content": "Tell me a long story"}],
                },
                headers={"authorization": f"Bearer {KEY}", "x-paxis-passthrough": "1"},
            )
    if stream_phase == "before-first-token":
        assert response.status_code == 502
        error = response.json()["error"]
    else:
        assert response.status_code == 200
        events = [b[6:] for b in response.text.split("\n\n") if b.startswith("data: ")]
        assert json.loads(events[0])["choices"][0]["delta"]["content"] == "word0"
        assert events[-1] == "[DONE]"
        error = json.loads(events[-2])["error"]
        assert len(events) < 300  # cut short, far from the 400 words
    assert error["code"] == "escalation_exhausted"
    assert "local:w: failed (WorkerTimeout)" in error["message"]
    (row,) = ledger.rows()
    assert row.error_type == "WorkerTimeout"
    assert row.error is not None
    assert "total deadline of 1.0 s" in row.error
