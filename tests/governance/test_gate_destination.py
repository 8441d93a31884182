"""Where a tier's data goes is derived from the host it connects to, never assumed (issue 14,
item 2): a remote ``base_url`` without a ``destination`` is ``remote:<host>``, which
policies/sovereign.yaml denies; a host declared in ``gate.on_premises_hosts`` is local; an
on-premises label on a remote host is refused at load and, built by hand, denied by the gate."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import yaml

from paxis_router import ChatRequest, Router, SQLiteLedger
from paxis_router.config.schema import load_config
from paxis_router.errors import ConfigError, PolicyDenied
from paxis_router.governance.gate import Action, Gate, GatePolicy, load_gate_policy
from paxis_router.testing import FakeWorker
from paxis_router.workers.base import Tier, as_tier
from paxis_router.workers.destination import (
    OnPremises,
    destination_for_url,
    is_loopback,
    url_host,
)
from paxis_router.workers.openai_compat import OpenAICompatWorker

REPO = Path(__file__).resolve().parents[2]
SOVEREIGN = REPO / "policies" / "sovereign.yaml"
DEFAULT = REPO / "policies" / "default.yaml"
PREMISES = OnPremises.parse(["10.0.0.0/8", "fd00::/8", ".corp.example", "gpu-box"])


@pytest.mark.parametrize(
    ("url", "premises", "destination"),
    [
        ("http://127.0.0.1:8000/v1", None, "local"),
        ("http://127.9.9.9/v1", None, "local"),
        ("http://[::1]:8000/v1", None, "local"),
        ("http://[::ffff:127.0.0.1]/v1", None, "local"),
        ("http://localhost:8000/v1", None, "local"),
        ("http://LOCALHOST.:8000/v1", None, "local"),
        ("http://203.0.113.10/v1", None, "remote:203.0.113.10"),
        ("https://api.example.com/v1", None, "remote:api.example.com"),
        ("http://0.0.0.0:8000/v1", None, "remote:0.0.0.0"),
        # names are never resolved: these may point at 127.0.0.1 in DNS, they are not loopback
        ("http://localhost.example.com/v1", None, "remote:localhost.example.com"),
        ("http://127.0.0.1.nip.io/v1", None, "remote:127.0.0.1.nip.io"),
        ("http://gpu-box:8000/v1", None, "remote:gpu-box"),
        # declared on the premises: by network, by suffix, by exact name
        ("http://10.20.30.40:8000/v1", PREMISES, "local"),
        ("http://[fd00::7]:8000/v1", PREMISES, "local"),
        ("http://vllm.corp.example/v1", PREMISES, "local"),
        ("http://gpu-box:8000/v1", PREMISES, "local"),
        ("http://GPU-BOX.:8000/v1", PREMISES, "local"),
        ("http://11.0.0.1/v1", PREMISES, "remote:11.0.0.1"),
        ("http://corp.example/v1", PREMISES, "remote:corp.example"),
        ("http://vllm.corp.example.evil.com/v1", PREMISES, "remote:vllm.corp.example.evil.com"),
        ("http://evilcorp.example/v1", PREMISES, "remote:evilcorp.example"),
        ("http://gpu-box.evil.com/v1", PREMISES, "remote:gpu-box.evil.com"),
        ("not a url", None, "remote:?"),
    ],
)
def test_destination_is_derived_from_the_host(
    url: str, premises: OnPremises | None, destination: str
) -> None:
    assert destination_for_url(url, premises) == destination


def test_host_helpers() -> None:
    assert url_host("http://user:pw@Example.COM.:81/x") == "example.com"
    assert url_host("/v1/chat") is None
    assert (is_loopback("::1"), is_loopback("10.0.0.1"), is_loopback("localhost.")) == (
        True,
        False,
        True,
    )
    assert not OnPremises.parse([])
    assert OnPremises.parse(["*.corp.example"]).contains("a.corp.example")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("http://gpu01", "not a host name"),
        ("10.0.0.0/33", "not a host name, an IP address, a CIDR"),
        ("", "not a host name"),
        ("bad host", "not a host name"),
    ],
)
def test_bad_on_premises_entries_are_refused(entry: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OnPremises.parse([entry])


def test_workers_and_tiers_derive_their_destination() -> None:
    remote = OpenAICompatWorker("gpu:r", "m", "http://203.0.113.10:8000/v1")
    local = OpenAICompatWorker("gpu:l", "m", "http://127.0.0.1:8000/v1")
    assert (remote.destination, local.destination) == ("remote:203.0.113.10", "local")
    assert (as_tier(remote).destination, as_tier(remote).host) == (
        "remote:203.0.113.10",
        "203.0.113.10",
    )
    labelled = Tier(remote, destination="local")  # a label by hand: the host is still known
    assert labelled.host == "203.0.113.10"
    assert Tier(FakeWorker(["x"])).host is None  # in-process: no host


# --- the gate decides on the host ---------------------------------------------------------------


def recording_worker(
    name: str, base_url: str, *, destination: str | None = None
) -> tuple[OpenAICompatWorker, list[httpx.Request]]:
    """A real OpenAICompatWorker whose HTTP client is faked at the seam: it records requests."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "on-prem answer"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }  # fmt: skip
        return httpx.Response(200, json=body)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    worker = OpenAICompatWorker(
        name, "m", base_url, destination=destination, http_client=client, timeout_s=5
    )
    return worker, seen


