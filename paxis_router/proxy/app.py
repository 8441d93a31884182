"""The OpenAI-compatible ASGI app over one or more Routers.

Endpoints: ``POST /v1/chat/completions`` (JSON or SSE), ``GET /v1/models`` (one model per
route) and ``GET /v1/models/{id}``, ``GET /healthz`` and ``GET /metrics`` (Prometheus text; it
shows spend per team, so it needs one of the ``admin_keys``, and is closed when none is
configured). A route named with a slash is also served with a dash (``paxis/auto`` as
``paxis-auto``), for clients that read ``x/y`` as provider and model.

Requests: every parameter of OpenAI's chat-completions API is honoured, refused with a 400
naming it, or ignored for a stated reason (``_request``; the table is in docs/proxy.md). Tool
calls go both ways: answers carry ``tool_calls`` with ``finish_reason "tool_calls"``, streamed
as OpenAI streams them. An image no tier of the route reads is a 400 naming the part.

Streaming. By default a stream is the **verified final answer**: the router routes the whole
request first (worker, verifiers, escalation), then the accepted answer is sent as
``chat.completion.chunk`` events ending with ``data: [DONE]``; the ``x-paxis-*`` headers are
final. A stream is a **passthrough** of the first tier — no verifiers, no escalation — only
when the operator allows it: for every route (``passthrough_stream: true``, refused on a route
with verifiers), or for the keys with ``passthrough: true`` (or every key, with
``allow_passthrough_header: true``) when the client sends ``x-paxis-passthrough: 1``; from any
other key the header is ignored and the answer is verified. A passthrough response carries
``x-paxis-passthrough: true`` and the ledger one first-tier attempt. When that tier's worker can
stream (``stream(request, skill)`` yielding text deltas and then the final Completion — see
``StreamingWorker``), its tokens **pass straight through** as they arrive: the headers then
cannot hold the cost or route id (not known yet), a failure after the first token ends the
stream with an error event, the tier's total deadline bounds the whole stream, and a client
that goes away ends it at once (its route slot is freed, the upstream stream closed, the partial
attempt recorded: see ``_passthrough``). A worker without ``stream`` answers whole, sent as
chunks.

Every other response carries ``x-paxis-route-id``, ``x-paxis-tier``, ``x-paxis-escalated``,
``x-paxis-cost-usd`` (6 decimal places; ``unknown`` when a price is unknown) and
``x-paxis-overhead-ms`` (the time spent outside worker calls). ``usage`` counts the tokens paid
for across all attempts.

The team comes from the API key only (``request.metadata["team"]``), never from the body, so it
is on every ledger row. Errors use OpenAI's shape ``{"error": {"message", "type", "param",
"code"}}`` and name the request id (also in ``x-request-id``) under which the ledger holds each
attempt's reason; no verifier's or upstream's free text is copied into them (every message is
bounded and scrubbed of credentials). Routing failures are sent with ``x-should-retry: false``
so that SDKs do not re-run an expensive escalation. A client that goes away before its answer
is complete is counted in /metrics with status 499, without a traceback in the log.

Example:
    >>> from paxis_router import Router
    >>> from paxis_router.testing import FakeWorker
    >>> from paxis_router.proxy.config import ProxySettings
    >>> app = create_app(Router(tiers=[FakeWorker(["hi"])]), ProxySettings(anonymous_team="dev"))
    >>> sorted(r.path for r in app.routes)
    ['/healthz', '/metrics', '/v1/chat/completions', '/v1/models', '/v1/models/{model:path}']
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
from starlette.requests import ClientDisconnect, Request as StarletteRequest
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from paxis_router.errors import (
    BudgetExceeded,
    ConfigError,
    DegradedRefused,
    EscalationExhausted,
    PaxisError,
    PolicyDenied,
    SkillSelectionError,
    TiersUnavailable,
)
from paxis_router.pricing import format_usd
from paxis_router.proxy._metrics import Metrics
from paxis_router.proxy._openai import (
    BadRequest,
    ChunkWriter,
    completion_is_unicode,
    completion_json,
    encode_json,
    error_body,
    finish_reason,
    include_usage,
    parse_body,
    replace_lone_surrogates,
    split_text,
    untrusted,
)
from paxis_router.proxy._passthrough import TeeWorker, first_tier_router, tee_router
from paxis_router.proxy._request import to_chat_request
from paxis_router.proxy.config import ProxySettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

    from starlette.requests import Request
    from starlette.types import Receive, Scope, Send

    from paxis_router.proxy.config import TeamKey
    from paxis_router.router import Router
    from paxis_router.types import Attempt, ChatRequest, RouteResult

logger = logging.getLogger(__name__)

_JSON = "application/json"
#: The status counted for a client that went away before its answer was complete (nginx's).
CLIENT_GONE = 499
_YES = ("1", "true", "yes")


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
        request_id: str | None = None,
    ):
        self.status = status
        self.message = message
        self.type_ = type_
        self.code = code
        self.param = param
        self.retry = retry
        self.request_id = request_id
        super().__init__(message)

    def response(self) -> Response:
        headers: dict[str, str] = {}
        if not self.retry:
            headers["x-should-retry"] = "false"
        if self.status == 401:
            headers["www-authenticate"] = "Bearer"
        if self.request_id is not None:
            headers["x-request-id"] = self.request_id
        body = error_body(self.message, type_=self.type_, code=self.code, param=self.param)
        return Response(body, status_code=self.status, media_type=_JSON, headers=headers)


class _ClientGone(Exception):
    """The client went away before its answer was complete."""


class _Route:
    """One model name clients can ask for: a Router, and its passthrough variant."""

    def __init__(self, name: str, router: Router, passthrough_stream: bool):
        self.name = name
        self.router = router
        self.passthrough_stream = passthrough_stream
        self.first_tier = first_tier_router(router)


class _Live:
    """A passthrough stream under way: the tee, its queue of deltas, the route task, and how
    the request is counted in /metrics once (when the stream ends)."""

    def __init__(
        self,
        app: _App,
        route: _Route,
        team: str,
        request: ChatRequest,
        t0: float,
        tee: TeeWorker,
        queue: asyncio.Queue[str | None],
    ):
        self.app = app
        self.route = route
        self.team = team
        self.request_id = request.request_id
        self.t0 = t0
        self.tee = tee
        self.queue = queue
        self.task: asyncio.Task[RouteResult] | None = None
        self.first = ""
        self.counted = False

    def count(self, status: int) -> None:
        """Count the request in /metrics (once)."""
        if not self.counted:
            self.counted = True
            latency_s = self.app.clock() - self.t0
            self.app.metrics.observe_request(self.route.name, self.team, status, latency_s, None)

    def abandon(self) -> None:
        """The client went away: end the upstream stream and count the request as 499."""
        if self.task is not None and not self.task.done():
            self.tee.abandon()
        self.count(CLIENT_GONE)


def _map_route_error(
    exc: PaxisError, request_id: str, request: ChatRequest | None = None
) -> _Failure:
    """A routing error -> an error response that says what failed and where to look (the
    ledger, by request id), never the free text of a verifier or an upstream."""
    if request is not None and isinstance(exc, EscalationExhausted):
        unreadable = _unreadable_image(exc.attempts, request)
        if unreadable is not None:
            return _Failure(
                400,
                f"{unreadable} is an image, and no tier of this route reads images (each is "
                f"text-only: {', '.join(a.tier for a in exc.attempts)}); send text, or ask the "
                f"operator for a route with a vision tier (request {request_id})",
                "invalid_request_error",
                "image_not_supported",
                unreadable,
                retry=False,
                request_id=request_id,
            )
    if isinstance(exc, BudgetExceeded):
        return _Failure(
            429,
            f"budget exceeded for team {exc.team!r}: {untrusted(exc)}; raise the team's budget or "
            "wait for "
            f"the next budget window (request {request_id})",
            "insufficient_quota",
            "budget_exceeded",
            retry=False,
            request_id=request_id,
        )
    if isinstance(exc, PolicyDenied):
        return _Failure(
            403,
            f"the policy gate denied the request (rule {exc.rule_id or 'default-deny'}, request "
            f"{request_id}); the audit log has the decision",
            "permission_error",
            "policy_denied",
            retry=False,
            request_id=request_id,
        )
    if isinstance(exc, EscalationExhausted):
        if isinstance(exc, TiersUnavailable):
            what = "no tier could answer"
        elif isinstance(exc, DegradedRefused):
            what = (
                "an upper tier is unavailable and the outage policy for this skill refuses "
                "degraded answers"
            )
        else:
            what = "no tier gave an acceptable answer"
        return _Failure(
            502,
            f"{what} (request {request_id}): {_describe_attempts(exc.attempts)}. The ledger "
            f"has each attempt's reason under request_id {request_id}.",
            "server_error",
            "escalation_exhausted",
            retry=False,
            request_id=request_id,
        )
    if isinstance(exc, SkillSelectionError):
        return _Failure(
            400,
            f"{untrusted(exc)} (request {request_id})",
            "invalid_request_error",
            "no_skill_matched",
            request_id=request_id,
        )
    logger.error("request %s failed: %s: %s", request_id, type(exc).__name__, exc)
    if isinstance(exc, ConfigError):
        return _Failure(
            500,
            f"server misconfigured (request {request_id}); the proxy's log says what",
            "server_error",
            "config_error",
            request_id=request_id,
        )
    return _Failure(
        500,
        f"{type(exc).__name__} while routing request {request_id}; the proxy's log says what",
        "server_error",
        "paxis_error",
        request_id=request_id,
    )


def _unreadable_image(attempts: tuple[Attempt, ...], request: ChatRequest) -> str | None:
    """Where the request's first image is, when every tier refused it as content it cannot
    take (``UnsupportedContent``); else None."""
    if not attempts or any(a.error_type != "UnsupportedContent" for a in attempts):
        return None
    for i, message in enumerate(request.messages):
        if isinstance(message.content, tuple):
            for j, part in enumerate(message.content):
                if part.type == "image_url":
                    return f"messages[{i}].content[{j}]"
    return None


def _describe_attempts(attempts: Iterable[Attempt]) -> str:
    """Each attempt as ``tier: what happened``, from names alone (tier, verifier, error type):
    the free-text reasons stay in the ledger."""
    parts: list[str] = []
    for attempt in attempts:
        failed = [v.verifier for v in attempt.verdicts if not v.passed]
        if attempt.error_type is not None:
            what = f"failed ({attempt.error_type})"
        elif failed:
            what = "rejected by " + ", ".join(failed)
        else:
            what = attempt.decision.value if attempt.decision else "answered"
        parts.append(f"{attempt.tier}: {what}")
    return "; ".join(parts) or "no attempt was made"


def _not_unicode(result: RouteResult) -> _Failure:
    return _Failure(
        502,
        f"the answer of tier {result.tier} holds text that is not Unicode (a lone UTF-16 "
        f"surrogate) and cannot be sent (request {result.request_id}); the ledger has it",
        "server_error",
        "invalid_upstream_answer",
        retry=False,
        request_id=result.request_id,
    )


async def _disconnected(receive: Receive) -> None:
    """Return when the client goes away (once its body is read, the next message is that)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class _App:
    """Request handling state shared by the endpoints."""

    def __init__(
        self,
        routes: dict[str, _Route],
        settings: ProxySettings,
        clock: Callable[[], float],
    ):
        self.routes = routes
        # Each route named with a slash is also served with a dash (paxis/auto as paxis-auto):
        # clients that read "x/y" as "provider x, model y" (the OpenAI Agents SDK) can name it.
        self.aliases = {
            alias: route
            for name, route in routes.items()
            if (alias := name.replace("/", "-")) != name and alias not in routes
        }
        self.settings = settings
        self.clock = clock
        self.metrics = Metrics()
        self.in_flight: defaultdict[str, int] = defaultdict(int)
        limit = settings.max_concurrent_routes
        self.slots = asyncio.Semaphore(limit) if limit is not None else None
        self.created = int(time.time())

    # --- edge steps ---------------------------------------------------------------------------

    def authenticate(self, request: Request) -> tuple[str, dict[str, str], TeamKey | None]:
        """The team, its routing metadata, and its key (None for the anonymous team);
        _Failure(401) otherwise."""
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
        return entry.team, metadata, entry

    def authenticate_admin(self, request: Request) -> None:
        """Pass for one of the admin keys; _Failure(401/403) otherwise."""
        if not self.settings.admin_keys:
            raise _Failure(
                403,
                f"{request.url.path} is closed: it needs an admin key and proxy.admin_keys is "
                "empty; add one (paxis serve --new-key NAME prints a key and its hash)",
                "permission_error",
                "admin_only",
            )
        header = request.headers.get("authorization") or ""
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or self.settings.admin_for(key.strip()) is None:
            raise _Failure(
                401,
                f"{request.url.path} needs one of the proxy's admin keys "
                "('Authorization: Bearer <key>'); team keys cannot read it",
                "invalid_request_error",
                "invalid_api_key",
            )

    def passthrough_allowed(self, request: Request, key: TeamKey | None) -> bool:
        """The client asks for passthrough and its key may have it."""
        if request.headers.get("x-paxis-passthrough", "").lower() not in _YES:
            return False
        return self.settings.allow_passthrough_header or (key is not None and key.passthrough)

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
        route = self.routes.get(model) or self.aliases.get(model)
        if route is None:
            raise _Failure(
                400,
                f"unknown model {untrusted(repr(model))}; this proxy serves {sorted(self.routes)}",
                "invalid_request_error",
                "model_not_found",
                "model",
            )
        return route

    def admit(self, team: str, key: TeamKey | None) -> None:
        """Count the request in its team's in-flight total; _Failure(429) over its cap."""
        cap = key.max_in_flight if key is not None else None
        if cap is not None and self.in_flight[team] >= cap:
            raise _Failure(
                429,
                f"team {team!r} already has {cap} requests in flight (its max_in_flight); retry "
                "shortly",
                "rate_limit_error",
                "too_many_in_flight",
            )
        self.in_flight[team] += 1

    # --- endpoints ----------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        t0 = self.clock()
        team = "-"
        route_name = "-"
        try:
            team, metadata, key = self.authenticate(request)
            raw = await self.read_body(request)
            body = parse_body(raw)
            route = self.route_for(body.get("model"))
            route_name = route.name
            chat_request = to_chat_request(body, metadata=metadata)
            passthrough = route.passthrough_stream or self.passthrough_allowed(request, key)
            observed = False  # the route's spend is already in /metrics
            if passthrough and body.get("stream"):
                live = await self._start_live(request, route, team, key, chat_request, t0)
                if isinstance(live, _Live):
                    return self._live_response(live, chat_request, body)
                result, observed = live
            else:
                router = route.first_tier if passthrough else route.router
                self.admit(team, key)
                try:
                    async with self.slots or contextlib.nullcontext():
                        result = await router.route(chat_request)
                except PaxisError as exc:
                    if isinstance(exc, EscalationExhausted):
                        self.metrics.observe_attempts(team, exc.attempts)
                    raise _map_route_error(exc, chat_request.request_id, chat_request) from exc
                finally:
                    self.in_flight[team] -= 1
        except BadRequest as exc:
            bad = _Failure(400, exc.message, "invalid_request_error", exc.code, exc.param)
            return self._fail(bad, route_name, team, t0)
        except _Failure as failure:
            return self._fail(failure, route_name, team, t0)
        except ClientDisconnect:  # gone while sending its body
            logger.debug("client went away in the middle of its request (%s)", route_name)
            self.metrics.observe_request(route_name, team, CLIENT_GONE, self.clock() - t0, None)
            return Response(status_code=CLIENT_GONE)  # nobody reads it; the server drops it
        except _ClientGone:  # gone while waiting for a passthrough's first token (counted)
            logger.debug("client went away before its first token (%s)", route_name)
            return Response(status_code=CLIENT_GONE)
        except Exception:  # the proxy edge: never a traceback to the client
            logger.exception("unexpected error serving /v1/chat/completions")
            internal = _Failure(
                500, "internal error in the paxis proxy; see its log", "server_error"
            )
            return self._fail(internal, route_name, team, t0)
        return self._answer(result, route_name, team, body, passthrough, t0, observed)

    def _answer(
        self,
        result: RouteResult,
        route_name: str,
        team: str,
        body: dict[str, Any],  # Any: decoded JSON from the client
        passthrough: bool,
        t0: float,
        observed: bool = False,
    ) -> Response:
        """The routed answer as a chat.completion (or its chunks): 502 when it is not Unicode."""
        worker_s = sum(a.latency_s for a in result.attempts)
        overhead_s = max(self.clock() - t0 - worker_s, 0.0)
        if not observed:
            self.metrics.observe_route(route_name, team, result)
        completion_id = "chatcmpl-" + result.route_id
        if body.get("stream"):
            if not completion_is_unicode(result.completion):
                return self._fail(_not_unicode(result), route_name, team, t0)
            content: bytes | None = None
        else:
            payload = completion_json(completion_id, result.completion, result.usage, self.created)
            content = encode_json(payload)
            if content is None:
                return self._fail(_not_unicode(result), route_name, team, t0)
        headers = _paxis_headers(result, overhead_s, passthrough)
        self.metrics.observe_request(route_name, team, 200, self.clock() - t0, overhead_s)
        if content is None:
            return StreamingResponse(
                _stream(completion_id, result, include_usage(body)),
                media_type="text/event-stream",
                headers={**headers, "cache-control": "no-cache"},
            )
        return Response(content, media_type=_JSON, headers=headers)

    async def _start_live(
        self,
        request: Request,
        route: _Route,
        team: str,
        key: TeamKey | None,
        chat_request: ChatRequest,
        t0: float,
    ) -> _Live | tuple[RouteResult, bool]:
        """Start a passthrough stream: the first tier's deltas once the first one is here; the
        whole RouteResult when the worker cannot stream or the route ended before any delta
        (with True when its spend is already counted in /metrics).

        The route holds its slot (and its team's in-flight count) until it ends, not until the
        first delta; a client that goes away first ends it (_ClientGone)."""
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        tee = tee_router(
            route.router, queue, default_deadline_s=self.settings.passthrough_timeout_s
        )
        if tee is None:
            self.admit(team, key)
            try:
                async with self.slots or contextlib.nullcontext():
                    return await route.first_tier.route(chat_request), False
            except PaxisError as exc:
                if isinstance(exc, EscalationExhausted):
                    self.metrics.observe_attempts(team, exc.attempts)
                raise _map_route_error(exc, chat_request.request_id, chat_request) from exc
            finally:
                self.in_flight[team] -= 1
        router, worker = tee
        live = _Live(self, route, team, chat_request, t0, worker, queue)
        self.admit(team, key)
        slots = self.slots
        try:
            if slots is not None:
                await slots.acquire()
        except BaseException:
            self.in_flight[team] -= 1
            raise

        def finished(task: asyncio.Task[RouteResult]) -> None:
            if slots is not None:
                slots.release()
            self.in_flight[team] -= 1
            queue.put_nowait(None)
            # The one place a live route's spend is counted (whoever reads its outcome).
            if task.cancelled():
                return
            error = task.exception()
            if error is None:
                self.metrics.observe_route(route.name, team, task.result())
            elif isinstance(error, EscalationExhausted):
                self.metrics.observe_attempts(team, error.attempts)

        live.task = asyncio.create_task(router.route(chat_request))
        live.task.add_done_callback(finished)
        first = await _first_item(queue, request.receive)
        if isinstance(first, _Gone):
            live.abandon()
            raise _ClientGone
        if first is None:  # the route ended before any delta
            try:
                return await live.task, True
            except PaxisError as exc:
                raise _map_route_error(exc, chat_request.request_id, chat_request) from exc
        live.first = first
        return live

    def _live_response(
        self,
        live: _Live,
        request: ChatRequest,
        body: dict[str, Any],  # Any: decoded JSON from the client
    ) -> Response:
        """The worker's own token stream, sent on as it arrives (passthrough)."""
        tier = live.route.router.tiers[0]
        headers = {
            "x-paxis-tier": tier.name,
            "x-paxis-escalated": "false",
            "x-paxis-passthrough": "true",
            "x-request-id": request.request_id,
            "cache-control": "no-cache",
        }
        model = str(getattr(tier.worker, "model", tier.name))
        writer = ChunkWriter("chatcmpl-" + request.request_id, model)
        return _LiveResponse(
            live,
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
        data = [self._model_json(name) for name in self.routes]
        return Response(encode_json({"object": "list", "data": data}), media_type=_JSON)

    async def model(self, request: Request) -> Response:
        """``GET /v1/models/{id}``: one route (or its dash alias); 404 in OpenAI's shape."""
        try:
            self.authenticate(request)
        except _Failure as failure:
            return failure.response()
        name = str(request.path_params["model"])
        if name not in self.routes and name not in self.aliases:
            return _Failure(
                404,
                f"The model {untrusted(repr(name))} does not exist; this proxy serves "
                f"{sorted(self.routes)}",
                "invalid_request_error",
                "model_not_found",
                "model",
            ).response()
        return Response(encode_json(self._model_json(name)), media_type=_JSON)

    def _model_json(self, name: str) -> dict[str, Any]:  # Any: a JSON document
        return {"id": name, "object": "model", "created": self.created, "owned_by": "paxis"}

    async def healthz(self, request: Request) -> Response:
        return Response(
            encode_json({"status": "ok", "routes": sorted(self.routes)}), media_type=_JSON
        )

    async def metrics_text(self, request: Request) -> Response:
        try:
            self.authenticate_admin(request)
        except _Failure as failure:
            return failure.response()
        return PlainTextResponse(
            self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )


class _LiveResponse(StreamingResponse):
    """A passthrough stream's response: however sending ends (the client went away before the
    first byte, in the middle, or the server is stopping), a route still running is ended."""

    def __init__(
        self, live: _Live, content: AsyncIterator[bytes], **kwargs: Any
    ) -> None:  # Any: StreamingResponse's keyword arguments
        super().__init__(content, **kwargs)
        self.live = live

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            task = self.live.task
            if task is not None and (not task.done() or not self.live.counted):
                self.live.abandon()


class _Gone:
    """The sentinel _first_item returns when the client went away."""


_GONE = _Gone()


async def _first_item(queue: asyncio.Queue[str | None], receive: Receive) -> str | _Gone | None:
    """The queue's first item (a delta, or None when the route ended), or _GONE when the client
    goes away first."""
    get = asyncio.ensure_future(queue.get())
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((get, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        get.cancel()
        gone.cancel()
    if gone.done() and not gone.cancelled():
        return _GONE
    return get.result()


def _paxis_headers(result: RouteResult, overhead_s: float, passthrough: bool) -> dict[str, str]:
    headers = {
        "x-paxis-route-id": result.route_id,
        "x-paxis-tier": result.tier,
        "x-paxis-escalated": "true" if result.escalated else "false",
        "x-paxis-cost-usd": format_usd(result.cost_usd),
        "x-paxis-overhead-ms": f"{overhead_s * 1000:.3f}",
        "x-request-id": result.request_id,
    }
    if passthrough:
        headers["x-paxis-passthrough"] = "true"
    return headers


async def _stream(
    completion_id: str, result: RouteResult, with_usage: bool
) -> AsyncIterator[bytes]:
    completion = result.completion
    writer = ChunkWriter(completion_id, completion.model)
    for piece in split_text(completion.content):
        yield writer.delta(piece)
    if completion.tool_calls:
        yield writer.tool_calls(completion.tool_calls)
    yield writer.finish(finish_reason(completion))
    if with_usage:
        yield writer.usage(result.usage)
    yield writer.done()


async def _live_stream(writer: ChunkWriter, live: _Live, with_usage: bool) -> AsyncIterator[bytes]:
    """The deltas as they come, then the closing chunks; a client that goes away (the server
    cancels this generator, or closes it) ends the route at once (``_Live.abandon``)."""
    assert live.task is not None
    try:
        yield writer.delta(live.first)
        while (item := await live.queue.get()) is not None:
            yield writer.delta(item)
        try:
            result = await live.task
        except PaxisError as exc:  # the stream has begun: the failure goes in an error event
            failure = _map_route_error(exc, live.request_id)
            live.count(failure.status)
            yield writer.error(failure.message, failure.type_, failure.code)
            yield writer.done()
            return
        live.count(200)
        completion = result.completion
        if completion.tool_calls:  # assembled by the worker: sent once its stream has ended
            calls = [
                call.model_copy(
                    update={
                        "function": call.function.model_copy(
                            update={
                                "name": replace_lone_surrogates(call.function.name),
                                "arguments": replace_lone_surrogates(call.function.arguments),
                            }
                        )
                    }
                )
                for call in completion.tool_calls
            ]
            yield writer.tool_calls(calls)
        yield writer.finish(finish_reason(completion))
        if with_usage:
            yield writer.usage(result.usage)
        yield writer.done()
    finally:
        if not live.task.done() or not live.counted:
            live.abandon()


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
            Route("/v1/models/{model:path}", state.model, methods=["GET"]),
            Route("/healthz", state.healthz, methods=["GET"]),
            Route("/metrics", state.metrics_text, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.paxis = state
    return app
