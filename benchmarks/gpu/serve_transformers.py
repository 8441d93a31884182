"""A small OpenAI-compatible server: one base model + LoRA adapters with transformers + peft.

This is NOT vLLM. It exists so ``bench_vllm.py --engine transformers`` can run the same routing
benchmark on a GPU machine where vLLM is not installed. It serves ``POST /v1/chat/completions``
(non-streaming) and ``GET /v1/models``; the request's ``model`` picks the adapter (peft's
``set_adapter``) or the base model (adapters disabled). Requests are batched dynamically: a
generation thread takes whatever is queued (up to ``--max-batch``), groups it by model and runs
one left-padded ``generate`` per group. Only the standard library, torch, transformers and peft
are needed. Every response carries ``"system_fingerprint": "transformers+peft (not vLLM)"``.

    python benchmarks/gpu/serve_transformers.py --base BASE_DIR --served-name tiny-base \\
        --adapter a=ADAPTER_A --adapter b=ADAPTER_B --port 8000 --device cuda

It prints ``READY <port>`` on stdout when it accepts requests.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FINGERPRINT = "transformers+peft (not vLLM)"


@dataclass
class Job:
    """One chat request waiting for the generation thread."""

    model: str
    prompt: str
    max_tokens: int
    done: threading.Event = field(default_factory=threading.Event)
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "length"
    error: str | None = None


class Engine:
    """The base model with its adapters, and the thread that batches generation."""

    def __init__(
        self,
        base: str,
        adapters: dict[str, str],
        *,
        served_name: str,
        device: str,
        max_batch: int,
    ) -> None:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.served_name = served_name
        self.adapters = adapters
        self.max_batch = max_batch
        self.device = device
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(base)
        self.tokenizer.padding_side = "left"
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype).to(device)
        if adapters:
            names = list(adapters)
            model = PeftModel.from_pretrained(model, adapters[names[0]], adapter_name=names[0])
            for name in names[1:]:
                model.load_adapter(adapters[name], adapter_name=name)
        model.eval()
        self.model = model
        self.jobs: queue.Queue[Job] = queue.Queue()
        self.lock = threading.Lock()
        threading.Thread(target=self._loop, name="generate", daemon=True).start()

    @property
    def models(self) -> list[str]:
        return [self.served_name, *self.adapters]

    def submit(self, job: Job) -> Job:
        self.jobs.put(job)
        job.done.wait()
        return job

    def _loop(self) -> None:
        while True:
            batch = [self.jobs.get()]
            time.sleep(0.002)  # let concurrent requests join the batch
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            groups: dict[str, list[Job]] = {}
            for job in batch:
                groups.setdefault(job.model, []).append(job)
            for model, jobs in groups.items():
                try:
                    self._generate(model, jobs)
                except Exception as exc:  # report to every waiting request, keep serving
                    for job in jobs:
                        job.error = f"{type(exc).__name__}: {exc}"
                for job in jobs:
                    job.done.set()

    def _generate(self, model_name: str, jobs: list[Job]) -> None:
        torch = self.torch
        tok = self.tokenizer
        enc = tok([j.prompt for j in jobs], return_tensors="pt", padding=True).to(self.device)
        max_new = max(j.max_tokens for j in jobs)
        with torch.inference_mode():
            if model_name == self.served_name and self.adapters:
                with self.model.disable_adapter():
                    out = self._run(enc, max_new)
            else:
                if self.adapters:
                    self.model.set_adapter(model_name)
                out = self._run(enc, max_new)
        width = enc["input_ids"].shape[1]
        for i, job in enumerate(jobs):
            new = out[i, width:].tolist()[: job.max_tokens]
            eos = tok.eos_token_id
            if eos in new:
                new = new[: new.index(eos)]
                job.finish_reason = "stop"
            job.text = tok.decode(new, skip_special_tokens=True)
            job.prompt_tokens = int(enc["attention_mask"][i].sum())
            job.completion_tokens = len(new)

    def _run(self, enc: Any, max_new: int) -> Any:  # Any: torch tensors
        return self.model.generate(
            **enc,
            max_new_tokens=max_new,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
        )


def make_handler(engine: Engine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, code: str) -> None:
            self._send(status, {"error": {"message": message, "type": "invalid_request_error",
                                          "code": code}})  # fmt: skip

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                data = [
                    {"id": m, "object": "model", "owned_by": FINGERPRINT} for m in engine.models
                ]
                self._send(200, {"object": "list", "data": data})
            else:
                self._error(404, f"no route {self.path}", "not_found")

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._error(404, f"no route {self.path}", "not_found")
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                self._error(400, "body is not JSON", "bad_json")
                return
            model = str(body.get("model") or engine.served_name)
            if model not in engine.models:
                self._error(404, f"model {model!r} not served", "model_not_found")
                return
            messages = [
                {"role": m.get("role", "user"), "content": str(m.get("content") or "")}
                for m in body.get("messages") or []
            ]
            prompt = engine.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
            job = engine.submit(Job(model, prompt, int(body.get("max_tokens") or 64)))
            if job.error is not None:
                self._send(500, {"error": {"message": job.error, "type": "server_error"}})
                return
            self._send(
                200,
                {
                    "id": f"chatcmpl-{uuid.uuid4().hex}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "system_fingerprint": FINGERPRINT,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": job.text},
                            "finish_reason": job.finish_reason,
                        }
                    ],
                    "usage": {
                        "prompt_tokens": job.prompt_tokens,
                        "completion_tokens": job.completion_tokens,
                        "total_tokens": job.prompt_tokens + job.completion_tokens,
                    },
                },
            )

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="OpenAI-compatible transformers+peft server")
    parser.add_argument("--base", required=True)
    parser.add_argument("--served-name", default="base")
    parser.add_argument("--adapter", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--max-batch", type=int, default=64)
    args = parser.parse_args(argv)
    adapters = dict(a.split("=", 1) for a in args.adapter)
    engine = Engine(
        args.base,
        adapters,
        served_name=args.served_name,
        device=args.device,
        max_batch=args.max_batch,
    )
    server = ThreadingHTTPServer((args.host, args.port), make_handler(engine))
    server.daemon_threads = True
    sys.stdout.write(f"READY {server.server_address[1]}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
