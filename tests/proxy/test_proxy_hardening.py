"""The proxy's edge under hostile or broken input (issue 14): error bodies carry no free text
from verifiers or upstreams, bad JSON is a 400 naming the place, a non-Unicode answer is a 502,
/metrics needs an admin key, passthrough needs the key's permission, money is shown rounded."""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import MutableMapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from starlette.applications import Starlette

from paxis_router import Router, SQLiteLedger, TokenPrice
from paxis_router.errors import WorkerUnavailable
from paxis_router.governance.sandbox import Sandbox
from paxis_router.pricing import GpuHourPrice, format_usd
from paxis_router.proxy import AdminKey, ProxySettings, TeamKey, create_app, hash_key
from paxis_router.testing import FakeVerifier, FakeWorker, FunctionWorker
from paxis_router.types import ChatRequest
from paxis_router.verifiers.script import ScriptVerifier

KEY = "pxs-hardening-team-key"
KEY_ADMIN = "pxs-hardening-admin-key"
AUTH = {"authorization": f"Bearer {KEY}"}
SETTINGS = ProxySettings(
    keys=(TeamKey(team="claims", key_sha256=hash_key(KEY)),),
    admin_keys=(AdminKey(name="prometheus", key_sha256=hash_key(KEY_ADMIN)),),
)
LEAKED = "sk-proj-Zq3vT0m9sL2kP8wX1yB4nC7dE5fG6hJ0"
MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is 6*7?"}
]


def _http(app: Starlette) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://paxis.test")


def _client(http: httpx2.AsyncClient) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url="http://paxis.test/v1", api_key=KEY, http_client=http, max_retries=0
    )


# --- item 1: no verifier's or upstream's free text in an error body ---------------------------

LEAKY_CHECK = textwrap.dedent(
    f"""
    import json
    reason = "rejected: the grader's environment had OPENAI_API_KEY={LEAKED} " + "x" * 5000
    print(json.dumps({{"passed": False, "reason": reason}}))
    raise SystemExit(1)
    """
)


@pytest.fixture
def leaky_skill(tmp_path: Path) -> Path:
    if not Sandbox().available():
        if os.environ.get("CI"):
            pytest.fail("bubblewrap must work in CI (.ci/run installs it)")
        pytest.skip("no working bubblewrap here: apt-get install bubblewrap")
    folder = tmp_path / "grader"
    (folder / "scripts").mkdir(parents=True)
    (folder / "scripts" / "check.py").write_text(LEAKY_CHECK)
    return folder


async def test_a_script_verifiers_reason_never_reaches_the_client(
    leaky_skill: Path, tmp_path: Path
) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    verifier = ScriptVerifier(leaky_skill, "scripts/check.py", name="script:grader")
    router = Router(tiers=[FakeWorker(["41"], name="local:w")], verifiers=[verifier], ledger=ledger)
    async with _http(create_app(router, SETTINGS)) as http:
        with pytest.raises(openai.APIStatusError) as err:
            await _client(http).chat.completions.create(model="paxis/auto", messages=MESSAGES)
    response = err.value.response
    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert LEAKED not in response.text
    assert "xxxxxxxxxx" not in response.text
    request_id = response.headers["x-request-id"]
    assert message == (
        f"no tier gave an acceptable answer (request {request_id}): local:w: rejected by "
        f"script:grader. The ledger has each attempt's reason under request_id {request_id}."
    )
    # Where the message points, the reason is.
    (row,) = ledger.rows()
    assert row.request_id == request_id
    assert row.verdicts[0].reason.startswith("rejected: the grader's environment")


async def test_an_upstreams_error_text_never_reaches_the_client() -> None:
    def down(request: ChatRequest, skill: object) -> str:
        raise WorkerUnavailable(
            f"401 from upstream: Incorrect API key provided: {LEAKED}",
            worker="frontier:f",
            transient=False,
        )

    app = create_app(Router(tiers=[FunctionWorker(down, name="frontier:f")]), SETTINGS)
    async with _http(app) as http:
        response = await http.post(
            "/v1/chat/completions", json={"model": "paxis/auto", "messages": MESSAGES}, headers=AUTH
        )
    assert response.status_code == 502
    assert LEAKED not in response.text
    error = response.json()["error"]
    assert error["code"] == "escalation_exhausted"
    assert error["message"].startswith(
        f"no tier could answer (request {response.headers['x-request-id']}): "
        "frontier:f: failed (WorkerUnavailable)."
    )


