"""From ``pip install`` to a report, outside the source tree: the wheel in a fresh venv.

Builds the wheel, installs it with the ``[proxy]`` extra (and the OpenAI SDK, to call the proxy)
into a new virtual environment that has no litellm, and runs the newcomer's path from an empty
folder with no ``PYTHONPATH``: ``paxis --version``, ``paxis demo``, the commands it prints
(report, HTML report, audit verify, training export), ``paxis policy check`` and ``paxis serve``
with an offline policy answering one request from the OpenAI SDK. Also: the core never imports
litellm, a ``kind: litellm`` tier without it says which extra to install, and the examples that
need an extra say so. Needs the package index (or pip's cache); about a minute.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from paxis_router.cli import main

ROOT = Path(__file__).resolve().parents[1]
KEY = "pxs-wheel-test"
DEMO_LIMIT = "200"

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    """The environment without anything that would import the source tree instead."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def _run(argv: list[str], cwd: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=240, check=False
    )
    if check:
        assert done.returncode == 0, f"{argv}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the built wheel and its [proxy] extra installed; yields its bin/."""
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(ROOT)], base
    )
    (wheel,) = dist.glob("paxis_router-*.whl")
    venv.EnvBuilder(with_pip=True).create(base / "venv")
    bin_dir = base / "venv" / "bin"
    _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", f"{wheel}[proxy]", "openai"], base)
    yield bin_dir


@pytest.fixture
def work(tmp_path: Path) -> Path:
    folder = tmp_path / "newcomer"
    folder.mkdir()
    return folder


def test_the_installed_package_runs_the_whole_first_hour(
    installed: Path, work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paxis, python = str(installed / "paxis"), str(installed / "python")
    version = _run([paxis, "--version"], work).stdout
    assert version.startswith("paxis-router ")
    assert str(installed.parent / "lib") in version  # the installed copy, not the source tree

    # The core has no litellm: not installed, never imported.
    probe = "import sys, importlib.util, paxis_router.pricing as p; import paxis_router.router\n"
    probe += "print(importlib.util.find_spec('litellm') is None, 'litellm' in sys.modules,"
    probe += " p.litellm_price('gpt-4o').input_usd_per_token, p.price_map_source())"
    assert _run([python, "-c", probe], work).stdout.startswith(
        "True False 0.0000025 paxis_router's snapshot of litellm"
    )

    # paxis demo, then each command it prints, exactly as printed, from the same folder.
    demo = _run([paxis, "demo"], work).stdout
    assert f"ledger:    {work / 'paxis-ledger.db'}" in demo
    commands = [line.split("#")[0].split() for line in demo.split("Next:\n", 1)[1].splitlines()]
    assert [c[1] for c in commands] == ["report", "report", "audit", "distill"]
    for command in commands:
        out = _run([str(installed / command[0]), *command[1:]], work).stdout
        if command[1] == "distill":
            assert "wrote 0 train" not in out
    assert (work / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    report = _run([paxis, "report"], work).stdout
    assert "$5.1054" in report  # frontier-only: the figure `paxis demo` leads with
    assert "$1.3362" in report  # routed spend

    # The same figures as a demo run here, where litellm and tiktoken are installed: the
    # token counts ship with the data, the prices with the package.
    fresh = json.loads(_run([paxis, "demo", "--limit", DEMO_LIMIT, "--json"], work).stdout)
    here = work.parent / "here"
    here.mkdir()
    assert main(["demo", "--limit", DEMO_LIMIT, "--json", "--ledger", str(here / "d.db")]) == 0
    local = json.loads(capsys.readouterr().out)
    for key in ("spend_usd", "frontier_only_usd", "frontier_recorded_answers_usd", "accuracy"):
        assert fresh[key] == local[key], key

    policy = _run(
        [python, "-c", "import paxis_router.cli.demo as d; print(d.default_policy())"], work
    )
    checked = _run([paxis, "policy", "check", policy.stdout.strip()], work).stdout
    assert "price: $10.0000 in / $30.0000 out per million tokens" in checked


def test_a_litellm_tier_without_litellm_names_the_extra(installed: Path, work: Path) -> None:
    policy = work / "frontier.yaml"
    policy.write_text("tiers: [{kind: litellm, model: gpt-4o}]\n", encoding="utf-8")
    done = _run(
        [str(installed / "paxis"), "route", "--policy", str(policy), "hi"], work, check=False
    )
    assert done.returncode == 2
    assert "pip install 'paxis-router[litellm]'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("example", "message"),
    [
        ("litellm_provider.py", "pip install 'paxis-router[litellm]'"),
        ("langchain_chat.py", "pip install 'paxis-router[langchain]'"),
    ],
)
def test_examples_name_the_extra_they_need(
    installed: Path, work: Path, example: str, message: str
) -> None:
    done = _run([str(installed / "python"), str(ROOT / "examples" / example)], work, check=False)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_paxis_serve_answers_the_openai_sdk_offline(installed: Path, work: Path) -> None:
    fake = ["-m", "paxis_router.testing.upstream", "--print-port", "--answer", "51"]
    upstream = subprocess.Popen(
        [str(installed / "python"), *fake, "--model", "worker"],
        cwd=work,
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    serve: subprocess.Popen[str] | None = None
    try:
        assert upstream.stdout is not None
        base_url = f"http://127.0.0.1:{int(upstream.stdout.readline())}/v1"
        policy = work / "offline.yaml"
        digest = hashlib.sha256(KEY.encode()).hexdigest()
        policy.write_text(
            f"tiers: [{{kind: local, name: 'local:w', model: worker, base_url: '{base_url}'}}]\n"
            "verifiers: [non_empty]\n"
            "ledger: {path: served.db}\n"
            f"proxy: {{keys: [{{team: newcomer, key_sha256: '{digest}'}}]}}\n",
            encoding="utf-8",
        )
        port = _free_port()
        argv = ["serve", "--policy", str(policy), "--port", str(port), "--log-level", "info"]
        serve = subprocess.Popen(
            [str(installed / "paxis"), *argv],
            cwd=work,
            env=_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        assert serve.stderr is not None
        seen = []
        for line in serve.stderr:  # blocks until uvicorn says it listens (or the server dies)
            seen.append(line)
            if "Uvicorn running on" in line:
                break
        else:
            pytest.fail("paxis serve exited before listening:\n" + "".join(seen))
        client = (
            "import openai\n"
            f"c = openai.OpenAI(base_url='http://127.0.0.1:{port}/v1', api_key='{KEY}')\n"
            "r = c.chat.completions.with_raw_response.create(model='paxis/auto', "
            "messages=[{'role': 'user', 'content': 'What is 17 * 3?'}])\n"
            "print(r.parse().choices[0].message.content, r.headers['x-paxis-tier'])\n"
        )
        answered = _run([str(installed / "python"), "-c", client], work).stdout
        assert answered == "51 local:w\n"
    finally:
        for process in (serve, upstream):
            if process is not None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=60)
                for pipe in (process.stdout, process.stderr):
                    if pipe is not None:
                        pipe.close()
    argv = [str(installed / "paxis"), "report", "--ledger", "served.db", "--format", "json"]
    report = json.loads(_run(argv, work).stdout)
    assert (report["routes"], report["unknown_cost_attempts"]) == (1, 1)  # no price: unknown
