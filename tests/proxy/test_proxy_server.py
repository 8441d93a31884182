"""The proxy on a real uvicorn server on 127.0.0.1, in front of OpenAI-compatible upstreams on
loopback (the fake upstream): real sockets, concurrency, a client that disconnects."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest
import uvicorn

from paxis_router import Router, SQLiteLedger
from paxis_router.proxy import ProxySettings, TeamKey, create_app, hash_key
from paxis_router.testing.upstream import FakeUpstream
from paxis_router.verifiers.regex import RegexVerifier
from paxis_router.workers.openai_compat import OpenAICompatWorker

KEY = "pxs-server-test-key"
SETTINGS = ProxySettings(keys=(TeamKey(team="ops", key_sha256=hash_key(KEY)),))


@contextmanager
def serving(router: Router) -> Iterator[str]:
    """Run the proxy on uvicorn in a thread on a free loopback port; yields its /v1 URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # listening before uvicorn starts: early clients wait in the backlog
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(router, SETTINGS), log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
    assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    with (
        FakeUpstream(answer="I am not sure", model="worker-model") as worker,
        FakeUpstream(answer="The answer is 42", model="frontier-model") as frontier,
    ):
        yield worker, frontier


def _router(
    upstreams: tuple[FakeUpstream, FakeUpstream], ledger: SQLiteLedger, timeout_s: float = 10.0
) -> Router:
    worker, frontier = upstreams
    return Router(
        tiers=[
            OpenAICompatWorker("local:w", "worker-model", worker.base_url, timeout_s=timeout_s),
            OpenAICompatWorker("frontier:f", "frontier-model", frontier.base_url),
        ],
        verifiers=[RegexVerifier(must_match=r"\d")],
        policy=0.0,
        ledger=ledger,
    )


def test_sync_openai_client_through_uvicorn_escalates(
    upstreams: tuple[FakeUpstream, FakeUpstream], tmp_path: Path
) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    with serving(_router(upstreams, ledger)) as base_url:
        client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model="paxis/auto", messages=[{"role": "user", "content": "What is 6*7?"}]
        )
        chunks = list(
            client.chat.completions.create(
                model="paxis/auto",
                messages=[{"role": "user", "content": "And 40+2?"}],
                stream=True,
            )
        )
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=base_url, api_key="bad", max_retries=0).models.list()
    completion = raw.parse()
    assert completion.choices[0].message.content == "The answer is 42"
    assert raw.headers["x-paxis-tier"] == "frontier:f"
    assert raw.headers["x-paxis-escalated"] == "true"
    # Tokens paid for across attempts: both upstreams' usage blocks added up.
    worker_req, frontier_req = upstreams[0].requests[0], upstreams[1].requests[0]
    assert worker_req["model"] == "worker-model"
    assert frontier_req["model"] == "frontier-model"
    rows = ledger.rows()
    assert completion.usage is not None
    first = [r for r in rows if r.route_id == raw.headers["x-paxis-route-id"]]
    assert completion.usage.prompt_tokens == sum(r.prompt_tokens or 0 for r in first)
    assert completion.usage.completion_tokens == sum(r.completion_tokens or 0 for r in first)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The answer is 42"
    assert len(rows) == 4
    assert {r.team for r in rows} == {"ops"}


async def test_concurrent_clients_each_get_their_own_route(
    upstreams: tuple[FakeUpstream, FakeUpstream], tmp_path: Path
) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    with serving(_router(upstreams, ledger)) as base_url:
        client = openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0)
        responses = await asyncio.gather(
            *(
                client.chat.completions.with_raw_response.create(
                    model="paxis/auto", messages=[{"role": "user", "content": f"question {i}"}]
                )
                for i in range(40)
            )
        )
        await client.close()
    route_ids = {r.headers["x-paxis-route-id"] for r in responses}
    assert len(route_ids) == 40
    assert {r.parse().choices[0].message.content for r in responses} == {"The answer is 42"}
    rows = ledger.rows()
    assert len(rows) == 80
    assert {r.route_id for r in rows} == route_ids


def test_client_disconnect_leaves_the_server_serving_and_the_route_recorded(
    upstreams: tuple[FakeUpstream, FakeUpstream], tmp_path: Path
) -> None:
    upstreams[0].inject("stall")
    ledger = SQLiteLedger(tmp_path / "l.db")
    with serving(_router(upstreams, ledger, timeout_s=1.0)) as base_url:
        impatient = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=0.3)
        with pytest.raises(openai.APITimeoutError):
            impatient.chat.completions.create(
                model="paxis/auto", messages=[{"role": "user", "content": "stall please"}]
            )
        client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0)
        after = client.chat.completions.create(
            model="paxis/auto", messages=[{"role": "user", "content": "still there?"}]
        )
    # Stopping uvicorn waited for the abandoned route: the worker timed out, the frontier answered.
    assert after.choices[0].message.content == "The answer is 42"
    rows = ledger.rows()
    timed_out = [r for r in rows if r.error_type == "WorkerTimeout"]
    assert len(timed_out) == 1
    abandoned = [r for r in rows if r.route_id == timed_out[0].route_id]
    assert [r.tier for r in abandoned] == ["local:w", "frontier:f"]
