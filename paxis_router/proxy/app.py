"""The OpenAI-compatible ASGI app over one or more Routers.

Endpoints: ``POST /v1/chat/completions`` (JSON or SSE), ``GET /v1/models`` (one model per
route), ``GET /healthz`` and ``GET /metrics`` (Prometheus text).

Streaming. By default a stream is the **verified final answer**: the router routes the whole
request first (worker, verifiers, escalation), then the accepted answer is sent as
``chat.completion.chunk`` events ending with ``data: [DONE]``; the ``x-paxis-*`` headers are
final. A stream is a **passthrough** of the first tier — no verifiers, no escalation — only when
the route opts in (``passthrough_stream: true``, allowed on a route without verifiers) or the
client sends ``x-paxis-passthrough: 1`` (when ``allow_passthrough_header``): the first tier's
answer is never verified or escalated, the response carries ``x-paxis-passthrough: true`` and
the ledger one first-tier attempt. When that tier's worker can stream (it has
``stream(request, skill)`` yielding text deltas and then the final Completion — see
``StreamingWorker``), its tokens **pass straight through** as they arrive; the headers then
cannot hold the cost or route id (not known yet), and a failure after the first token ends the
stream with an error event. A worker without ``stream`` answers whole, sent as chunks.

Every other response carries ``x-paxis-route-id``, ``x-paxis-tier``, ``x-paxis-escalated``,
``x-paxis-cost-usd`` (``unknown`` when a price is unknown) and ``x-paxis-overhead-ms`` (the time
spent outside worker calls). ``usage`` counts the tokens paid for across all attempts.

The team comes from the API key only (``request.metadata["team"]``), never from the body, so it
is on every ledger row. Errors use OpenAI's shape ``{"error": {"message", "type", "param",
"code"}}``; routing failures are sent with ``x-should-retry: false`` so that SDKs do not
re-run an expensive escalation.

Example:
    >>> from paxis_router import Router
    >>> from paxis_router.testing import FakeWorker
    >>> from paxis_router.proxy.config import ProxySettings
    >>> app = create_app(Router(tiers=[FakeWorker(["hi"])]), ProxySettings(anonymous_team="dev"))
    >>> sorted(r.path for r in app.routes)
    ['/healthz', '/metrics', '/v1/chat/completions', '/v1/models']
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from paxis_router.errors import (
    BudgetExceeded,
    ConfigError,
    EscalationExhausted,
    PaxisError,
    PolicyDenied,
    SkillSelectionError,
)
from paxis_router.proxy._metrics import Metrics
from paxis_router.proxy._openai import (
    BadRequest,
    ChunkWriter,
    completion_json,
    error_body,
    include_usage,
    parse_body,
    split_text,
    to_chat_request,
)
from paxis_router.proxy._passthrough import first_tier_router, tee_router
from paxis_router.proxy.config import ProxySettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

    from starlette.requests import Request
    from starlette.types import Receive, Scope, Send

    from paxis_router.router import Router
    from paxis_router.types import ChatRequest, RouteResult

logger = logging.getLogger(__name__)

_JSON = "application/json"


class _Failure(Exception):
    """An error response decided at the edge."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str,
        code: str | None = None,
        param: str | None = None,
        retry: bool = True,
    ):
        self.status = status
        self.message = message
        self.type_ = type_
        self.code = code
        self.param = param
        self.retry = retry
        super().__init__(message)

    def response(self) -> Response:
        headers: dict[str, str] = {}
        if not self.retry:
            headers["x-should-retry"] = "false"
        if self.status == 401:
            headers["www-authenticate"] = "Bearer"
        body = error_body(self.message, type_=self.type_, code=self.code, param=self.param)
        return Response(body, status_code=self.status, media_type=_JSON, headers=headers)


class _Route:
    """One model name clients can ask for: a Router, and its passthrough variant."""

    def __init__(self, name: str, router: Router, passthrough_stream: bool):
        self.name = name
        self.router = router
        self.passthrough_stream = passthrough_stream
        self.first_tier = first_tier_router(router)


class _Live:
    """A passthrough stream under way: its first delta, the rest to come, the route task."""

    def __init__(
        self,
        first: str,
        queue: asyncio.Queue[str | None],
        task: asyncio.Task[RouteResult],
        request_id: str,
    ):
        self.request_id = request_id
        self.first = first
        self.queue = queue
        self.task = task