RESTRICTED = ChatRequest.from_text("the launch codes", team="defence", data_class="restricted")


async def test_sovereign_denies_a_remote_base_url_without_a_destination(tmp_path: Path) -> None:
    worker, seen = recording_worker("gpu:remote", "http://203.0.113.10:8000/v1")
    ledger = SQLiteLedger(tmp_path / "l.db")
    router = Router(tiers=[worker], gate=Gate(SOVEREIGN), ledger=ledger)
    with pytest.raises(PolicyDenied, match=r"rule air_gapped.*'remote:203\.0\.113\.10'"):
        await router.route(RESTRICTED)
    assert seen == []  # the worker never sent anything
    assert [(r.tier, r.error_type) for r in ledger.rows()] == [("gpu:remote", "GateDenied")]


def sovereign_with(hosts: list[str]) -> GatePolicy:
    raw = yaml.safe_load(SOVEREIGN.read_text())["gate"]
    return GatePolicy.model_validate({**raw, "on_premises_hosts": hosts})


@pytest.mark.parametrize("hosts", [["gpu01.corp.example"], [".corp.example"]])
async def test_sovereign_allows_a_host_declared_on_premises(hosts: list[str]) -> None:
    worker, seen = recording_worker("gpu:onprem", "http://gpu01.corp.example:8000/v1")
    assert worker.destination == "remote:gpu01.corp.example"  # the worker alone cannot know
    router = Router(tiers=[worker], gate=Gate(sovereign_with(hosts)))
    result = await router.route(RESTRICTED)
    assert result.content == "on-prem answer"
    assert [r.url.host for r in seen] == ["gpu01.corp.example"]


async def test_a_local_label_on_a_remote_host_is_denied_by_the_gate() -> None:
    worker, seen = recording_worker("gpu:liar", "https://api.example.com/v1", destination="local")
    router = Router(tiers=[worker], gate=Gate(SOVEREIGN))
    with pytest.raises(
        PolicyDenied, match=r"labelled 'local', but it connects to 'api\.example\.com'"
    ):
        await router.route(RESTRICTED)
    assert seen == []


def test_a_local_label_on_a_remote_host_matches_no_local_rule() -> None:
    gate = Gate(DEFAULT)  # not air-gapped: the label would have matched rule local-workers
    tier = Tier(OpenAICompatWorker("gpu:liar", "m", "https://api.example.com/v1"), None, "local")
    decision = gate.check(Action.for_tier(tier, RESTRICTED))
    assert (decision.effect, decision.rule_id) == ("deny", "restricted-stays-local")
    public = ChatRequest.from_text("hi", data_class="public")
    decision = gate.check(Action.for_tier(tier, public))
    assert (decision.effect, decision.rule_id) == ("deny", "default")
    assert "'remote:api.example.com'" in decision.reason


def test_the_host_survives_a_tier_whose_worker_is_wrapped() -> None:
    """The proxy's streaming tee replaces a tier's worker; the host it connects to stays."""
    tier = as_tier(OpenAICompatWorker("gpu:r", "m", "http://203.0.113.10/v1", destination="local"))
    wrapped = replace(tier, worker=FakeWorker(["x"], name="gpu:r"))
    decision = Gate(SOVEREIGN).check(Action.for_tier(wrapped, RESTRICTED))
    assert (decision.effect, decision.rule_id) == ("deny", "air_gapped")


@pytest.mark.parametrize("destination", ["unknown", "", "remote:?", "remote:10.0.0.1", "onprem"])
def test_sovereign_denies_an_unknown_destination(destination: str) -> None:
    action = Action(kind="call_tier", target="t", destination=destination, data_class="public")
    decision = Gate(SOVEREIGN).check(action)
    assert (decision.effect, decision.rule_id) == ("deny", "air_gapped")


