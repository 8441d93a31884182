"""The chat endpoint's fast path (past Starlette's middleware stack) and its limits."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
from starlette.middleware.base import BaseHTTPMiddleware

from paxis_router import Router
from paxis_router.proxy import ProxySettings, create_app
from paxis_router.testing import FakeWorker

if TYPE_CHECKING:
    from starlette.middleware.base import RequestResponseEndpoint
    from starlette.requests import Request
    from starlette.responses import Response


async def test_a_middleware_added_to_the_proxy_sees_chat_completions() -> None:
    seen: list[str] = []

    async def record(request: Request, call_next: RequestResponseEndpoint) -> Response:
        seen.append(request.url.path)
        return await call_next(request)

    app = create_app(Router(tiers=[FakeWorker(["hi"])]), ProxySettings(anonymous_team="dev"))
    app.add_middleware(BaseHTTPMiddleware, dispatch=record)
    body = {"model": "paxis/auto", "messages": [{"role": "user", "content": "?"}]}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://proxy"
    ) as http:
        response = await http.post("/v1/chat/completions", json=body)
    assert response.json()["choices"][0]["message"]["content"] == "hi"
    assert seen == ["/v1/chat/completions"]


async def test_other_paths_and_methods_still_go_through_starlette() -> None:
    app = create_app(Router(tiers=[FakeWorker(["hi"])]), ProxySettings(anonymous_team="dev"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://proxy"
    ) as http:
        wrong_method = await http.get("/v1/chat/completions")
        unknown = await http.post("/v1/nothing", json={})
        bad_json = await http.post("/v1/chat/completions", content=b"{not json")
    assert wrong_method.status_code == 405
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "invalid_request_error"
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["message"].startswith("the request body is not valid JSON")
