"""benchmarks/gpu/serve_transformers.py on the CPU: adapters per skill through the real Router.

The server (transformers + peft, NOT vLLM) serves a tiny random base model created here and two
random LoRA adapters; an OpenAICompatWorker with adapters routes each skill to its adapter
over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from paxis_router.ledger.sqlite import SQLiteLedger
from paxis_router.router import Router
from paxis_router.skills.library import SkillLibrary
from paxis_router.skills.model import Skill
from paxis_router.types import ChatRequest
from paxis_router.workers.openai_compat import OpenAICompatWorker

pytest.importorskip("peft")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

ROOT = Path(__file__).resolve().parents[2]


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    train_worker = _load(ROOT / "examples" / "train_worker.py", "train_worker_for_bench")
    serve = _load(ROOT / "benchmarks" / "gpu" / "serve_transformers.py", "serve_transformers")
    root = tmp_path_factory.mktemp("bench")
    base = train_worker.make_tiny_base(root / "base")
    adapters = {}
    for seed, name in enumerate(("skill-a", "skill-b")):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(str(base))
        config = LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
        get_peft_model(model, config).save_pretrained(str(root / name))
        adapters[name] = str(root / name)
    engine = serve.Engine(str(base), adapters, served_name="tiny-base", device="cpu", max_batch=8)
    httpd: Any = serve.ThreadingHTTPServer(("127.0.0.1", 0), serve.make_handler(engine))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


async def test_router_sends_each_skill_to_its_adapter(server: str, tmp_path: Path) -> None:
    worker = OpenAICompatWorker("local:tiny", "tiny-base", server, adapters=["skill-a", "skill-b"])
    skills = SkillLibrary(
        [
            Skill("inv", "inv", "invoices", metadata={"paxis-adapter": "skill-a"}),
            Skill("tix", "tix", "tickets", metadata={"paxis-adapter": "skill-b"}),
            Skill("gen", "gen", "general", metadata={}),
        ]
    )
    ledger = SQLiteLedger(tmp_path / "bench.db")
    router = Router(tiers=[worker], skills=skills, ledger=ledger)
    requests = [
        ChatRequest.from_text("total?", skill=s).model_copy(update={"max_tokens": 4})
        for s in ("inv", "tix", "gen", "inv")
    ]
    results = await router.route_many(requests, concurrency=4)
    await worker.aclose()
    routed = [r for r in results if not isinstance(r, Exception)]
    assert [r.tier for r in routed] == ["local:tiny"] * 4
    by_route = {row.route_id: row.model for row in ledger.rows()}
    assert [by_route[r.route_id] for r in routed] == ["skill-a", "skill-b", "tiny-base", "skill-a"]
    tokens = [r.completion_tokens for r in ledger.rows()]
    assert all(t is not None and 0 <= t <= 4 for t in tokens)  # max_tokens reached the server


def test_models_endpoint_and_fingerprint(server: str) -> None:
    models = httpx.get(f"{server}/models").json()
    assert [m["id"] for m in models["data"]] == ["tiny-base", "skill-a", "skill-b"]
    body = {"model": "skill-b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    answer = httpx.post(f"{server}/chat/completions", json=body).json()
    assert answer["model"] == "skill-b"
    assert answer["system_fingerprint"] == "transformers+peft (not vLLM)"
    missing = httpx.post(f"{server}/chat/completions", json={**body, "model": "nope"})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"
