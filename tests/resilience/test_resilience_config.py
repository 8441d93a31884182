"""Resilience and the outage policy written in a policy file."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from paxis_router.config.schema import build_router, load_config
from paxis_router.errors import ConfigError
from paxis_router.workers.openai_compat import OpenAICompatWorker

if TYPE_CHECKING:
    from pathlib import Path

POLICY = """
tiers:
  - kind: local
    name: "local:w"
    model: w
    base_url: "http://127.0.0.1:9/v1"
    resilience:
      total_timeout_s: 10
      connect_timeout_s: 2
      read_timeout_s: 4
      max_attempts: 2
      breaker: {failure_threshold: 3, open_s: 15, max_open_s: 600}
  - {kind: litellm, name: "frontier:f", model: gpt-4o}
policy:
  outage: {default: degrade, skills: {legal-review: refuse}}
"""


def test_policy_file_configures_each_tier_and_the_outage_mode(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY, encoding="utf-8")
    router = build_router(load_config(path))
    local, frontier = router.tiers
    assert local.resilience is not None
    assert (local.resilience.config.max_attempts, local.resilience.config.total_timeout_s) == (
        2,
        10,
    )
    assert local.resilience.breaker.config.max_open_s == 600
    # The HTTP worker enforces the connect and read-silence timeouts itself.
    assert isinstance(local.worker, OpenAICompatWorker)
    assert (local.worker.connect_timeout_s, local.worker.read_timeout_s) == (2, 4)
    assert frontier.resilience is None
    assert router.outage.mode_for(["legal-review"]) == "refuse"
    assert router.outage.mode_for(["faq"]) == "degrade"


def test_a_bad_resilience_key_names_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.replace("max_attempts: 2", "max_attempts: 0"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"policy\.yaml.*max_attempts"):
        load_config(path)
