"""examples/*.py say what is missing (a key, a server, an extra, data) and exit 1, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _run(script: str, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if k != "PAXIS_API_KEY"},
        timeout=120,
        check=False,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


def test_openai_client_without_a_key(tmp_path: Path) -> None:
    done = _run("openai_client.py", cwd=tmp_path)
    assert done.returncode == 2  # argparse's usage error
    assert "no API key: pass --api-key or set PAXIS_API_KEY" in done.stderr
    assert "Traceback" not in done.stderr


def test_openai_client_without_a_server(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    done = _run("openai_client.py", "--base-url", url, "--api-key", "pxs-x", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith(f"cannot reach paxis serve at {url}/chat/completions")
    assert "Traceback" not in done.stderr


def test_openai_agents_without_a_key_or_a_server(tmp_path: Path) -> None:
    keyless = _run("openai_agents.py", cwd=tmp_path)
    assert keyless.returncode == 2  # argparse's usage error
    assert "no API key: pass --api-key or set PAXIS_API_KEY" in keyless.stderr
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    done = _run("openai_agents.py", "--base-url", url, "--api-key", "pxs-x", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith(f"cannot reach paxis serve at {url}/chat/completions")
    assert "Traceback" not in done.stderr + keyless.stderr


def test_train_worker_without_exported_data(tmp_path: Path) -> None:
    argv = ("--tiny", "--data", str(tmp_path / "none"), "--output", str(tmp_path / "out"))
    done = _run("train_worker.py", *argv, cwd=tmp_path)
    assert done.returncode == 2
    assert f"{tmp_path / 'none' / 'train.jsonl'} not found: export training data first" in (
        done.stderr
    )
    assert "paxis distill export --kind sft" in done.stderr
    assert "Traceback" not in done.stderr