async def test_a_clients_own_text_echoed_in_an_error_is_scrubbed_and_bounded() -> None:
    app = create_app(Router(tiers=[FakeWorker(["x"])]), SETTINGS)
    async with _http(app) as http:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": f"{LEAKED} " + "m" * 100_000, "messages": MESSAGES},
            headers=AUTH,
        )
    assert response.status_code == 400
    assert LEAKED not in response.text
    assert len(response.json()["error"]["message"]) < 600


# --- item 2: passthrough is the key's privilege -----------------------------------------------


async def test_the_passthrough_header_from_a_key_without_permission_is_ignored(
    tmp_path: Path,
) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    router = Router(
        tiers=[FakeWorker(["no idea"], name="local:w"), FakeWorker(["42"], name="frontier:f")],
        verifiers=[FakeVerifier([False, True])],
        ledger=ledger,
    )
    async with _http(create_app(router, SETTINGS)) as http:
        raw = await _client(http).chat.completions.with_raw_response.create(
            model="paxis/auto", messages=MESSAGES, extra_headers={"x-paxis-passthrough": "1"}
        )
    assert raw.parse().choices[0].message.content == "42"
    assert "x-paxis-passthrough" not in raw.headers
    assert [r.tier for r in ledger.rows()] == ["local:w", "frontier:f"]


def test_passthrough_is_off_unless_configured() -> None:
    settings = ProxySettings()
    assert (settings.allow_passthrough_header, settings.passthrough_stream) == (False, False)
    assert TeamKey(team="t", key_sha256=hash_key("k")).passthrough is False


# --- item 3: bad input is a 400 naming the place, never a 500 ---------------------------------


def _body(extra: str) -> bytes:
    return (
        b'{"model": "paxis/auto", "messages": [{"role": "user", "content": "hi"}]'
        + extra.encode()
        + b"}"
    )


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    ("raw", "param", "message"),
    [
        (
            b'{"model": "paxis/auto", "messages": [{"role": "user", "content": "a\\ud800b"}]}',
            "messages[0].content",
            "lone UTF-16 surrogate",
        ),
        (_body(', "metadata": {"k\\udfff": "v"}'), "metadata.k\ufffd", "lone UTF-16 surrogate"),
        (_body(f', "response_format": {DEEP}'), None, "deeper than 64 levels"),
        (
            _body(', "response_format": {"a": ' + "[" * 70 + "]" * 70 + "}"),
            "response_format",
            "deeper than 64 levels",
        ),
        (_body(', "temperature": Infinity'), "temperature", "Infinity is not a finite number"),
        (
            _body(', "response_format": {"type": "json_object", "x": NaN}'),
            "response_format.x",
            "NaN is not a finite number",
        ),
        (_body(f', "max_tokens": {10**30}'), "max_tokens", "less than or equal to"),
        (_body(f', "max_completion_tokens": {10**30}'), "max_completion_tokens", "less than"),
        (_body(', "temperature": 1e999'), "temperature", "Infinity is not a finite number"),
    ],
    ids=[
        "surrogate",
        "surrogate-key",
        "100k-deep",
        "70-deep",
        "infinity",
        "nan",
        "max-tokens",
        "max-completion-tokens",
        "overflow",
    ],
)
async def test_malformed_values_are_400_naming_the_param(
    raw: bytes, param: str | None, message: str
) -> None:
    app = create_app(Router(tiers=[FakeWorker(["x"])]), SETTINGS)
    async with _http(app) as http:
        response = await http.post(
            "/v1/chat/completions",
            content=raw,
            headers={**AUTH, "content-type": "application/json"},
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert message in error["message"]


@pytest.mark.parametrize("stream", [False, True])
async def test_an_answer_that_is_not_unicode_is_a_502_in_openai_shape(
    stream: bool, tmp_path: Path
) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    worker = FunctionWorker(lambda request, skill: "broken \ud800 text", name="local:w")
    app = create_app(Router(tiers=[worker], ledger=ledger), SETTINGS)
    async with _http(app) as http:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "paxis/auto", "messages": MESSAGES, "stream": stream},
            headers=AUTH,
        )
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "invalid_upstream_answer"
    assert f"request {response.headers['x-request-id']}" in error["message"]
    assert ledger.count() == 1


