"""``paxis serve --demo``: the real proxy over a fake model server, offline, for a first look.

The policy ships in the package (``paxis_router/data/policies/offline.yaml``); its two tiers
call one :class:`~paxis_router.testing.upstream.FakeUpstream` started here on loopback, so
nothing leaves the machine and no key or GPU is needed. :func:`offline_server` yields the
Router, the proxy settings and the lines to print (where it listens, which key to use, a first
request); :func:`run_offline` is what ``paxis serve --demo`` runs.
"""

from __future__ import annotations

import contextlib
import re
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

    from paxis_router.proxy.config import ProxySettings
    from paxis_router.router import Router

OFFLINE_POLICY = Path(__file__).resolve().parents[1] / "data" / "policies" / "offline.yaml"
OFFLINE_KEY = "pxs-offline-demo"
"""The offline demo's API key (public: the policy is for a laptop, bound to loopback)."""

_ARITHMETIC = re.compile(r"(-?\d+(?:\.\d+)?)\s*([-+*/x×])\s*(-?\d+(?:\.\d+)?)")


def fake_answer(body: dict[str, Any]) -> str:  # Any: a chat-completions request body
    """What the fake server answers: the worker model does ``A op B`` and nothing else.

    Example:
        >>> def ask(text):
        ...     return {"model": "offline-worker", "messages": [{"role": "user", "content": text}]}
        >>> fake_answer(ask("What is 17 * 3?"))
        '17 * 3 = 51'
        >>> fake_answer(ask("Capital of France?"))
        "I don't know."
    """
    messages = body.get("messages") or [{}]
    text = str(messages[-1].get("content") or "")
    if body.get("model") == "offline-worker":
        match = _ARITHMETIC.search(text)
        if match is None:
            return "I don't know."
        a, op, b = Decimal(match[1]), match[2], Decimal(match[3])
        if op == "/" and b == 0:
            return "I don't know."
        value = {"+": a + b, "-": a - b, "/": a / b}.get(op, a * b)
        return f"{match[0]} = {value.normalize():f}"
    return f"(the offline frontier model) You asked: {text.strip()[:200]}"


@contextlib.contextmanager
def offline_server(host: str, port: int) -> Iterator[tuple[Router, ProxySettings, list[str]]]:
    """The offline policy's Router and proxy settings, its fake model server running, and the
    lines that tell a person where the proxy will listen and how to call it."""
    import yaml

    from paxis_router.config.schema import config_from_mapping
    from paxis_router.proxy.config import settings_from_mapping
    from paxis_router.router import Router
    from paxis_router.testing.upstream import FakeUpstream

    source = str(OFFLINE_POLICY)
    raw = yaml.safe_load(OFFLINE_POLICY.read_text(encoding="utf-8"))
    with FakeUpstream(answer=fake_answer, model="offline-worker") as upstream:
        for tier in raw["tiers"]:
            tier["base_url"] = upstream.base_url
        cfg = config_from_mapping(raw, source=source)
        router = Router.from_config(cfg, base_dir=OFFLINE_POLICY.parent)
        settings = settings_from_mapping(cfg.proxy, source=source)
        url = f"http://{host}:{port}/v1"
        ledger = cfg.ledger.path if cfg.ledger is not None else None
        body = '{"model": "paxis/auto", "messages": [{"role": "user", "content": "17 * 3?"}]}'
        lines = [
            f"paxis serve --demo: offline, on {url} (model paxis/auto), API key {OFFLINE_KEY}",
            f"  the tiers call a fake model server at {upstream.base_url}; policy: {source}",
            f"  try: curl -s {url}/chat/completions -H 'Authorization: Bearer {OFFLINE_KEY}' "
            f"-H 'Content-Type: application/json' -d '{body}'",
            f"  then: paxis report --ledger {ledger}   (Ctrl-C stops the server)",
        ]
        try:
            yield router, settings, lines
        finally:
            for sink in (*router.sinks, router.audit):
                close = getattr(sink, "close", None)
                if close is not None:
                    close()


def run_offline(args: argparse.Namespace) -> int:
    """``paxis serve --demo``: print where it listens and which key to use, then serve. The
    socket is bound first, so ``--port 0`` prints the port it got."""
    import socket

    import uvicorn

    from paxis_router.cli._output import emit
    from paxis_router.proxy.app import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
        sock.listen(2048)  # clients queue from now on, before uvicorn is up
        host, port = sock.getsockname()[:2]
        with offline_server(host, port) as (router, settings, lines):
            for line in lines:
                emit(line)
            config = uvicorn.Config(
                create_app(router, settings),
                host=host,
                port=port,
                log_level=args.log_level,
                access_log=False,
            )
            uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0
