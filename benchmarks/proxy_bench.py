"""How much does ``paxis serve`` add in front of an instant upstream?

Starts, all on 127.0.0.1: an instant OpenAI-compatible upstream (``FakeUpstreamProcess``, its own
process), ``paxis serve`` (its own processes, ``--workers`` of them (2): uvicorn on uvloop and
httptools, API-key auth, the Router over an ``OpenAICompatWorker`` whose answers the verifier
accepts, a real SQLite ledger row per request, committed), and the load generator
(``benchmarks/_loadgen.py``, a process of its own on raw keep-alive sockets).

Two phases, each against the upstream directly (the baseline) and through the proxy, same run:

* added latency: one connection, requests back to back; ``added_p50_ms`` / ``added_p99_ms`` are
  the proxied percentiles minus the direct ones;
* throughput: ``--concurrency`` connections (500) until ``--requests`` are answered or
  ``--duration-s`` passes; ``rps`` and ``error_rate`` (non-200 or socket errors) through the
  proxy, ``direct_rps`` straight to the upstream.

Targets (issue 6, on a 2-core machine): rps >= 1,500, added p50 <= 2 ms, errors <= 1 %.

Every figure comes from one run: the machine's load changes from run to run, so compare
``rps`` with ``direct_rps`` (and note ``uptime``'s load average with any figure you quote).

Usage: python benchmarks/proxy_bench.py [--requests 6000] [--concurrency 500] [--workers 2] [--json]
``--json`` prints {"rps", "added_p50_ms", "added_p99_ms", "error_rate", "direct_rps", ...}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import select
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paxis_router.proxy.config import hash_key
from paxis_router.testing.upstream import FakeUpstreamProcess

if TYPE_CHECKING:
    from collections.abc import Iterator

HERE = Path(__file__).resolve().parent
KEY = "pxs-bench-key"
_RUNNING = re.compile(r"running on http://127\.0\.0\.1:(\d+)")


def _policy(folder: Path, upstream_url: str) -> Path:
    path = folder / "bench-policy.yaml"
    path.write_text(
        f"""
tiers:
  - {{kind: local, name: "local:w", model: w, base_url: "{upstream_url}", timeout_s: 30,
     usd_per_mtok_in: "0.1", usd_per_mtok_out: "0.1"}}
  - {{kind: local, name: "frontier:f", model: f, base_url: "{upstream_url}", timeout_s: 30,
     usd_per_mtok_in: "2.5", usd_per_mtok_out: "10"}}
verifiers: [non_empty]
policy: {{escalate_when: verdict_failed}}
ledger: {{path: "{folder / "bench-ledger.db"}"}}
proxy:
  keys: [{{team: bench, key_sha256: "{hash_key(KEY)}"}}]