async def test_a_client_gone_mid_body_is_a_quiet_499(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Router(tiers=[FakeWorker(["x"])]), SETTINGS)
    parts: list[dict[str, Any]] = [  # Any: ASGI messages
        {"type": "http.request", "body": b'{"model": "paxis/auto", "mess', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[MutableMapping[str, Any]] = []  # Any: ASGI messages

    async def receive() -> dict[str, Any]:  # Any: ASGI messages
        return parts.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:  # Any: ASGI messages
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", f"Bearer {KEY}".encode()), (b"content-length", b"999")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8080),
    }
    with caplog.at_level(logging.DEBUG, logger="paxis_router"):
        await app(scope, receive, send)
    assert sent[0]["status"] == 499
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    async with _http(app) as http:
        metrics = await http.get("/metrics", headers={"authorization": f"Bearer {KEY_ADMIN}"})
    lines = metrics.text.splitlines()
    assert 'paxis_requests_total{route="-",team="claims",status="499"} 1' in lines
    assert not [line for line in lines if 'status="500"' in line]


# --- item 3: /metrics is the operator's ------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "headers", "status", "code"),
    [
        (ProxySettings(anonymous_team="dev"), {}, 403, "admin_only"),
        (SETTINGS, {}, 401, "invalid_api_key"),
        (SETTINGS, AUTH, 401, "invalid_api_key"),  # a team key is not an admin key
        (SETTINGS, {"authorization": f"Bearer {KEY_ADMIN}"}, 200, None),
    ],
    ids=["closed-by-default", "no-key", "team-key", "admin-key"],
)
async def test_metrics_need_an_admin_key(
    settings: ProxySettings, headers: dict[str, str], status: int, code: str | None
) -> None:
    app = create_app(Router(tiers=[FakeWorker(["x"])]), settings)
    async with _http(app) as http:
        response = await http.get("/metrics", headers=headers)
    assert response.status_code == status
    if code is None:
        assert "# TYPE paxis_spend_usd_total counter" in response.text
    else:
        assert response.json()["error"]["code"] == code
        assert "paxis_spend" not in response.text


async def test_an_admin_key_bills_no_team() -> None:
    app = create_app(Router(tiers=[FakeWorker(["x"])]), SETTINGS)
    async with _http(app) as http:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "paxis/auto", "messages": MESSAGES},
            headers={"authorization": f"Bearer {KEY_ADMIN}"},
        )
    assert response.status_code == 401


# --- item 6: money is shown rounded ----------------------------------------------------------


async def test_cost_header_and_metrics_show_money_rounded_ledger_keeps_it_exact(
    tmp_path: Path,
) -> None:
    ledger = SQLiteLedger(tmp_path / "l.db")
    # A GPU-hour price divided by 3600 s: a 28-digit Decimal.
    gpu_hour = GpuHourPrice(Decimal("2.49"), throughput_tokens_per_s=Decimal(7))
    gpu = FakeWorker(["42"], name="local:gpu", price=gpu_hour)
    priced = FakeWorker(["43"], name="frontier:f", price=TokenPrice.per_million("2.5", "10"))
    routes = {"gpu": Router(tiers=[gpu], ledger=ledger), "tok": Router(tiers=[priced])}
    async with _http(create_app(routes, SETTINGS)) as http:
        client = _client(http)
        raw = await client.chat.completions.with_raw_response.create(model="gpu", messages=MESSAGES)
        await client.chat.completions.create(model="tok", messages=MESSAGES)
        metrics = await http.get("/metrics", headers={"authorization": f"Bearer {KEY_ADMIN}"})
    header = raw.headers["x-paxis-cost-usd"]
    # 4 tokens at 7 tokens/s on a $2.49/h GPU: $0.000395238095..., shown to 6 places.
    assert header == "0.000395"
    (row,) = ledger.rows()
    # The ledger keeps its own precision; only the display is rounded.
    assert row.cost_usd is not None
    assert row.cost_usd != Decimal(header)
    assert format_usd(row.cost_usd) == header
    spend = [line for line in metrics.text.splitlines() if line.startswith("paxis_spend_usd")]
    assert spend == [
        # 3 prompt words at $2.5/M + 1 answer word at $10/M = $0.0000175 (half to even).
        'paxis_spend_usd_total{tier="frontier:f",team="claims"} 0.000018',
        'paxis_spend_usd_total{tier="local:gpu",team="claims"} 0.000395',
    ]
