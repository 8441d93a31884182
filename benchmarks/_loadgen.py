"""A small HTTP/1.1 load generator on raw asyncio sockets, run as its own process.

Each of ``--concurrency`` keep-alive connections sends ``POST /v1/chat/completions`` requests
back to back until ``--requests`` have been sent in all or ``--duration-s`` has passed; one
line of JSON on stdout gives the count of answers, errors (non-200 or socket failures), the
wall time, its own CPU time and the sorted per-request latencies in milliseconds. It runs on
uvloop when that is installed (the ``[proxy]`` extra), to take less of the machine it measures.

Usage: python benchmarks/_loadgen.py --host 127.0.0.1 --port 8080 --concurrency 500 \
    --requests 10000 --duration-s 10 [--key KEY] [--model paxis/auto]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sys
import time


def _request_bytes(host: str, port: int, key: str | None, model: str) -> bytes:
    body = json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "What is 6*7?"}]}
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    )
    if key:
        head += f"Authorization: Bearer {key}\r\n"
    return head.encode() + b"\r\n" + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, float | None]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    chunked = False
    overhead_ms: float | None = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        lname = name.strip().lower()
        if lname == b"content-length":
            length = int(value.strip())
        elif lname == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif lname == b"x-paxis-overhead-ms":
            overhead_ms = float(value.strip())
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, overhead_ms


async def _run(args: argparse.Namespace) -> dict[str, object]:
    payload = _request_bytes(args.host, args.port, args.key, args.model)
    latencies_ms: list[float] = []
    overheads_ms: list[float] = []
    counts = {"ok": 0, "errors": 0}
    budget = {"left": args.requests}
    deadline = time.perf_counter() + args.duration_s

    async def connection() -> None:
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        while budget["left"] > 0 and time.perf_counter() < deadline:
            budget["left"] -= 1
            t0 = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(args.host, args.port)
                assert reader is not None
                writer.write(payload)
                status, overhead_ms = await asyncio.wait_for(_read_response(reader), args.timeout_s)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                counts["errors"] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            latencies_ms.append((time.perf_counter() - t0) * 1000)
            if overhead_ms is not None:
                overheads_ms.append(overhead_ms)
            counts["ok" if status == 200 else "errors"] += 1
        if writer is not None:
            writer.close()

    start = time.perf_counter()
    cpu_start = time.process_time()
    await asyncio.gather(*(connection() for _ in range(args.concurrency)))
    wall_s = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start
    latencies_ms.sort()
    overheads_ms.sort()
    return {
        "ok": counts["ok"],
        "errors": counts["errors"],
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "ms": latencies_ms,
        "overhead_ms": overheads_ms,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--timeout-s", type=float, default=30.0)
    parser.add_argument("--key", default=None)
    parser.add_argument("--model", default="paxis/auto")
    args = parser.parse_args()
    # The lighter event loop, when installed, leaves more of a shared machine to what is measured.
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        result = uvloop.run(_run(args))
    else:
        result = asyncio.run(_run(args))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
