"""Every Python snippet in README.md and docs/*.md runs as written, pasted in order into one
fresh interpreter per file, in an empty folder beside the repository's policies and skills.

A snippet that needs something a test machine does not have (a live server, provider keys) is
preceded by ``<!-- not run: why -->``; the section tests (tests/**/test_*readme*.py, ...) check
what the others print and record.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"(<!-- not run: (?P<why>.*?) -->\n)?```python\n(?P<code>.*?)```", re.S)


def _snippets(path: Path) -> list[tuple[str, str | None]]:
    text = path.read_text(encoding="utf-8")
    return [(m.group("code"), m.group("why")) for m in _BLOCK.finditer(text)]


def _runnable(path: Path) -> bool:
    return any(why is None for _, why in _snippets(path))


@pytest.mark.parametrize("path", [p for p in DOCS if _runnable(p)], ids=lambda p: p.name)
def test_every_python_snippet_runs_as_written(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for shared in ("policies", "skills", "benchmarks", "examples"):
        (tmp_path / shared).symlink_to(ROOT / shared)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__", "print": lambda *a, **k: None}
    for i, (code, why) in enumerate(_snippets(path)):
        if why is None:
            exec(compile(code, f"{path.name}#snippet{i}", "exec"), namespace)
        else:
            assert why.strip(), f"{path.name} snippet {i}: say why it is not run"


def test_the_docs_have_snippets_and_links_that_resolve() -> None:
    assert sum(len(_snippets(p)) for p in DOCS) >= 8
    for path in DOCS:
        for target in re.findall(r"\]\(((?!https?:|#)[^)#\s]+)", path.read_text(encoding="utf-8")):
            assert (path.parent / target).exists(), f"{path.name}: broken link {target}"
