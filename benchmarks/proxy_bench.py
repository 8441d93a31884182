"""How fast is ``paxis serve`` in front of an instant upstream, as users run it, and beside
LiteLLM's proxy on the same upstream, cores and load?

Starts, all on 127.0.0.1: an instant OpenAI-compatible upstream (``FakeUpstreamProcess``, its own
process), the server under test, and the load generator (``benchmarks/_loadgen.py``, a process of
its own on raw keep-alive sockets). The servers are pinned with ``taskset`` to ``--server-cores``
(``--workers`` processes, one per core by default), the upstream and the load generator to
``--client-cores``, so every server gets the same CPUs. Configurations, each measured in the same
run (named on the command line with ``--configs``):

* ``direct`` — the upstream alone (the baseline every ratio is taken against);
* ``bare`` — ``paxis serve`` with a two-tier ladder of OpenAI-compatible tiers, a ``non_empty``
  verifier and a SQLite ledger row per request;
* ``default`` — ``paxis serve`` with the shipped ``policies/default.yaml`` as users run it: its
  verifiers (``non_empty``, ``logprob_confidence``), escalation policy, SQLite ledger, the
  hash-chained audit log and the action gate, plus the bundled skills library (BM25 selection,
  skill bodies in the prompt; the line is commented out in the file, the issue asks for it).
  Only the tiers' ``base_url`` (and the frontier tier's kind: an OpenAI-compatible tier at the same
  upstream instead of litellm, so that nothing leaves the machine) and the files' paths change;
* ``litellm`` — LiteLLM's proxy (``litellm --config``, master-key auth, no database, no
  callbacks) serving the same upstream as an ``openai/`` model, from its own virtualenv
  (``--litellm-venv``, created on demand with ``pip install 'litellm[proxy]'``; never the project's
  environment). Skipped, with the reason printed, when it cannot be installed or started.

For each: throughput with ``--concurrency`` connections until ``--requests`` are answered or
``--duration-s`` passes (``rps``, ``error_rate``: non-200 or socket errors), and for the paxis
configurations the added latency over one connection (``added_p50_ms``, ``added_p99_ms``: proxied
percentiles minus direct ones) and the servers' CPU per request.

Goals: ``bare`` >= 1,500 req/s on a 2-core machine (issue 6); ``default`` >= 10x ``litellm``
(issue 18). Compare figures of one run only: the machine's load moves between runs (the output
names the load average).

Usage: python benchmarks/proxy_bench.py [--configs direct,bare,default,litellm] [--requests 4000]
  [--concurrency 200] [--server-cores 1] [--client-cores 0] [--workers N] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from paxis_router.proxy.config import hash_key
from paxis_router.testing.upstream import FakeUpstreamProcess

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KEY = "pxs-bench-key"
LITELLM_KEY = "sk-bench-master-key"
MODEL = "paxis/auto"
CONFIGS = ("direct", "bare", "default", "litellm")
_RUNNING = re.compile(r"running on http://127\.0\.0\.1:(\d+)")

JsonDict = dict[str, Any]  # Any: the load generator's and the report's JSON


class Skipped(Exception):
    """A configuration that cannot run here (the reason is its message)."""


# --- configurations -------------------------------------------------------------------------


def bare_policy(folder: Path, upstream_url: str) -> Path:
    path = folder / "bare-policy.yaml"
    path.write_text(
        f"""
tiers:
  - {{kind: local, name: "local:w", model: w, base_url: "{upstream_url}", timeout_s: 30,
     usd_per_mtok_in: "0.1", usd_per_mtok_out: "0.1"}}
  - {{kind: local, name: "frontier:f", model: f, base_url: "{upstream_url}", timeout_s: 30,
     usd_per_mtok_in: "2.5", usd_per_mtok_out: "10"}}
verifiers: [non_empty]
policy: {{escalate_when: verdict_failed}}
ledger: {{path: "{folder / "bare-ledger.db"}"}}
proxy:
  keys: [{{team: bench, key: "sha256:{hash_key(KEY)}"}}]