async def _start_live(router: Router, request: ChatRequest) -> RouteResult | _Live | None:
    """Start streaming the first tier; None when its worker cannot stream. A route that ends
    before any delta (a failure, an empty answer) comes back as its RouteResult or raises."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    tee = tee_router(router, queue)
    if tee is None:
        return None
    task = asyncio.create_task(tee.route(request))
    task.add_done_callback(lambda _: queue.put_nowait(None))
    first = await queue.get()
    if first is None:
        return task.result()
    return _Live(first, queue, task, request.request_id)


def _map_route_error(exc: PaxisError, request_id: str) -> _Failure:
    if isinstance(exc, BudgetExceeded):
        return _Failure(
            429,
            f"budget exceeded for team {exc.team!r}: {exc}; raise the team's budget or wait for "
            f"the next budget window (request {request_id})",
            "insufficient_quota",
            "budget_exceeded",
            retry=False,
        )
    if isinstance(exc, PolicyDenied):
        return _Failure(
            403,
            f"{exc} (rule {exc.rule_id or 'default-deny'}, request {request_id})",
            "permission_error",
            "policy_denied",
            retry=False,
        )
    if isinstance(exc, EscalationExhausted):
        return _Failure(
            502,
            f"no tier gave an acceptable answer (request {request_id}): {exc}",
            "server_error",
            "escalation_exhausted",
            retry=False,
        )
    if isinstance(exc, SkillSelectionError):
        return _Failure(400, str(exc), "invalid_request_error", "no_skill_matched")
    if isinstance(exc, ConfigError):
        return _Failure(500, f"server misconfigured: {exc}", "server_error", "config_error")
    return _Failure(500, f"{type(exc).__name__}: {exc}", "server_error", "paxis_error")


class _App:
    """Request handling state shared by the endpoints."""

    def __init__(
        self,
        routes: dict[str, _Route],
        settings: ProxySettings,
        clock: Callable[[], float],
    ):
        self.routes = routes
        self.settings = settings
        self.clock = clock
        self.metrics = Metrics()
        self.in_flight: defaultdict[str, int] = defaultdict(int)
        limit = settings.max_concurrent_routes
        self.slots = asyncio.Semaphore(limit) if limit is not None else None
        self.created = int(time.time())

    # --- edge steps ---------------------------------------------------------------------------

    def authenticate(self, request: Request) -> tuple[str, dict[str, str], int | None]:
        """The team, its routing metadata, and its in-flight cap; _Failure(401) otherwise."""
        header = request.headers.get("authorization")
        if header is None:
            if self.settings.anonymous_team is not None:
                return self.settings.anonymous_team, {"team": self.settings.anonymous_team}, None
            raise _Failure(
                401,
                "missing API key: send 'Authorization: Bearer <key>' with a key from the proxy's "
                "config",
                "invalid_request_error",
                "missing_api_key",
            )
        scheme, _, key = header.partition(" ")
        entry = self.settings.team_for(key.strip()) if scheme.lower() == "bearer" else None
        if entry is None:
            raise _Failure(
                401,
                "incorrect API key provided; ask the proxy's operator for your team's key",
                "invalid_request_error",
                "invalid_api_key",
            )
        metadata = {"team": entry.team}
        if entry.data_class is not None:
            metadata["data_class"] = entry.data_class
        return entry.team, metadata, entry.max_in_flight

    async def read_body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise self._too_large(limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise self._too_large(limit)
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _too_large(limit: int) -> _Failure:
        return _Failure(
            413,
            f"the request body is over the proxy's limit of {limit} bytes; shorten the messages "
            "or raise proxy.max_body_bytes",
            "invalid_request_error",
            "request_too_large",
        )

    def route_for(self, model: object) -> _Route:
        if not isinstance(model, str) or not model:
            raise BadRequest("'model' is required; GET /v1/models lists the routes", param="model")
        route = self.routes.get(model)
        if route is None:
            raise _Failure(
                400,
                f"unknown model {model!r}; this proxy serves {sorted(self.routes)}",
                "invalid_request_error",
                "model_not_found",
                "model",
            )
        return route

    # --- endpoints ----------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        t0 = self.clock()
        team = "-"
        route_name = "-"
        try:
            team, metadata, max_in_flight = self.authenticate(request)
            raw = await self.read_body(request)
            body = parse_body(raw)
            route = self.route_for(body.get("model"))
            route_name = route.name
            chat_request = to_chat_request(body, metadata=metadata)
            passthrough = route.passthrough_stream or (
                self.settings.allow_passthrough_header
                and request.headers.get("x-paxis-passthrough", "").lower() in ("1", "true", "yes")
            )
            router = route.first_tier if passthrough else route.router
            if max_in_flight is not None and self.in_flight[team] >= max_in_flight:
                raise _Failure(
                    429,
                    f"team {team!r} already has {max_in_flight} requests in flight (its "
                    "max_in_flight); retry shortly",
                    "rate_limit_error",
                    "too_many_in_flight",
                )
            self.in_flight[team] += 1
            try:
                async with self.slots or contextlib.nullcontext():
                    outcome = None
                    if passthrough and body.get("stream"):
                        outcome = await _start_live(route.router, chat_request)
                    if outcome is None:
                        outcome = await router.route(chat_request)
            except PaxisError as exc:
                raise _map_route_error(exc, chat_request.request_id) from exc
            finally:
                self.in_flight[team] -= 1
        except BadRequest as exc:
            bad = _Failure(400, exc.message, "invalid_request_error", exc.code, exc.param)
            return self._fail(bad, route_name, team, t0)
        except _Failure as failure:
            return self._fail(failure, route_name, team, t0)
        except Exception:  # the proxy edge: never a traceback to the client
            logger.exception("unexpected error serving /v1/chat/completions")
            internal = _Failure(
                500, "internal error in the paxis proxy; see its log", "server_error"
            )
            return self._fail(internal, route_name, team, t0)

        if isinstance(outcome, _Live):
            return self._live_response(outcome, route, team, chat_request, body, t0)
        result = outcome
        worker_s = sum(a.latency_s for a in result.attempts)
        overhead_s = max(self.clock() - t0 - worker_s, 0.0)
        headers = _paxis_headers(result, overhead_s, passthrough)
        self.metrics.observe_route(route_name, team, result)
        self.metrics.observe_request(route_name, team, 200, self.clock() - t0, overhead_s)
        completion_id = "chatcmpl-" + result.route_id
        if body.get("stream"):
            return StreamingResponse(
                _stream(completion_id, result, include_usage(body)),
                media_type="text/event-stream",
                headers={**headers, "cache-control": "no-cache"},
            )
        payload = completion_json(completion_id, result.completion, result.usage, self.created)
        return JSONResponse(payload, headers=headers)

    def _live_response(
        self,
        live: _Live,
        route: _Route,
        team: str,
        request: ChatRequest,
        body: dict[str, Any],  # Any: decoded JSON from the client
        t0: float,
    ) -> Response:
        """The worker's own token stream, sent on as it arrives (passthrough)."""

        def finished(task: asyncio.Task[RouteResult]) -> None:
            if not task.cancelled() and task.exception() is None:
                self.metrics.observe_route(route.name, team, task.result())
                self.metrics.observe_request(route.name, team, 200, self.clock() - t0, None)

        live.task.add_done_callback(finished)
        tier = route.router.tiers[0]
        headers = {
            "x-paxis-tier": tier.name,
            "x-paxis-escalated": "false",
            "x-paxis-passthrough": "true",
            "x-request-id": request.request_id,
            "cache-control": "no-cache",
        }
        model = str(getattr(tier.worker, "model", tier.name))
        writer = ChunkWriter("chatcmpl-" + request.request_id, model)
        return StreamingResponse(
            _live_stream(writer, live, include_usage(body)),
            media_type="text/event-stream",
            headers=headers,
        )

    def _fail(self, failure: _Failure, route: str, team: str, t0: float) -> Response:
        self.metrics.observe_request(route, team, failure.status, self.clock() - t0, None)
        return failure.response()

    async def models(self, request: Request) -> Response:
        try:
            self.authenticate(request)
        except _Failure as failure:
            return failure.response()
        data = [
            {"id": name, "object": "model", "created": self.created, "owned_by": "paxis"}
            for name in self.routes
        ]
        return JSONResponse({"object": "list", "data": data})

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "routes": sorted(self.routes)})

    async def metrics_text(self, request: Request) -> Response:
        return PlainTextResponse(
            self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )


