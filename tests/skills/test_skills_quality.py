"""Selection quality: the dev query set, accepted duplicates in evaluation, the rerank's text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from paxis_router.errors import SkillError
from paxis_router.skills.bm25 import SkillIndex
from paxis_router.skills.evaluate import LabelledQuery, evaluate, read_queries
from paxis_router.skills.library import SkillLibrary
from paxis_router.skills.model import Skill, SkillMatch
from paxis_router.skills.parse import find_skill_dirs, parse_skill_dir
from paxis_router.skills.rerank import EmbeddingReranker, body_lead
from paxis_router.skills.tokenize import Tokenizer

REPO = Path(__file__).resolve().parents[2]
DEV = REPO / "benchmarks" / "data" / "skills_dev_queries.jsonl"
# The shared data sits beside the main checkout (``../shared``); a git worktree is one level
# further down (``../../shared`` from it).
CORPUS = next(
    (
        root / "shared" / "data" / "skills-corpus"
        for root in Path(__file__).resolve().parents[3:5]
        if (root / "shared" / "data" / "skills-corpus").is_dir()
    ),
    Path(__file__).resolve().parents[3] / "shared" / "data" / "skills-corpus",
)
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="skills corpus not present")


def test_dev_queries_file_is_well_formed() -> None:
    queries = read_queries(DEV)
    assert len(queries) == 147
    assert len({q.query for q in queries}) == len(queries)
    assert len({q.skill for q in queries}) == len(queries)  # one query per skill
    for q in queries:
        assert q.skill.count("/") == 1 and q.skill.split("/")[0].count("__") == 1, q.skill
        assert q.skill not in q.also
        assert len(q.query.split()) >= 4, q.query


@needs_corpus
def test_dev_queries_name_real_skills_apart_from_the_heldout_ones() -> None:
    queries = read_queries(DEV)
    for q in queries:
        for skill_id in (q.skill, *q.also):
            assert (CORPUS / skill_id / "SKILL.md").is_file(), skill_id
    heldout = read_queries(CORPUS / "queries.jsonl")
    # The dev skills were drawn from the corpus leaving out every held-out label.
    assert not {q.skill for q in queries} & {q.skill for q in heldout}
    assert not {q.query.lower() for q in queries} & {q.query.lower() for q in heldout}


@pytest.mark.slow
@needs_corpus
def test_default_bm25f_beats_okapi_name_description_on_dev() -> None:
    parsed = [parse_skill_dir(f, root=CORPUS) for f in find_skill_dirs(CORPUS)]
    skills = [p.skill for p in parsed]
    plain = Tokenizer(stem=False, stopwords=False)
    okapi = SkillIndex(mode="okapi", tokenizer=plain)
    for skill in skills:
        okapi.add_tokens(skill.id, {"text": plain.tokens(f"{skill.name} {skill.description}")})
    default = SkillLibrary()
    for p in parsed:
        default.add(p.skill, body=p.body)
    queries = read_queries(DEV)
    base = evaluate(SkillLibrary.from_index(okapi, skills), queries)
    ours = evaluate(default, queries)
    assert ours.recall_at_1 > base.recall_at_1
    assert ours.recall_at_5 > base.recall_at_5
    assert ours.mrr > base.mrr


class Ranked:
    """A selector with a fixed ranking (evaluate's only dependency is ``select``)."""

    def __init__(self, ids: list[str]):
        self.ids = ids

    def select(self, query: str, k: int = 3, min_score: float | None = None) -> list[SkillMatch]:
        return [SkillMatch(Skill(id=i, name=i, description=i), 1.0) for i in self.ids[:k]]


def test_an_accepted_duplicate_counts_at_its_rank(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    rows = [
        {"query": "cold outreach emails", "skill": "a/sales", "also": ["b/cold-email"]},
        {"query": "merge csv", "skill": "a/csv"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    queries = read_queries(path)
    assert queries[0] == LabelledQuery("cold outreach emails", "a/sales", ("b/cold-email",))
    assert queries[1].also == ()
    result = evaluate(Ranked(["x", "b/cold-email", "a/sales", "a/csv"]), queries)
    # first query: the duplicate at rank 2 counts; second: a/csv at rank 4.
    assert result.recall_at_1 == 0.0
    assert result.recall_at_5 == 1.0
    assert result.mrr == pytest.approx((1 / 2 + 1 / 4) / 2)


def test_a_bad_also_list_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"query": "q", "skill": "a/b"}\n{"query": "q", "skill": "a/b", "also": "c/d"}\n',
        encoding="utf-8",
    )
    with pytest.raises(SkillError, match=r"line 2: \"also\" must be a list of skill ids"):
        read_queries(path)


def test_body_lead_drops_code_and_markdown_marks() -> None:
    body = "# Deploy\n\n```bash\nkubectl apply -f x.yaml\n```\n**Roll out** the `chart` | safely.\n"
    assert body_lead(body, 100) == "Deploy Roll out the chart safely."
    assert body_lead(body, 6) == "Deploy"


class Recorder:
    """An encoder that records what it embeds (one axis per keyword)."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, texts: list[str]) -> npt.NDArray[np.float64]:
        self.texts.extend(texts)
        rows = np.array([[1.0 if "helm" in t.lower() else 0.0, 1.0] for t in texts])
        normalised: npt.NDArray[np.float64] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        return normalised


class Body:
    def __init__(self, text: str | None):
        self.text = text
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.text is None:
            raise OSError("SKILL.md vanished")
        return self.text


def skill(name: str, body: Body) -> Skill:
    return Skill(id=f"t/{name}", name=name, description=f"{name} tasks", load_body=body)


def test_rerank_embeds_the_body_opening_once_per_skill() -> None:
    chart = Body("# Charts\nPackage the app with Helm and set its values.\n" + "x " * 500)
    other = Body("Plain notes.")
    encode = Recorder()
    reranker = EmbeddingReranker(encode, body_chars=60)
    matches = [SkillMatch(skill("notes", other), 2.0), SkillMatch(skill("deploy", chart), 1.9)]
    for _ in range(2):
        ranked = reranker.rerank("package it with helm", matches)
        assert [m.skill.name for m in ranked] == ["deploy", "notes"]
    assert encode.texts[:2] == [
        "notes: notes tasks Plain notes.",
        "deploy: deploy tasks Charts Package the app with Helm and set its values. x x x x",
    ]
    assert (chart.calls, other.calls) == (1, 1)  # each body read once, then cached


def test_rerank_without_body_chars_reads_no_body() -> None:
    body = Body("Helm everywhere")
    encode = Recorder()
    EmbeddingReranker(encode, body_chars=0).rerank(
        "helm", [SkillMatch(skill("a", body), 1.0), SkillMatch(skill("b", Body("")), 0.5)]
    )
    assert body.calls == 0
    assert encode.texts[:2] == ["a: a tasks", "b: b tasks"]


def test_rerank_embeds_name_and_description_when_the_body_is_unreadable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    encode = Recorder()
    gone, kept = skill("gone", Body(None)), skill("kept", Body("Kept body."))
    EmbeddingReranker(encode).rerank("q", [SkillMatch(gone, 1.0), SkillMatch(kept, 0.5)])
    assert encode.texts[:2] == ["gone: gone tasks", "kept: kept tasks Kept body."]
    assert "SKILL.md vanished" in caplog.text


def test_query_files_split_on_newlines_only(tmp_path: Path) -> None:
    # JSON allows U+2028 unescaped inside a string; it must not end the line.
    path = tmp_path / "q.jsonl"
    path.write_text('{"query": "a\u2028b", "skill": "x/y"}\r\n\n', encoding="utf-8")
    assert [(q.query, q.skill) for q in read_queries(path)] == [("a\u2028b", "x/y")]
