"""Every row of the parameter table in docs/proxy.md behaves as it says, on a real server
(uvicorn on 127.0.0.1) in front of the fake upstream; the table covers every parameter the
installed openai SDK can send, and the code's table (``proxy._request``) is the same."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from openai.types.chat import completion_create_params

from paxis_router import Router
from paxis_router.proxy import ProxySettings, TeamKey, create_app, hash_key
from paxis_router.proxy._request import DEFAULT_ONLY, IGNORED, KNOWN, REFUSED
from paxis_router.testing.upstream import FakeUpstream
from paxis_router.workers.openai_compat import OpenAICompatWorker

KEY = "pxs-parameters-key"
DOC = Path(__file__).resolve().parents[2] / "docs" / "proxy.md"
_ROW = re.compile(r"^\| `(?P<name>[a-z_]+)` \| (?P<treatment>[a-z0-9 ]+) \| .* \|$", re.M)
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}

# A value of each parameter to send: supported rows expect it honoured, 400 rows refused,
# ignored rows accepted and not sent on; "default only" rows get (the default, another value).
SAMPLES: dict[str, Any] = {  # Any: JSON values
    "model": "paxis/auto",
    "messages": [{"role": "user", "content": "hi"}],
    "stream": True,
    "stream_options": {"include_usage": True},
    "metadata": {"project": "renewals"},
    "max_tokens": 64,
    "max_completion_tokens": 32,
    "temperature": 0.5,
    "top_p": 0.5,
    "presence_penalty": 0.5,
    "frequency_penalty": -0.5,
    "seed": 7,
    "stop": ["END"],
    "user": "end-user-1",
    "response_format": {"type": "json_object"},
    "tools": [TOOL],
    "tool_choice": "auto",
    "parallel_tool_calls": False,
    "n": (1, 2),
    "logprobs": (False, True),
    "store": (False, True),
    "service_tier": ("auto", "flex"),
    "modalities": (["text"], ["text", "audio"]),
    "audio": {"voice": "alloy", "format": "wav"},
    "function_call": "auto",
    "functions": [{"name": "f", "parameters": {"type": "object"}}],
    "logit_bias": {"50256": -100},
    "top_logprobs": 2,
    "reasoning_effort": "low",
    "verbosity": "low",
    "web_search_options": {},
    "moderation": {"model": "omni-moderation-latest"},
    "prediction": {"type": "content", "content": "hi"},
    "prompt_cache_key": "k1",
    "prompt_cache_retention": "24h",
    "prompt_cache_options": {"mode": "implicit"},
    "safety_identifier": "user-hash",
}
# What the tier receives for a parameter sent on under another name or shape.
SENT_AS = {"max_completion_tokens": ("max_tokens", 32)}
# Parameters that need another to be valid.
WITH = {"tool_choice": {"tools": [TOOL]}, "parallel_tool_calls": {"tools": [TOOL]}}


def _table() -> dict[str, str]:
    rows = {m["name"]: m["treatment"] for m in _ROW.finditer(DOC.read_text(encoding="utf-8"))}
    assert len(rows) > 30, "the parameter table in docs/proxy.md was not found"
    return rows


def _answer(request: dict[str, Any]) -> str:  # Any: the JSON the upstream received
    fmt = request.get("response_format") or {}
    return '{"ok": true}' if fmt.get("type") == "json_object" else "ok"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, FakeUpstream]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    settings = ProxySettings(keys=(TeamKey(team="t", key_sha256=hash_key(KEY)),))
    with FakeUpstream(answer=_answer) as upstream:
        router = Router(tiers=[OpenAICompatWorker("local:w", "w", upstream.base_url)])
        uv = uvicorn.Server(
            uvicorn.Config(create_app(router, settings), log_level="warning", access_log=False)
        )
        thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1", upstream
        finally:
            uv.should_exit = True
            thread.join(timeout=30)
            sock.close()


def _post(base_url: str, **params: Any) -> httpx.Response:  # Any: JSON values
    body = {"model": "paxis/auto", "messages": SAMPLES["messages"], **params}
    with httpx.Client(timeout=30) as http:
        return http.post(
            f"{base_url}/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"}
        )


def _refused(response: httpx.Response, name: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == name
    assert name in error["message"]
    assert error["type"] == "invalid_request_error"


def test_the_table_covers_every_parameter_the_openai_sdk_sends_and_the_code_agrees() -> None:
    table = _table()
    sdk = set(completion_create_params.CompletionCreateParamsBase.__annotations__) | {"stream"}
    assert sdk <= table.keys(), f"parameters missing from docs/proxy.md: {sdk - table.keys()}"
    assert table.keys() == KNOWN
    assert {n for n, t in table.items() if t == "400"} == REFUSED.keys()
    assert {n for n, t in table.items() if t == "ignored"} == IGNORED.keys()
    assert {n for n, t in table.items() if t == "default only"} == DEFAULT_ONLY.keys()
    assert set(table.values()) == {"supported", "400", "ignored", "default only"}


@pytest.mark.parametrize("name", sorted(_table()))
def test_each_parameter_behaves_as_the_table_says(
    server: tuple[str, FakeUpstream], name: str
) -> None:
    base_url, upstream = server
    treatment = _table()[name]
    sample = SAMPLES[name]
    before = len(upstream.requests)
    if treatment == "400":
        _refused(_post(base_url, **{name: sample}), name)
        assert len(upstream.requests) == before  # refused at the edge: no tier was called
    elif treatment == "default only":
        default, other = sample
        assert _post(base_url, **{name: default}).status_code == 200
        assert name not in upstream.requests[-1]
        _refused(_post(base_url, **{name: other}), name)
    elif treatment == "ignored":
        response = _post(base_url, **{name: sample})
        assert response.status_code == 200, response.text
        assert name not in upstream.requests[-1]
    else:
        extra = {"stream": True} if name == "stream_options" else {}
        response = _post(base_url, **{name: sample}, **WITH.get(name, {}), **extra)
        assert response.status_code == 200, response.text
        sent = upstream.requests[-1]
        if name == "stream":
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.text.endswith("data: [DONE]\n\n")
        elif name == "stream_options":
            chunks = [json.loads(b[6:]) for b in response.text.split("\n\n")[:-2] if b]
            assert chunks[-1]["usage"]["total_tokens"] > 0
        elif name in SENT_AS:
            assert sent[SENT_AS[name][0]] == SENT_AS[name][1]
        elif name not in ("model", "messages", "metadata"):
            assert sent[name] == sample


def test_a_parameter_openai_does_not_have_is_a_400_naming_it(
    server: tuple[str, FakeUpstream],
) -> None:
    response = _post(server[0], top_k=40)
    _refused(response, "top_k")
    assert response.json()["error"]["code"] == "unknown_parameter"
    assert "Unrecognized request argument supplied: top_k" in response.json()["error"]["message"]


def test_null_counts_as_not_sent(server: tuple[str, FakeUpstream]) -> None:
    nulls = {name: None for name in (*REFUSED, *DEFAULT_ONLY, "tool_choice", "metadata")}
    response = _post(server[0], **nulls)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "ok"