def _paxis_headers(result: RouteResult, overhead_s: float, passthrough: bool) -> dict[str, str]:
    headers = {
        "x-paxis-route-id": result.route_id,
        "x-paxis-tier": result.tier,
        "x-paxis-escalated": "true" if result.escalated else "false",
        "x-paxis-cost-usd": "unknown" if result.cost_usd is None else f"{result.cost_usd:f}",
        "x-paxis-overhead-ms": f"{overhead_s * 1000:.3f}",
        "x-request-id": result.request_id,
    }
    if passthrough:
        headers["x-paxis-passthrough"] = "true"
    return headers


async def _stream(
    completion_id: str, result: RouteResult, with_usage: bool
) -> AsyncIterator[bytes]:
    writer = ChunkWriter(completion_id, result.completion.model)
    for piece in split_text(result.completion.content):
        yield writer.delta(piece)
    yield writer.finish(result.completion.finish_reason)
    if with_usage:
        yield writer.usage(result.usage)
    yield writer.done()


async def _live_stream(writer: ChunkWriter, live: _Live, with_usage: bool) -> AsyncIterator[bytes]:
    yield writer.delta(live.first)
    while (item := await live.queue.get()) is not None:
        yield writer.delta(item)
    try:
        result = live.task.result()
    except PaxisError as exc:  # the stream has begun: the failure goes in an error event
        failure = _map_route_error(exc, live.request_id)
        yield writer.error(failure.message, failure.type_, failure.code)
        yield writer.done()
        return
    yield writer.finish(result.completion.finish_reason)
    if with_usage:
        yield writer.usage(result.usage)
    yield writer.done()