""",
        encoding="utf-8",
    )
    return path


def default_policy(folder: Path, upstream_url: str, keys: int = 1) -> Path:
    """``policies/default.yaml`` pointed at the fake upstream, with the bundled skills on."""
    data: JsonDict = yaml.safe_load((ROOT / "policies" / "default.yaml").read_text("utf-8"))
    worker, frontier = data["tiers"][0], data["tiers"][1]
    worker["base_url"] = upstream_url
    data["tiers"][1] = {
        "kind": "local",
        "name": frontier["name"],
        "model": frontier["model"],
        "base_url": upstream_url,
        "timeout_s": frontier.get("timeout_s", 120),
        "usd_per_mtok_in": "2.5",
        "usd_per_mtok_out": "10",
    }
    data.setdefault("skills", {"dir": str(ROOT / "skills"), "k": 3, "min_score": 1.5})
    data["skills"].setdefault("fallback", "general")
    data["skills"]["dir"] = str((ROOT / "policies" / data["skills"]["dir"]).resolve())
    data["ledger"]["path"] = str(folder / "default-ledger.db")
    data["audit"]["path"] = str(folder / "default-audit.jsonl")
    data["proxy"] = {"keys": _keys(keys)}
    path = folder / "default-policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _keys(count: int) -> list[JsonDict]:
    """The bench key plus ``count - 1`` others (a proxy with many teams)."""
    keys = [{"team": "bench", "key": f"sha256:{hash_key(KEY)}"}]
    keys += [{"team": f"team{i}", "key": f"sha256:{hash_key(f'pxs-{i}')}"} for i in range(1, count)]
    return keys


def litellm_config(folder: Path, upstream_url: str) -> Path:
    path = folder / "litellm.yaml"
    config = {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {"model": "openai/w", "api_base": upstream_url, "api_key": "x"},
            }
        ],
        "general_settings": {"master_key": LITELLM_KEY},
        "litellm_settings": {"telemetry": False, "drop_params": True},
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


# --- processes ------------------------------------------------------------------------------


def _pinned(command: list[str], cores: Sequence[int] | None) -> list[str]:
    if not cores or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", ",".join(map(str, cores)), *command]


@contextlib.contextmanager
def serve_paxis(
    policy: Path, workers: int, cores: Sequence[int] | None
) -> Iterator[tuple[int, int]]:
    """``paxis serve`` on a free port, pinned; yields its port and pid."""
    command = [sys.executable, "-m", "paxis_router", "serve", "--policy", str(policy)]
    command += ["--workers", str(workers), "--port", "0", "--log-level", "info"]
    proc = subprocess.Popen(
        _pinned(command, cores), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert proc.stderr is not None
    try:
        port = None
        seen: list[str] = []
        while port is None:
            ready, _, _ = select.select([proc.stderr], [], [], 120)
            line = proc.stderr.readline() if ready else ""
            if not line:
                raise RuntimeError(f"paxis serve did not start: {''.join(seen)[-2000:]}")
            seen.append(line)
            match = _RUNNING.search(line)
            port = int(match.group(1)) if match else None
        yield port, proc.pid  # taskset execs the command: the same pid
    finally:
        _stop(proc)


def ensure_litellm(venv: Path, install: bool) -> Path:
    """The ``litellm`` executable of ``venv``, installing ``litellm[proxy]`` there when absent
    (and ``install``); Skipped when it cannot be had."""
    exe = venv / "bin" / "litellm"
    if exe.exists():
        return exe
    if not install:
        raise Skipped(f"no LiteLLM at {venv} (run without --no-install to create it)")
    sys.stderr.write(f"installing litellm[proxy] into {venv} (its own virtualenv) ...\n")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"],
            check=True,
            timeout=1800,
            stdout=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise Skipped(f"could not install litellm[proxy] into {venv}: {exc}") from exc
    if not exe.exists():
        raise Skipped(f"litellm[proxy] installed into {venv} without a litellm command")
    return exe


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_litellm(
    exe: Path, config: Path, workers: int, cores: Sequence[int] | None, log: Path
) -> Iterator[tuple[int, int]]:
    """LiteLLM's proxy on a free port, pinned; yields its port and pid once it answers."""
    port = _free_port()
    command = [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--num_workers", str(workers)]
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # never fetch the price map
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_ADMIN_UI": "True",
    }
    env.pop("PYTHONPATH", None)  # its own environment, not the project's
    with log.open("w") as out:
        proc = subprocess.Popen(_pinned(command, cores), stdout=out, stderr=out, env=env)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise Skipped(f"LiteLLM's proxy exited at start ({proc.returncode}): {tail}")
            try:
                url = f"http://127.0.0.1:{port}/health/liveliness"
                with urllib.request.urlopen(url, timeout=2) as reply:
                    if reply.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise Skipped("LiteLLM's proxy did not answer /health/liveliness within 180 s")
            time.sleep(0.5)
        yield port, proc.pid
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
    if proc.stderr is not None:
        proc.stderr.close()


