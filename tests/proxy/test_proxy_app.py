"""The proxy app in-process: the official openai client over an ASGI transport (wire compatible)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx2
import openai
import pytest
from starlette.applications import Starlette

from paxis_router import Router, SQLiteLedger, TokenPrice
from paxis_router.errors import BudgetExceeded, PolicyDenied
from paxis_router.proxy import AdminKey, ProxySettings, TeamKey, create_app, hash_key
from paxis_router.testing import FakeVerifier, FakeWorker, FunctionWorker
from paxis_router.types import ChatRequest, Completion

KEY_CLAIMS = "pxs-claims-test-key"
KEY_SEARCH = "pxs-search-test-key"
KEY_STREAMER = "pxs-streamer-test-key"
KEY_ADMIN = "pxs-admin-test-key"
ADMIN = {"authorization": f"Bearer {KEY_ADMIN}"}
SETTINGS = ProxySettings(
    keys=(
        TeamKey(team="claims", key_sha256=hash_key(KEY_CLAIMS)),
        TeamKey(team="search", key_sha256=hash_key(KEY_SEARCH), data_class="public"),
        TeamKey(team="claims", key_sha256=hash_key(KEY_STREAMER), passthrough=True),
    ),
    admin_keys=(AdminKey(name="prometheus", key_sha256=hash_key(KEY_ADMIN)),),
    max_body_bytes=4096,
)
BASE = "http://paxis.test/v1"
MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is 6*7?"}
]


def _ladder(tmp_path: Path, local: list[str], verdicts: list[bool]) -> tuple[Router, SQLiteLedger]:
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    router = Router(
        tiers=[
            FakeWorker(local, name="local:w", price=TokenPrice.per_million("0.1", "0.1")),
            FakeWorker(["42"], name="frontier:f", price=TokenPrice.per_million("2.5", "10")),
        ],
        verifiers=[FakeVerifier(verdicts)],
        ledger=ledger,
    )
    return router, ledger


@pytest.fixture
def ladder(tmp_path: Path) -> tuple[Router, SQLiteLedger]:
    """Worker answers badly (rejected), frontier answers well."""
    return _ladder(tmp_path, ["no idea"], [False, True])


@pytest.fixture
async def http(ladder: tuple[Router, SQLiteLedger]) -> AsyncIterator[httpx2.AsyncClient]:
    app = create_app(ladder[0], SETTINGS)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://paxis.test"
    ) as client:
        yield client


def _client(http: httpx2.AsyncClient, key: str = KEY_CLAIMS) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=BASE, api_key=key, http_client=http, max_retries=0)


async def test_completion_escalates_and_reports_paid_usage_and_headers(
    http: httpx2.AsyncClient, ladder: tuple[Router, SQLiteLedger]
) -> None:
    client = _client(http)
    raw = await client.chat.completions.with_raw_response.create(
        model="paxis/auto", messages=MESSAGES
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "42"
    assert completion.choices[0].finish_reason == "stop"
    # FakeWorker bills words: 3 prompt words on each of two attempts, 2 + 1 answer words.
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (6, 3)
    assert raw.headers["x-paxis-tier"] == "frontier:f"
    assert raw.headers["x-paxis-escalated"] == "true"
    expected = Decimal("0.1e-6") * 5 + Decimal("2.5e-6") * 3 + Decimal("10e-6") * 1
    assert Decimal(raw.headers["x-paxis-cost-usd"]) == expected
    assert float(raw.headers["x-paxis-overhead-ms"]) >= 0.0
    rows = ladder[1].rows()
    assert [r.tier for r in rows] == ["local:w", "frontier:f"]
    assert {r.team for r in rows} == {"claims"}
    assert {r.route_id for r in rows} == {raw.headers["x-paxis-route-id"]}


async def test_team_and_data_class_come_from_the_key_not_the_body(
    http: httpx2.AsyncClient, ladder: tuple[Router, SQLiteLedger]
) -> None:
    client = _client(http, KEY_SEARCH)
    with pytest.raises(openai.BadRequestError, match=r"metadata\.team cannot be set") as err:
        await client.chat.completions.create(
            model="paxis/auto", messages=MESSAGES, metadata={"team": "claims", "data_class": "x"}
        )
    assert err.value.param == "metadata.team"
    assert ladder[1].count() == 0
    await client.chat.completions.create(
        model="paxis/auto", messages=MESSAGES, metadata={"project": "renewals"}
    )
    rows = ladder[1].rows()
    assert {(r.team, r.data_class) for r in rows} == {("search", "public")}


async def test_stream_is_the_verified_answer_with_usage(http: httpx2.AsyncClient) -> None:
    client = _client(http)
    stream = await client.chat.completions.create(
        model="paxis/auto",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    text = ""
    finish: list[str | None] = []
    usage = None
    async for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish.append(choice.finish_reason)
        usage = chunk.usage or usage
    assert text == "42"
    assert finish[-1] == "stop"
    assert usage is not None
    assert usage.total_tokens == 9


async def test_long_stream_arrives_in_several_chunks_ending_with_done(tmp_path: Path) -> None:
    answer = " ".join(f"word{i}" for i in range(60))
    router = Router(tiers=[FakeWorker([answer], name="local:w")])
    app = create_app(router, ProxySettings(anonymous_team="dev"))
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://paxis.test"
    ) as http:
        body = {"model": "paxis/auto", "messages": MESSAGES, "stream": True}
        response = await http.post("/v1/chat/completions", json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in response.text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    deltas = [json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1]]
    assert len(deltas) > 3
    assert "".join(deltas) == answer


@pytest.mark.parametrize(
    ("key", "code"),
    [(None, "missing_api_key"), ("pxs-wrong", "invalid_api_key"), ("", "invalid_api_key")],
)
async def test_missing_or_wrong_key_is_401_in_openai_shape(
    http: httpx2.AsyncClient, key: str | None, code: str
) -> None:
    headers = {} if key is None else {"authorization": f"Bearer {key}"}
    response = await http.post(
        "/v1/chat/completions", json={"model": "paxis/auto", "messages": MESSAGES}, headers=headers
    )
    assert response.status_code == 401
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code


async def test_wrong_key_raises_authentication_error_in_the_sdk(http: httpx2.AsyncClient) -> None:
    with pytest.raises(openai.AuthenticationError, match="incorrect API key"):
        await _client(http, "pxs-nope").chat.completions.create(
            model="paxis/auto", messages=MESSAGES
        )


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'{"model": "paxis/auto"}', 400, "'messages' is required"),
        (b'{"model": "paxis/auto", "messages": []}', 400, "'messages' is required"),
        (b'{"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}', 400, "unknown"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "'model' is required"),
        (b'{"model": "paxis/auto", "messages": [{"role": "bot", "content": "x"}]}', 400, "role"),
        (b'{"model": "paxis/auto", "messages": [{"role": "user"}], "n": 3}', 400, "n=1"),
        (
            b'{"model": "paxis/auto", "messages": [{"role": "user", "content": "x"}], '
            b'"max_tokens": -1}',
            400,
            "max_tokens",
        ),
        (b'{"model": "paxis/auto", "pad": "' + b"x" * 5000 + b'"}', 413, "4096 bytes"),
    ],
)
async def test_bad_requests_are_4xx_never_500(
    http: httpx2.AsyncClient, body: bytes, status: int, message: str
) -> None:
    response = await http.post(
        "/v1/chat/completions",
        content=body,
        headers={"authorization": f"Bearer {KEY_CLAIMS}", "content-type": "application/json"},
    )
    assert response.status_code == status
    assert message in response.json()["error"]["message"]
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_chunked_body_over_the_limit_is_413(http: httpx2.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    response = await http.post(
        "/v1/chat/completions",
        content=chunks(),
        headers={"authorization": f"Bearer {KEY_CLAIMS}"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


async def test_text_parts_are_joined_and_images_reach_the_tier(tmp_path: Path) -> None:
    seen: list[tuple[str, bool]] = []

    def echo(request: ChatRequest, skill: object) -> str:
        seen.append((request.messages[-1].text, request.has_images))
        return "ok"

    app = create_app(Router(tiers=[FunctionWorker(echo)]), ProxySettings(anonymous_team="dev"))
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://paxis.test"
    ) as http:
        parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
        text = await http.post(
            "/v1/chat/completions",
            json={"model": "paxis/auto", "messages": [{"role": "user", "content": parts}]},
        )
        image = [{"type": "image_url", "image_url": {"url": "http://x"}}]
        with_image = await http.post(
            "/v1/chat/completions",
            json={"model": "paxis/auto", "messages": [{"role": "user", "content": image}]},
        )
        audio = [{"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]
        with_audio = await http.post(
            "/v1/chat/completions",
            json={"model": "paxis/auto", "messages": [{"role": "user", "content": audio}]},
        )
    assert (text.status_code, with_image.status_code) == (200, 200)
    assert seen == [("ab", False), ("", True)]
    assert with_audio.status_code == 400
    assert with_audio.json()["error"]["param"] == "messages[0].content[0].type"


def _raising_app(exc: Exception) -> Starlette:
    def boom(request: ChatRequest, skill: object) -> str:
        raise exc

    return create_app(Router(tiers=[FunctionWorker(boom)]), ProxySettings(anonymous_team="dev"))


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (PolicyDenied("restricted data may not leave", rule_id="r1"), 403, "policy_denied"),
        (BudgetExceeded("monthly budget spent", team="dev"), 429, "budget_exceeded"),
        (RuntimeError("a bug"), 500, None),
    ],
)
async def test_router_errors_map_to_status_codes(exc: Exception, status: int, code: str) -> None:
    app = _raising_app(exc)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://paxis.test"
    ) as http:
        response = await http.post(
            "/v1/chat/completions", json={"model": "paxis/auto", "messages": MESSAGES}
        )
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert "Traceback" not in response.text


async def test_exhausted_ladder_is_502_and_not_retried_by_the_sdk(tmp_path: Path) -> None:
    router, ledger = _ladder(tmp_path, ["no"], [False])
    app = create_app(router, SETTINGS)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://paxis.test"
    ) as http:
        client = openai.AsyncOpenAI(base_url=BASE, api_key=KEY_CLAIMS, http_client=http)
        with pytest.raises(openai.APIStatusError, match="no tier gave an acceptable answer") as err:
            await client.chat.completions.create(model="paxis/auto", messages=MESSAGES)
    assert err.value.status_code == 502
    assert err.value.response.headers["x-should-retry"] == "false"
    # max_retries defaults to 2, yet one route ran: two attempts, both in the ledger.
    assert ledger.count() == 2


async def test_models_lists_one_model_per_route_and_health(tmp_path: Path) -> None:
    routes = {
        "paxis/auto": Router(tiers=[FakeWorker(["a"])]),
        "paxis/cheap": Router(tiers=[FakeWorker(["b"])]),
    }
    app = create_app(routes, SETTINGS)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://paxis.test"
    ) as http:
        models = await _client(http).models.list()
        health = await http.get("/healthz")
        cheap = await _client(http).chat.completions.create(model="paxis/cheap", messages=MESSAGES)
        missing = await http.get("/v2/nothing")
    assert sorted(m.id for m in models.data) == ["paxis/auto", "paxis/cheap"]
    assert health.json() == {"status": "ok", "routes": ["paxis/auto", "paxis/cheap"]}
    assert cheap.choices[0].message.content == "b"
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "invalid_request_error"


async def test_metrics_count_requests_escalations_spend_and_latency(
    http: httpx2.AsyncClient,
) -> None:
    client = _client(http)
    await client.chat.completions.create(model="paxis/auto", messages=MESSAGES)
    await http.post("/v1/chat/completions", content=b"{", headers={"authorization": "Bearer x"})
    text = (await http.get("/metrics", headers=ADMIN)).text
    lines = set(text.splitlines())
    assert 'paxis_requests_total{route="paxis/auto",team="claims",status="200"} 1' in lines
    assert 'paxis_requests_total{route="-",team="-",status="401"} 1' in lines
    assert 'paxis_escalations_total{route="paxis/auto",team="claims"} 1' in lines
    assert 'paxis_spend_usd_total{tier="frontier:f",team="claims"} 0.000018' in lines
    assert 'paxis_request_latency_seconds_count{route="paxis/auto"} 1' in lines
    assert 'paxis_request_latency_seconds_count{route="-"} 1' in lines
    assert 'paxis_overhead_seconds_count{route="paxis/auto"} 1' in lines
    assert "# TYPE paxis_request_latency_seconds histogram" in lines


async def test_passthrough_header_serves_the_first_tier_unverified(
    http: httpx2.AsyncClient, ladder: tuple[Router, SQLiteLedger]
) -> None:
    client = _client(http, KEY_STREAMER)
    raw = await client.chat.completions.with_raw_response.create(
        model="paxis/auto", messages=MESSAGES, extra_headers={"x-paxis-passthrough": "1"}
    )
    assert raw.parse().choices[0].message.content == "no idea"
    assert raw.headers["x-paxis-passthrough"] == "true"
    assert raw.headers["x-paxis-tier"] == "local:w"
    # 5 words at $0.1 per million = $0.0000005, shown to 6 places (half to even), never in
    # exponent notation.
    assert raw.headers["x-paxis-cost-usd"] == "0.000000"
    rows = ladder[1].rows()
    assert [(r.tier, r.decision.value, r.team) for r in rows] == [("local:w", "accept", "claims")]


async def test_passthrough_route_option_requires_a_route_without_verifiers(
    ladder: tuple[Router, SQLiteLedger],
) -> None:
    from paxis_router.errors import ConfigError

    with pytest.raises(ConfigError, match="skip the verifiers"):
        create_app(ladder[0], ProxySettings(passthrough_stream=True))


async def test_team_in_flight_limit_is_429(tmp_path: Path) -> None:
    import asyncio

    gate = asyncio.Event()
    entered = asyncio.Event()

    async def wait(request: ChatRequest, skill: object) -> str:
        entered.set()
        await gate.wait()
        return "done"

    settings = ProxySettings(
        keys=(TeamKey(team="claims", key_sha256=hash_key(KEY_CLAIMS), max_in_flight=1),)
    )
    app = create_app(Router(tiers=[FunctionWorker(wait)]), settings)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://paxis.test"
    ) as http:
        client = _client(http)
        first = asyncio.ensure_future(
            client.chat.completions.create(model="paxis/auto", messages=MESSAGES)
        )
        await entered.wait()
        with pytest.raises(openai.RateLimitError, match="max_in_flight"):
            await client.chat.completions.create(model="paxis/auto", messages=MESSAGES)
        gate.set()
        assert (await first).choices[0].message.content == "done"


def _sse_events(text: str) -> list[str]:
    return [block[6:] for block in text.split("\n\n") if block.startswith("data: ")]


async def test_passthrough_stream_relays_the_workers_tokens_as_they_come(tmp_path: Path) -> None:
    router, ledger = _ladder(tmp_path, ["alpha beta gamma"], [False, True])
    body = {
        "model": "paxis/auto",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=create_app(router, SETTINGS)),
        base_url="http://paxis.test",
    ) as http:
        response = await http.post(
            "/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {KEY_STREAMER}", "x-paxis-passthrough": "1"},
        )
        metrics = (await http.get("/metrics", headers=ADMIN)).text
    assert response.headers["x-paxis-passthrough"] == "true"
    assert response.headers["x-paxis-tier"] == "local:w"
    events = _sse_events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    # One delta per worker token (FakeWorker streams word by word), then the closing chunk.
    assert deltas == ["alpha ", "beta ", "gamma", None]
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}
    rows = ledger.rows()
    assert [(r.tier, r.decision.value, r.team, r.completion_tokens) for r in rows] == [
        ("local:w", "accept", "claims", 3)
    ]
    assert 'paxis_requests_total{route="paxis/auto",team="claims",status="200"} 1' in metrics


async def test_passthrough_stream_failing_before_any_token_is_an_http_error(
    tmp_path: Path,
) -> None:
    from paxis_router.errors import WorkerUnavailable

    down = WorkerUnavailable("connection refused", worker="local:w", transient=False)
    router = Router(tiers=[FakeWorker([down], name="local:w"), FakeWorker(["x"], name="f")])
    app = create_app(router, ProxySettings(anonymous_team="dev", allow_passthrough_header=True))
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://paxis.test"
    ) as http:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "paxis/auto", "messages": MESSAGES, "stream": True},
            headers={"x-paxis-passthrough": "1"},
        )
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "escalation_exhausted"


class _BreaksMidStream:
    """A streaming worker that sends one token and then loses its backend."""

    name = "local:flaky"
    model = "flaky"

    async def complete(self, request: ChatRequest, skill: object) -> Completion:
        raise AssertionError("passthrough streams; complete() is not called")

    async def stream(self, request: ChatRequest, skill: object) -> AsyncIterator[str | Completion]:
        from paxis_router.errors import WorkerUnavailable

        yield "partial "
        raise WorkerUnavailable("connection reset", worker=self.name)


async def test_passthrough_stream_failing_mid_stream_ends_with_an_error_event(
    tmp_path: Path,
) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    router = Router(tiers=[_BreaksMidStream()], ledger=ledger)
    app = create_app(router, ProxySettings(anonymous_team="dev", passthrough_stream=True))
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://paxis.test"
    ) as http:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "paxis/auto", "messages": MESSAGES, "stream": True},
        )
    events = _sse_events(response.text)
    assert json.loads(events[0])["choices"][0]["delta"]["content"] == "partial "
    error = json.loads(events[1])["error"]
    assert error["code"] == "escalation_exhausted"
    assert f"request {response.headers['x-request-id']}" in error["message"]
    assert events[-1] == "[DONE]"
    assert [(r.error_type, r.team) for r in ledger.rows()] == [("WorkerUnavailable", "dev")]


async def test_passthrough_stream_of_a_worker_that_cannot_stream_sends_its_answer(
    tmp_path: Path,
) -> None:
    router = Router(tiers=[FunctionWorker(lambda request, skill: "whole answer")])
    app = create_app(router, ProxySettings(anonymous_team="dev", passthrough_stream=True))
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://paxis.test"
    ) as http:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "paxis/auto", "messages": MESSAGES, "stream": True},
        )
    chunks = [json.loads(e) for e in _sse_events(response.text)[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "whole answer"
    assert response.headers["x-paxis-passthrough"] == "true"


async def test_a_passthrough_stream_restores_what_the_gate_redacted(tmp_path: Path) -> None:
    from paxis_router.governance.gate import Gate, parse_gate_policy

    policy = parse_gate_policy(
        {"version": "t", "rules": [{"id": "out", "effect": "allow", "pii": "redact"}]}
    )
    worker = FakeWorker(["I will mail <EMAIL_1> today"], name="local:w")
    router = Router(tiers=[worker], gate=Gate(policy), ledger=SQLiteLedger(tmp_path / "l.db"))
    body = {
        "model": "paxis/auto",
        "messages": [{"role": "user", "content": "mail bob@example.com"}],
        "stream": True,
    }
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=create_app(router, SETTINGS)),
        base_url="http://paxis.test",
    ) as http:
        response = await http.post(
            "/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {KEY_STREAMER}", "x-paxis-passthrough": "1"},
        )
    assert response.headers["x-paxis-passthrough"] == "true"
    assert worker.calls[0].query == "mail <EMAIL_1>"  # the tier never saw the address
    chunks = [json.loads(e) for e in _sse_events(response.text)[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "I will mail bob@example.com today"
