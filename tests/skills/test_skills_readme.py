"""The README's Skills section: its Python example runs and says what it shows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from paxis_router.testing import FakeWorker

ROOT = Path(__file__).resolve().parents[2]
TITLE = "Skills: picking the right instructions out of 1,000 to 100,000"


def _python_block() -> str:
    text = (ROOT / "docs" / "skills.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {TITLE}\n")
    end = text.find("\n## ", start + 1)
    found = re.search(r"```python\n(.*?)```", text[start : end if end != -1 else len(text)], re.S)
    assert found is not None
    return found.group(1)


def test_readme_skills_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    namespace: dict[str, object] = {}
    exec(compile(_python_block(), "README#skills", "exec"), namespace)
    top = namespace["top"]
    assert getattr(top, "matched_terms", None) == ("give", "tl", "dr", "meet", "note")
    assert getattr(getattr(top, "skill", None), "id", None) == "summarization"
    assert getattr(namespace["result"], "skills", None) == ("summarization",)
    worker = namespace["worker"]
    assert isinstance(worker, FakeWorker)
    assert "## Skill: summarization" in worker.calls[0].messages[0].text
