"""``import paxis_router`` stays light: no heavy or vendor module, no socket, no env write.

Measured in a fresh interpreter, since this test process has already imported everything.
(The import time itself is a benchmark figure, ``import_s`` in benchmarks/overhead.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys

_HEAVY = (
    "litellm",
    "openai",
    "torch",
    "vllm",
    "transformers",
    "peft",
    "trl",
    "starlette",
    "uvicorn",
    "opentelemetry",
    "psycopg",
    "sklearn",
    "sentence_transformers",
    "numpy",
    "tiktoken",
    "rich",
)

_PROBE = """
import json, os, sys
events = []
def hook(event, args):
    if event in ("socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo"):
        events.append(event)
sys.addaudithook(hook)
env_before = dict(os.environ)
import paxis_router
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(sys.argv[1])))
print(json.dumps({"heavy": heavy, "sockets": events, "env_changed": dict(os.environ) != env_before,
                  "public": len(paxis_router.__all__)}))
"""


def _probe() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(_HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_import_is_light_and_offline() -> None:
    result = _probe()
    assert result["heavy"] == []
    assert result["sockets"] == []
    assert result["env_changed"] is False
    assert isinstance(result["public"], int)
    assert result["public"] > 0


def test_probe_detects_a_socket_and_a_heavy_import() -> None:
    # The probe itself must be able to fail: a socket and a heavy import are seen.
    code = _PROBE.replace(
        "import paxis_router\n", "import paxis_router, socket, numpy\nsocket.socket().close()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(_HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result = json.loads(out.stdout)
    assert result["heavy"] == ["numpy"]
    assert result["sockets"] == ["socket.__new__"]
