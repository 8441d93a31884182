"""The router puts the chosen skills' bodies in the worker's prompt and their ids in the ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from paxis_router import ChatRequest, Router, SQLiteLedger
from paxis_router.errors import SkillError
from paxis_router.skills.library import SkillLibrary
from paxis_router.testing import FakeWorker

BUNDLED = Path(__file__).resolve().parents[2] / "skills"


@pytest.fixture
def library() -> SkillLibrary:
    return SkillLibrary.from_dir(BUNDLED, fallback="general")


def system_prompt(worker: FakeWorker) -> str:
    first = worker.calls[0].messages[0]
    assert first.role == "system"
    return first.text


async def test_chosen_skill_body_reaches_the_worker_and_ledger(
    library: SkillLibrary, tmp_path: Path
) -> None:
    worker = FakeWorker(["#### 36"], name="local:w")
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    router = Router(tiers=[worker], skills=library, skills_k=1, ledger=ledger)
    request = ChatRequest.from_text("Pens cost 3 dollars each; what is the total cost of 12 pens?")
    result = await router.route(request)
    assert result.skills == ("math-word-problems",)
    prompt = system_prompt(worker)
    assert "## Skill: math-word-problems" in prompt
    assert "Write the answer alone on the last line as `#### <number>`" in prompt
    assert "Structured extraction" not in prompt
    rows = ledger.rows()
    assert [r.skill for r in rows] == ["math-word-problems"]
    ledger.close()


async def test_several_skills_are_recorded_comma_separated(
    library: SkillLibrary, tmp_path: Path
) -> None:
    worker = FakeWorker(["ok"], name="local:w")
    ledger = SQLiteLedger(tmp_path / "ledger.db")
    router = Router(tiers=[worker], skills=library, skills_k=2, ledger=ledger)
    text = "Summarize this email thread, then extract the invoice total as JSON"
    result = await router.route(ChatRequest.from_text(text))
    assert len(result.skills) == 2
    assert set(result.skills) == {"summarization", "structured-extraction"}
    assert ledger.rows()[0].skill == ",".join(result.skills)
    ledger.close()


async def test_metadata_skill_overrides_selection(library: SkillLibrary) -> None:
    worker = FakeWorker(["positive"], name="local:w")
    router = Router(tiers=[worker], skills=library)
    request = ChatRequest.from_text("Summarize this review", skill="classification")
    result = await router.route(request)
    assert result.skills == ("classification",)
    assert "## Skill: classification" in system_prompt(worker)
    assert "## Skill: summarization" not in system_prompt(worker)
    with pytest.raises(SkillError, match="no skill with id 'nope'"):
        await router.route(ChatRequest.from_text("hi", skill="nope"))


async def test_unmatched_query_uses_the_fallback_never_a_random_skill(
    library: SkillLibrary,
) -> None:
    worker = FakeWorker(["hello"], name="local:w")
    router = Router(tiers=[worker], skills=library)
    result = await router.route(ChatRequest.from_text("the of and to"))
    assert result.skills == ("general",)
    plain = FakeWorker(["hello"], name="local:w")
    no_fallback = Router(tiers=[plain], skills=SkillLibrary.from_dir(BUNDLED))
    assert (await no_fallback.route(ChatRequest.from_text("the of and to"))).skills == ()
    assert [m.role for m in plain.calls[0].messages] == ["user"]