async def _shutdown(routers: Iterable[Router]) -> None:
    """When the server stops: drain each router's background shadow calls (so their ledger rows
    are written) and close its workers' HTTP clients. Every router is closed; then the first
    drain error (each was logged at ERROR when it happened) is raised."""
    error: Exception | None = None
    for router in routers:
        try:
            await router.aclose()
        except Exception as exc:  # close the other routers too, then raise the first
            error = error or exc
    if error is not None:
        raise error


class _ProxyApp(Starlette):
    """Starlette, with ``POST /v1/chat/completions`` sent straight to its handler (which maps
    every error to a response itself) rather than through the middleware stack and the route
    table: the hot path skips four ASGI layers. Everything else is plain Starlette, and so is
    this path once a middleware is added (``app.add_middleware``)."""

    def __init__(
        self, chat: Callable[[Request], Awaitable[Response]], **kwargs: Any
    ) -> None:  # Any: Starlette's keyword arguments
        super().__init__(**kwargs)
        self._chat = chat

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == "/v1/chat/completions"
            and scope["method"] == "POST"
            and not scope.get("root_path")
            and not self.user_middleware
        ):
            scope["app"] = self
            response = await self._chat(StarletteRequest(scope, receive))
            await response(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
    type_ = "invalid_request_error" if status < 500 else "server_error"
    message = f"{request.method} {request.url.path}: {detail}"
    return Response(error_body(message, type_=type_), status_code=status, media_type=_JSON)


def create_app(
    routes: Router | Mapping[str, Router],
    settings: ProxySettings | None = None,
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> Starlette:
    """An ASGI app serving ``routes`` with the OpenAI chat-completions API.

    Args:
        routes: one Router (served as ``settings.model``, ``paxis/auto`` by default) or a mapping
            of model name -> Router, one model per route.
        settings: API keys and limits; the default has no keys (every request gets 401).
        clock: a monotonic clock in seconds, for the overhead header and metrics.

    Raises:
        ConfigError: ``passthrough_stream`` is set for a route that has verifiers.

    Example:
        >>> from paxis_router import Router
        >>> from paxis_router.testing import FakeWorker
        >>> app = create_app({"paxis/cheap": Router(tiers=[FakeWorker(["ok"])])})
        >>> [r.path for r in app.routes][0]
        '/v1/chat/completions'
    """
    settings = settings or ProxySettings()
    table = dict(routes) if isinstance(routes, Mapping) else {settings.model: routes}
    if not table:
        raise ConfigError("create_app needs at least one route")
    if settings.passthrough_stream:
        with_verifiers = [name for name, r in table.items() if r.verifiers]
        if with_verifiers:
            raise ConfigError(
                f"passthrough_stream would skip the verifiers of {with_verifiers}; turn it off or "
                "drop their verifiers",
                field="proxy.passthrough_stream",
            )
    state = _App(
        {n: _Route(n, r, settings.passthrough_stream) for n, r in table.items()}, settings, clock
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await _shutdown(table.values())

    app = _ProxyApp(
        state.chat_completions,
        lifespan=lifespan,
        routes=[
            Route("/v1/chat/completions", state.chat_completions, methods=["POST"]),
            Route("/v1/models", state.models, methods=["GET"]),
            Route("/healthz", state.healthz, methods=["GET"]),
            Route("/metrics", state.metrics_text, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.paxis = state
    return app