def load(
    port: int,
    *,
    concurrency: int,
    requests: int,
    duration_s: float,
    key: str | None,
    cores: Sequence[int] | None,
) -> JsonDict:
    command = [sys.executable, str(HERE / "_loadgen.py"), "--port", str(port)]
    command += ["--concurrency", str(concurrency), "--requests", str(requests)]
    command += ["--duration-s", str(duration_s), "--model", MODEL]
    if key:
        command += ["--key", key]
    out = subprocess.run(
        _pinned(command, cores),
        capture_output=True,
        text=True,
        check=True,
        timeout=duration_s + 120,
    )
    result: JsonDict = json.loads(out.stdout)
    return result


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children so far (Linux /proc)."""
    pids = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            pids += [int(c) for c in (task / "children").read_text().split()]
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for one in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _pct(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


# --- the run --------------------------------------------------------------------------------


def default_cores() -> tuple[list[int], list[int]]:
    """Server cores and client (upstream + load generator) cores for this machine."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) >= 4:
        return cores[:2], cores[2:]
    if len(cores) >= 2:
        return cores[-1:], cores[:-1]
    return cores, cores


def run(args: argparse.Namespace) -> JsonDict:
    """Measure each configuration; returns {"configs": {name: figures}, "skipped": {...}}."""
    server_cores, client_cores = args.server_cores, args.client_cores
    workers = args.workers or len(server_cores)
    figures: dict[str, JsonDict] = {}
    skipped: dict[str, str] = {}
    phase = {
        "concurrency": args.concurrency,
        "requests": args.requests,
        "duration_s": args.duration_s,
        "cores": client_cores,
    }
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeUpstreamProcess(answer="42", model="w") as upstream,
    ):
        folder = Path(tmp)
        os.sched_setaffinity(upstream.pid, client_cores)
        direct_lat = load(
            upstream.port,
            concurrency=1,
            requests=args.latency_requests,
            duration_s=30,
            key=None,
            cores=client_cores,
        )
        for name in args.configs:
            try:
                if name == "direct":
                    result = load(upstream.port, key=None, **phase)
                    figures[name] = _throughput(result)
                elif name in ("bare", "default"):
                    policy = (
                        bare_policy(folder, upstream.base_url)
                        if name == "bare"
                        else default_policy(folder, upstream.base_url, args.keys)
                    )
                    with serve_paxis(policy, workers, server_cores) as (port, pid):
                        figures[name] = _measure_paxis(port, pid, args, phase, direct_lat)
                elif name == "litellm":
                    exe = ensure_litellm(args.litellm_venv, install=not args.no_install)
                    config = litellm_config(folder, upstream.base_url)
                    log = folder / "litellm.log"
                    with serve_litellm(exe, config, workers, server_cores, log) as (port, pid):
                        warm = {"concurrency": 4, "requests": 50, "duration_s": 60}
                        load(port, key=LITELLM_KEY, cores=client_cores, **warm)
                        cpu0 = _cpu_s(pid)
                        result = load(port, key=LITELLM_KEY, **phase)
                        figures[name] = _throughput(result, _cpu_s(pid) - cpu0)
                        if result["ok"] == 0:
                            raise Skipped(f"LiteLLM answered no request: {result}")
                else:
                    raise Skipped(f"unknown configuration {name!r}; known: {CONFIGS}")
            except Skipped as exc:
                figures.pop(name, None)
                skipped[name] = str(exc)
    return {
        "configs": figures,
        "skipped": skipped,
        "server_cores": server_cores,
        "client_cores": client_cores,
        "workers": workers,
        "concurrency": args.concurrency,
        "load_average": os.getloadavg(),
    }


