"""``paxis serve``: the OpenAI-compatible endpoint over a policy file, on uvicorn.

``paxis serve --policy FILE [--host 127.0.0.1] [--port 8080]`` serves the policy's router as
model ``paxis/auto`` (or the ``proxy.model`` it names). API keys and limits come from the
policy's ``proxy:`` section or from ``--proxy-config FILE``. ``--workers N`` runs N server
processes on the port (each with its own router; the ledger file is shared).
``paxis serve --demo`` serves offline over a built-in fake model server and prints the URL and
the key to use. ``paxis serve --new-key TEAM`` prints a fresh key and the config lines holding
its hash (only the hash is ever stored): one for ``proxy.keys`` (a team's key) and one for
``proxy.admin_keys`` (a key that may read ``GET /metrics``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paxis_router.cli._output import emit, plain

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from paxis_router.proxy.config import ProxySettings
    from paxis_router.router import Router


_POLICY_ENV = "PAXIS_SERVE_POLICY"
_PROXY_ENV = "PAXIS_SERVE_PROXY_CONFIG"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` command."""
    parser = sub.add_parser(
        "serve",
        help="serve a policy as an OpenAI-compatible API (POST /v1/chat/completions)",
        description=plain(__doc__),
        epilog="examples:\n  paxis serve --demo\n  paxis serve --policy policy.yaml --port 8080"
        "\n  paxis serve --new-key claims",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--policy", help="the policy YAML (tiers, verifiers, ledger, proxy keys)")
    parser.add_argument(
        "--proxy-config", help="a YAML file with the proxy: section (default: the policy's)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind (8080; 0 = any)")
    parser.add_argument(
        "--log-level", default="warning", help="uvicorn's log level (warning, info, debug)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port (1); metrics are then per process",
    )
    parser.add_argument(
        "--new-key", metavar="TEAM", help="print a fresh API key for TEAM and its config line"
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="serve offline over a built-in fake model server (no key, no GPU); prints the URL "
        "and the API key to use",
    )
    parser.set_defaults(handler=run)


def load(policy: str, proxy_config: str | None) -> tuple[Router, ProxySettings]:
    """The policy's Router and the proxy settings: ``--proxy-config`` when given, else the
    policy's ``proxy:`` section."""
    from paxis_router.config.schema import load_config
    from paxis_router.proxy.config import load_proxy_settings, settings_from_mapping
    from paxis_router.router import Router

    cfg = load_config(policy)
    if proxy_config is not None:
        settings = load_proxy_settings(proxy_config)
    else:
        settings = settings_from_mapping(cfg.proxy, source=policy)
    return Router.from_config(cfg), settings


def _run_workers(args: argparse.Namespace) -> None:
    """``--workers N``: N uvicorn processes accepting on one socket, bound and listening here
    first (so that clients queue until the workers are up, and port 0 is resolved)."""
    import logging
    import socket

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    # Each worker process builds its own app from the same files (the ledger file is shared).
    os.environ[_POLICY_ENV] = str(Path(args.policy).resolve())
    if args.proxy_config:
        os.environ[_PROXY_ENV] = str(Path(args.proxy_config).resolve())
    config = uvicorn.Config(
        f"{__name__}:app_from_environment",
        factory=True,
        workers=args.workers,
        host=args.host,
        port=args.port,
        **_uvicorn_options(args),
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(config.backlog)
    sock.set_inheritable(True)
    host, port = sock.getsockname()[:2]
    logging.getLogger("uvicorn.error").info(
        "paxis serve running on http://%s:%d with %d worker processes", host, port, args.workers
    )
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        sock.close()


def _uvicorn_options(args: argparse.Namespace) -> dict[str, Any]:  # Any: uvicorn's kwargs
    """The fast uvicorn stack when installed (the ``[proxy]`` extra): uvloop and httptools; no
    access log (the ledger and /metrics record every request); a deep accept backlog."""
    import importlib.util

    fast_loop = importlib.util.find_spec("uvloop") is not None
    fast_http = importlib.util.find_spec("httptools") is not None
    return {
        "log_level": args.log_level,
        "access_log": False,
        "loop": "uvloop" if fast_loop else "asyncio",
        "http": "httptools" if fast_http else "h11",
        "backlog": 4096,
    }


def app_from_environment() -> Starlette:
    """The app of one ``--workers`` process: the files named by ``paxis serve`` in the
    environment it set for its worker processes."""
    from paxis_router.proxy.app import create_app

    router, settings = load(os.environ[_POLICY_ENV], os.environ.get(_PROXY_ENV))
    return create_app(router, settings)


def run(args: argparse.Namespace) -> int:
    """Handler of ``paxis serve``."""
    if args.new_key:
        from paxis_router.proxy.config import hash_key, new_key

        key = new_key()
        emit(f"key (give it to {args.new_key}; it is not stored anywhere): {key}")
        emit("config line, for a team's key (under proxy.keys):")
        emit(f'  - {{team: {args.new_key}, key: "sha256:{hash_key(key)}"}}')
        emit("or, for a key that may read GET /metrics (under proxy.admin_keys):")
        emit(f'  - {{name: {args.new_key}, key: "sha256:{hash_key(key)}"}}')
        return 0
    if args.demo:
        from paxis_router.cli._serve_offline import run_offline

        return run_offline(args)
    if not args.policy:
        from paxis_router.errors import ConfigError

        raise ConfigError("paxis serve needs --policy FILE (or --new-key TEAM)")
    router, settings = load(args.policy, args.proxy_config)  # fail here, before any fork
    if not settings.keys and settings.anonymous_team is None:
        import logging

        logging.getLogger(__name__).warning(
            "no proxy.keys configured: every request will get 401; add keys with --new-key"
        )
    if not settings.admin_keys:
        import logging

        logging.getLogger(__name__).info(
            "no proxy.admin_keys configured: GET /metrics is closed; add one with --new-key"
        )
    if args.workers > 1:
        _run_workers(args)
    else:
        import uvicorn

        from paxis_router.proxy.app import create_app

        uvicorn.run(
            create_app(router, settings), host=args.host, port=args.port, **_uvicorn_options(args)
        )
    return 0