""",
        encoding="utf-8",
    )
    return path


@contextlib.contextmanager
def _serve(policy: Path, workers: int) -> Iterator[tuple[int, int]]:
    command = [sys.executable, "-m", "paxis_router", "serve", "--policy", str(policy)]
    command += ["--workers", str(workers)]
    proc = subprocess.Popen(
        [*command, "--port", "0", "--log-level", "info"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    try:
        port = None
        while port is None:
            ready, _, _ = select.select([proc.stderr], [], [], 60)
            line = proc.stderr.readline() if ready else ""
            if not line:
                raise RuntimeError("paxis serve did not start")
            match = _RUNNING.search(line)
            port = int(match.group(1)) if match else None
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        proc.stderr.close()


def _load(
    port: int, *, concurrency: int, requests: int, duration_s: float, key: str | None
) -> dict[str, Any]:  # Any: the load generator's JSON
    command = [sys.executable, str(HERE / "_loadgen.py"), "--port", str(port)]
    command += ["--concurrency", str(concurrency), "--requests", str(requests)]
    command += ["--duration-s", str(duration_s)]
    if key:
        command += ["--key", key]
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=duration_s + 120
    )
    result: dict[str, Any] = json.loads(out.stdout)  # Any: the load generator's JSON
    return result


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process and its children (``--workers``) have used so far,
    from Linux /proc."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(c) for c in (task / "children").read_text().split()]
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for one in pids:
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _pct(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def run(
    requests: int, concurrency: int, latency_requests: int, duration_s: float, workers: int = 1
) -> dict[str, Any]:
    """Run both phases; returns the figures (see the module docstring)."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeUpstreamProcess(answer="42", model="w") as upstream,
        _serve(_policy(Path(tmp), upstream.base_url), workers) as (proxy_port, proxy_pid),
    ):
        for port, key in ((upstream.port, None), (proxy_port, KEY)):  # warm-up
            _load(port, concurrency=4, requests=200, duration_s=30, key=key)
        direct_lat = _load(
            upstream.port, concurrency=1, requests=latency_requests, duration_s=60, key=None
        )
        proxy_lat = _load(
            proxy_port, concurrency=1, requests=latency_requests, duration_s=60, key=KEY
        )
        direct = _load(
            upstream.port,
            concurrency=concurrency,
            requests=requests,
            duration_s=duration_s,
            key=None,
        )
        cpu_before = _cpu_s(proxy_pid)
        proxied = _load(
            proxy_port,
            concurrency=concurrency,
            requests=requests,
            duration_s=duration_s,
            key=KEY,
        )
        proxy_cpu_s = _cpu_s(proxy_pid) - cpu_before
    sent = proxied["ok"] + proxied["errors"]
    return {
        "rps": round(proxied["ok"] / proxied["wall_s"], 1),
        "added_p50_ms": round(_pct(proxy_lat["ms"], 0.5) - _pct(direct_lat["ms"], 0.5), 3),
        "added_p99_ms": round(_pct(proxy_lat["ms"], 0.99) - _pct(direct_lat["ms"], 0.99), 3),
        "error_rate": round(proxied["errors"] / sent, 4) if sent else 1.0,
        "direct_rps": round(direct["ok"] / direct["wall_s"], 1),
        "direct_p50_ms": round(_pct(direct_lat["ms"], 0.5), 3),
        "proxy_p50_ms": round(_pct(proxy_lat["ms"], 0.5), 3),
        "proxy_p99_ms": round(_pct(proxy_lat["ms"], 0.99), 3),
        "app_overhead_p50_ms": round(_pct(proxy_lat["overhead_ms"], 0.5), 3),
        "loaded_p50_ms": round(_pct(proxied["ms"], 0.5), 3),
        "loaded_p99_ms": round(_pct(proxied["ms"], 0.99), 3),
        "proxy_cpu_ms_per_request": round(proxy_cpu_s * 1000 / max(proxied["ok"], 1), 3),
        "loadgen_cpu_ms_per_request": round(proxied["cpu_s"] * 1000 / max(sent, 1), 3),
        "requests": sent,
        "workers": workers,
        "concurrency": concurrency,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000, help="throughput-phase requests")
    parser.add_argument("--concurrency", type=int, default=500, help="connections (500)")
    parser.add_argument("--latency-requests", type=int, default=300, help="latency-phase requests")
    parser.add_argument("--duration-s", type=float, default=20.0, help="throughput phase cap")
    parser.add_argument("--workers", type=int, default=2, help="paxis serve --workers (2)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    figures = run(
        args.requests, args.concurrency, args.latency_requests, args.duration_s, args.workers
    )
    if args.json:
        sys.stdout.write(json.dumps(figures) + "\n")
        return 0
    ratio = figures["rps"] / figures["direct_rps"] if figures["direct_rps"] else float("nan")
    lines = [
        f"proxy throughput : {figures['rps']:.0f} req/s at {args.concurrency} connections, "
        f"{args.workers} server process(es) "
        f"(target >= 1500), errors {figures['error_rate']:.2%} (target <= 1 %)",
        f"direct upstream  : {figures['direct_rps']:.0f} req/s (baseline, same run); "
        f"proxy/direct = {ratio:.2f}x",
        f"added latency    : p50 {figures['added_p50_ms']:.2f} ms (target <= 2 ms), "
        f"p99 {figures['added_p99_ms']:.2f} ms  [one connection: direct p50 "
        f"{figures['direct_p50_ms']:.2f} ms, proxied p50 {figures['proxy_p50_ms']:.2f} ms]",
        f"app overhead     : p50 {figures['app_overhead_p50_ms']:.2f} ms (x-paxis-overhead-ms: "
        "proxy time outside the worker call)",
        f"proxy CPU        : {figures['proxy_cpu_ms_per_request']:.2f} ms per request in the "
        "paxis serve processes (uvicorn + app + router + ledger + worker HTTP call); "
        f"the load generator {figures['loadgen_cpu_ms_per_request']:.2f} ms",
        f"under load       : p50 {figures['loaded_p50_ms']:.1f} ms, "
        f"p99 {figures['loaded_p99_ms']:.1f} ms through the proxy",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