def _measure_paxis(
    port: int, pid: int, args: argparse.Namespace, phase: JsonDict, direct: JsonDict
) -> JsonDict:
    cores = phase["cores"]
    load(port, concurrency=4, requests=200, duration_s=30, key=KEY, cores=cores)  # warm-up
    lat = load(
        port, concurrency=1, requests=args.latency_requests, duration_s=30, key=KEY, cores=cores
    )
    cpu0 = _cpu_s(pid)
    result = load(port, key=KEY, **phase)
    out = _throughput(result, _cpu_s(pid) - cpu0)
    out.update(
        {
            "added_p50_ms": round(_pct(lat["ms"], 0.5) - _pct(direct["ms"], 0.5), 3),
            "added_p99_ms": round(_pct(lat["ms"], 0.99) - _pct(direct["ms"], 0.99), 3),
            "app_overhead_p50_ms": round(_pct(lat["overhead_ms"], 0.5), 3),
        }
    )
    return out


def _throughput(result: JsonDict, server_cpu_s: float | None = None) -> JsonDict:
    sent = result["ok"] + result["errors"]
    out: JsonDict = {
        "rps": round(result["ok"] / result["wall_s"], 1),
        "error_rate": round(result["errors"] / sent, 4) if sent else 1.0,
        "requests": sent,
        "loaded_p50_ms": round(_pct(result["ms"], 0.5), 3),
        "loaded_p99_ms": round(_pct(result["ms"], 0.99), 3),
    }
    if server_cpu_s is not None:
        out["server_cpu_ms_per_request"] = round(server_cpu_s * 1000 / max(result["ok"], 1), 3)
    return out


def report(figures: JsonDict) -> str:
    configs: dict[str, JsonDict] = figures["configs"]
    lines = [
        f"cores: servers on {figures['server_cores']} ({figures['workers']} worker process(es)), "
        f"upstream + load generator on {figures['client_cores']}; "
        f"{figures['concurrency']} connections; load average "
        + ", ".join(f"{x:.1f}" for x in figures["load_average"])
    ]
    direct = configs.get("direct", {}).get("rps")
    for name, row in configs.items():
        text = f"{name:8s}: {row['rps']:8.1f} req/s, errors {row['error_rate']:.2%}"
        if direct and name != "direct":
            text += f", {row['rps'] / direct:.2f}x direct"
        if "added_p50_ms" in row:
            text += f", added p50 {row['added_p50_ms']:.2f} ms / p99 {row['added_p99_ms']:.2f} ms"
        if row.get("server_cpu_ms_per_request") is not None:
            text += f", server CPU {row['server_cpu_ms_per_request']:.2f} ms/request"
        text += f", loaded p50 {row['loaded_p50_ms']:.0f} ms / p99 {row['loaded_p99_ms']:.0f} ms"
        lines.append(text)
    peer = configs.get("litellm", {}).get("rps")
    for name in ("default", "bare"):
        if peer and name in configs:
            lines.append(
                f"{name} / litellm = {configs[name]['rps'] / peer:.1f}x (goal for default: >= 10x)"
            )
    if "bare" in configs:
        lines.append(f"bare: {configs['bare']['rps']:.0f} req/s (goal on 2 cores: >= 1500)")
    for name, why in figures["skipped"].items():
        lines.append(f"{name:8s}: skipped: {why}")
    return "\n".join(lines) + "\n"


def _cores(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        out += list(range(int(first), int(last or first) + 1))
    return out


def main(argv: list[str] | None = None) -> int:
    server, client = default_cores()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS), help="which, in order")
    parser.add_argument("--requests", type=int, default=4000, help="throughput-phase requests")
    parser.add_argument("--concurrency", type=int, default=200, help="connections (200)")
    parser.add_argument("--latency-requests", type=int, default=200, help="one-connection phase")
    parser.add_argument("--duration-s", type=float, default=15.0, help="throughput phase cap")
    parser.add_argument("--server-cores", type=_cores, default=server, help="e.g. 0,1 or 0-1")
    parser.add_argument("--client-cores", type=_cores, default=client, help="e.g. 2-15")
    parser.add_argument("--workers", type=int, default=0, help="server processes (one per core)")
    parser.add_argument("--keys", type=int, default=1, help="team keys in the default config")
    parser.add_argument(
        "--litellm-venv", type=Path, default=ROOT / ".bench-venv-litellm", help="its virtualenv"
    )
    parser.add_argument("--no-install", action="store_true", help="never pip install litellm")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    figures = run(args)
    sys.stdout.write(json.dumps(figures) + "\n" if args.json else report(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