# --- policy files -------------------------------------------------------------------------------


def write_policy(tmp_path: Path, tier: dict[str, object], hosts: list[str] | None = None) -> Path:
    gate = yaml.safe_load(SOVEREIGN.read_text())["gate"]
    if hosts is not None:
        gate["on_premises_hosts"] = hosts
    path = tmp_path / "policy.yaml"
    path.write_text(json.dumps({"tiers": [tier], "gate": gate}))
    return path


VLLM = {"kind": "local", "name": "local:qwen", "model": "qwen", "timeout_s": 1}


def test_a_remote_base_url_is_remote_in_a_policy_file_too(tmp_path: Path) -> None:
    path = write_policy(tmp_path, {**VLLM, "base_url": "http://203.0.113.10:8000/v1"})
    router = Router.from_config(load_config(path))
    (tier,) = router.tiers
    assert (tier.destination, tier.host) == ("remote:203.0.113.10", "203.0.113.10")
    decision = Gate(load_gate_policy(path)).check(Action.for_tier(tier, RESTRICTED))
    assert (decision.effect, decision.rule_id) == ("deny", "air_gapped")


def test_a_declared_host_is_local_in_a_policy_file(tmp_path: Path) -> None:
    tier_spec = {**VLLM, "base_url": "http://10.1.2.3:8000/v1"}
    path = write_policy(tmp_path, tier_spec, hosts=["10.0.0.0/8"])
    (tier,) = Router.from_config(load_config(path)).tiers
    assert tier.destination == "local"
    decision = Gate(load_gate_policy(path)).check(Action.for_tier(tier, RESTRICTED))
    assert (decision.effect, decision.rule_id) == ("allow", "local-workers")


@pytest.mark.parametrize(
    ("tier", "hosts", "connects"),
    [
        ({**VLLM, "base_url": "https://api.example.com/v1"}, None, "connects to 'api.example.com'"),
        ({**VLLM, "base_url": "http://10.1.2.3/v1"}, ["gpu-box"], "connects to '10.1.2.3'"),
        ({"kind": "litellm", "model": "gpt-4o"}, None, "names no completion_kwargs.api_base"),
        (
            {"kind": "litellm", "model": "ollama/llama3",
             "completion_kwargs": {"api_base": "http://ollama.example.com:11434"}},
            None,
            "connects to 'ollama.example.com'",
        ),
    ],
)  # fmt: skip
def test_a_local_label_on_a_remote_tier_is_refused_at_load(
    tmp_path: Path, tier: dict[str, object], hosts: list[str] | None, connects: str
) -> None:
    path = write_policy(tmp_path, {**tier, "destination": "local"}, hosts)
    with pytest.raises(ConfigError, match=connects) as info:
        load_config(path)
    assert info.value.field == "tiers[0].destination"
    assert str(info.value).startswith(f"{path}: tiers[0].destination: destination 'local' says")
    assert "gate.on_premises_hosts" in str(info.value)


@pytest.mark.parametrize(
    ("tier", "hosts"),
    [
        ({**VLLM, "base_url": "http://127.0.0.1:8000/v1"}, None),
        ({**VLLM, "base_url": "http://vllm.corp.example/v1"}, [".corp.example"]),
        (
            {"kind": "litellm", "model": "ollama/llama3",
             "completion_kwargs": {"api_base": "http://localhost:11434"}},
            None,
        ),
        ({"kind": "litellm", "model": "gpt-4o", "destination": "openai:us"}, None),
    ],
)  # fmt: skip
def test_honest_labels_load(
    tmp_path: Path, tier: dict[str, object], hosts: list[str] | None
) -> None:
    path = write_policy(tmp_path, {"destination": "local", **tier}, hosts)
    assert load_config(path).tiers[0].destination == tier.get("destination", "local")


def test_a_premises_pattern_is_no_way_around_either(tmp_path: Path) -> None:
    gate = {"version": "v", "air_gapped": True, "premises": ["local", "onprem:*"]}
    tier = {**VLLM, "base_url": "https://api.example.com/v1", "destination": "onprem:dc1"}
    path = tmp_path / "p.yaml"
    path.write_text(json.dumps({"tiers": [tier], "gate": gate}))
    with pytest.raises(ConfigError, match="destination 'onprem:dc1' says this tier stays"):
        load_config(path)


def test_without_a_gate_section_only_loopback_is_local(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    tier = {**VLLM, "base_url": "http://gpu-box:8000/v1", "destination": "local"}
    path.write_text(json.dumps({"tiers": [tier]}))
    with pytest.raises(ConfigError, match="connects to 'gpu-box'"):
        load_config(path)
