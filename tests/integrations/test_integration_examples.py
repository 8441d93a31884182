"""The examples for the OpenAI client, the OpenAI Agents SDK, LangChain and LiteLLM run and print
their answers."""

from __future__ import annotations

import importlib.util
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import uvicorn

from paxis_router import Router
from paxis_router.proxy import ProxySettings, TeamKey, create_app, hash_key
from paxis_router.testing import FakeVerifier, FakeWorker
from paxis_router.testing.upstream import FakeUpstream
from paxis_router.workers.litellm import load_litellm
from paxis_router.workers.openai_compat import OpenAICompatWorker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def _serving(router: Router, key: str) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    settings = ProxySettings(keys=(TeamKey(team="docs", key_sha256=hash_key(key)),))
    server = uvicorn.Server(
        uvicorn.Config(create_app(router, settings), log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def test_openai_client_example(capsys: pytest.CaptureFixture[str]) -> None:
    router = Router(
        tiers=[FakeWorker(["maybe"], name="local:w"), FakeWorker(["51"], name="frontier:f")],
        verifiers=[FakeVerifier([False, True, False, True])],
    )
    with _serving(router, "pxs-example") as base_url:
        line = _load("openai_client").main(["--base-url", base_url, "--api-key", "pxs-example"])
    assert line.startswith("'51' from frontier:f (escalated: true, cost: $unknown)")
    assert "streamed: '51'" in capsys.readouterr().out


def _weather_calls(request: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The fake model calls the offered tool until its result is back."""
    # Any: the JSON the upstream received, and scripted calls
    if not request.get("tools") or request["messages"][-1]["role"] == "tool":
        return None
    return [{"name": request["tools"][0]["function"]["name"], "arguments": {"city": "Paris"}}]


def _weather_answer(request: dict[str, Any]) -> str:  # Any: the JSON the upstream received
    last = request["messages"][-1]
    return f"Paris: {last['content']}" if last["role"] == "tool" else "I need the tool."


def test_openai_agents_example(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeUpstream(answer=_weather_answer, tool_calls=_weather_calls) as upstream:
        worker = OpenAICompatWorker("local:w", "worker-model", upstream.base_url)
        router = Router(tiers=[worker])
        with _serving(router, "pxs-example") as base_url:
            answer = _load("openai_agents").main(
                ["--base-url", base_url, "--api-key", "pxs-example"]
            )
        calling, answering = upstream.requests
    assert answer == 'Paris: {"city": "Paris", "temp_c": 12}'
    assert capsys.readouterr().out == answer + "\n"
    assert calling["tools"][0]["function"]["name"] == "get_weather"
    assert answering["messages"][-1]["role"] == "tool"


def test_langchain_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert _load("langchain_chat").main() == "Paris"
    assert capsys.readouterr().out == "Paris\n"


@pytest.fixture
def clean_litellm() -> Iterator[None]:
    module: Any = load_litellm()  # Any: the litellm module, untyped
    saved = list(module.custom_provider_map)
    yield
    module.custom_provider_map = saved


@pytest.mark.usefixtures("clean_litellm")
def test_litellm_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert _load("litellm_provider").main() == "51"
    assert capsys.readouterr().out == "51 / 51\n"
