"""SkillIndex: rank_bm25 parity on the real corpus, incremental updates, persistence."""

from __future__ import annotations

import itertools
import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from paxis_router.errors import SkillError
from paxis_router.skills.bm25 import SkillIndex
from paxis_router.skills.library import skill_fields
from paxis_router.skills.parse import find_skill_dirs, parse_skill_dir
from paxis_router.skills.tokenize import Tokenizer

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


@pytest.fixture(scope="module")
def corpus_tokens() -> tuple[list[str], list[list[str]], list[list[str]]]:
    """(ids, per-skill tokens of name+description+body, query tokens) of the real corpus."""
    tokenizer = Tokenizer()
    ids: list[str] = []
    docs: list[list[str]] = []
    for folder in find_skill_dirs(CORPUS):
        parsed = parse_skill_dir(folder, root=CORPUS)
        skill = parsed.skill
        ids.append(skill.id)
        docs.append(tokenizer.tokens(f"{skill.name} {skill.description} {parsed.body}"))
    lines = (CORPUS / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    queries = [tokenizer.tokens(json.loads(line)["query"]) for line in lines]
    return ids, docs, queries


@pytest.mark.slow
@needs_corpus
def test_okapi_scores_equal_rank_bm25_on_the_real_corpus(
    corpus_tokens: tuple[list[str], list[list[str]], list[list[str]]],
) -> None:
    from rank_bm25 import BM25Okapi

    assert version("rank-bm25") == "0.2.2"
    ids, docs, queries = corpus_tokens
    reference = BM25Okapi(docs)
    index = SkillIndex(mode="okapi")
    for doc_id, tokens in zip(ids, docs, strict=True):
        index.add_tokens(doc_id, {"text": tokens})
    # The negative-idf floor is exercised: some terms occur in more than half of the skills.
    assert any(v == reference.epsilon * reference.average_idf for v in reference.idf.values())
    floor_terms = [
        t for t, v in reference.idf.items() if v == reference.epsilon * reference.average_idf
    ]
    for query in [*queries, [*floor_terms[:3], "unknownterm"], queries[0] + queries[0]]:
        expected = reference.get_scores(query)
        np.testing.assert_allclose(index.get_scores(query), expected, rtol=0, atol=1e-9)
    top = index.search_terms(queries[0], k=5)
    assert [d for d, _, _ in top] == [
        ids[i] for i in np.argsort(-reference.get_scores(queries[0]))[:5]
    ]


def test_okapi_parity_with_duplicates_and_custom_parameters() -> None:
    from rank_bm25 import BM25Okapi

    docs = [["a", "b", "a"], ["b", "c"], ["c", "c", "c", "d"], ["a"], ["e", "b"]]
    reference = BM25Okapi(docs, k1=0.9, b=0.4, epsilon=0.5)
    index = SkillIndex(mode="okapi", k1=0.9, b=0.4, epsilon=0.5)
    for i, doc in enumerate(docs):
        index.add_tokens(str(i), {"text": doc})
    for query in (["a"], ["b", "b", "c"], ["z"], ["a", "e", "d", "b"]):
        np.testing.assert_allclose(index.get_scores(query), reference.get_scores(query), atol=1e-12)


def _fields(i: int) -> dict[str, str]:
    topics = ["invoice parsing", "image detection", "sql tuning", "email summary", "csv merge"]
    return {
        "name": f"skill {i}",
        "description": f"{topics[i % 5]} helper number {i}",
        "body": f"Steps for {topics[(i * 3) % 5]}. " * (1 + i % 4),
    }


def test_incremental_add_and_remove_match_a_fresh_build_without_compact() -> None:
    grown = SkillIndex(delta_docs=4, merge_factor=2)
    for i in range(30):
        grown.add(f"s{i}", _fields(i))
    assert grown.search("csv", k=1)  # seals the delta into a segment
    for i in range(30, 40):
        grown.add(f"s{i}", _fields(i))
    for i in (3, 17, 35):
        grown.remove(f"s{i}")
    fresh = SkillIndex()
    for i in range(40):
        if i not in (3, 17, 35):
            fresh.add(f"s{i}", _fields(i))
    assert grown.ids() == fresh.ids()
    query = Tokenizer().tokens("merge csv invoice")
    np.testing.assert_array_equal(grown.get_scores(query), fresh.get_scores(query))
    hits = grown.search("merge csv invoice", k=50)
    assert hits == fresh.search("merge csv invoice", k=50)
    assert "s3" not in dict(hits) and "s35" not in dict(hits) and "s39" in dict(hits)
    grown.compact()
    assert grown.search("merge csv invoice", k=5) == fresh.search("merge csv invoice", k=5)


def test_duplicate_ids_unknown_fields_and_missing_ids_are_errors() -> None:
    index = SkillIndex()
    index.add("a", {"name": "alpha"})
    with pytest.raises(SkillError, match="a: duplicate skill id"):
        index.add("a", {"name": "again"})
    with pytest.raises(ValueError, match="unknown field 'title' for 'b'"):
        index.add("b", {"title": "x"})
    with pytest.raises(KeyError):
        index.remove("nope")
    with pytest.raises(ValueError, match="mode must be"):
        SkillIndex(mode="tfidf")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delta_docs must be >= 1"):
        SkillIndex(delta_docs=0)


def test_empty_and_stopword_only_queries_match_nothing() -> None:
    index = SkillIndex()
    index.add("a", {"name": "alpha", "description": "the quick brown fox"})
    assert index.search("") == []
    assert index.search("the and of to") == []
    assert index.search("zebra") == []
    assert SkillIndex().search("fox") == []
    assert index.search("fox", k=0) == []


def test_search_returns_matched_terms_and_respects_min_score() -> None:
    index = SkillIndex()
    for i in range(10):
        index.add(f"s{i}", _fields(i))
    hits = index.search_terms(Tokenizer().tokens("invoice parsing with sql"), k=3)
    assert hits[0][2] == ("invoic", "pars")
    assert all(s1 >= s2 for (_, s1, _), (_, s2, _) in itertools.pairwise(hits))
    floor = hits[0][1]
    assert [d for d, _ in index.search("invoice parsing with sql", k=3, min_score=floor)] == [
        hits[0][0]
    ]


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    index = SkillIndex(tokenizer=Tokenizer(stem=False, stopwords=frozenset({"for"})))
    for i in range(12):
        index.add(f"s{i}", _fields(i))
    index.remove("s4")
    index.save(tmp_path / "idx")
    loaded = SkillIndex.load(tmp_path / "idx")
    assert loaded.ids() == index.ids()
    assert loaded.config() == index.config()
    assert loaded.search("email summary", k=4) == index.search("email summary", k=4)
    loaded.add("new", {"name": "email summary digest"})
    [(top_id, top_score)] = loaded.search("digest", k=1)
    assert top_id == "new" and top_score > 0
    assert "pickle" not in (tmp_path / "idx" / "index.json").read_text()
    eager = SkillIndex.load(tmp_path / "idx", mmap=False)
    assert eager.search("email summary", k=4) == index.search("email summary", k=4)


def test_load_rejects_missing_or_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(SkillError, match="cannot read a saved index"):
        SkillIndex.load(tmp_path)
    index = SkillIndex()
    index.add("a", {"name": "alpha"})
    index.save(tmp_path)
    meta = json.loads((tmp_path / "index.json").read_text())
    meta["format"] = 99
    (tmp_path / "index.json").write_text(json.dumps(meta))
    with pytest.raises(SkillError, match="index format 99 is not 2; rebuild"):
        SkillIndex.load(tmp_path)
    meta["format"] = 2
    (tmp_path / "index.json").write_text(json.dumps(meta))
    (tmp_path / "post_doc.npy").unlink()
    with pytest.raises(SkillError, match="cannot read a saved index"):
        SkillIndex.load(tmp_path)


def test_library_fields_expand_the_name_with_the_folder_and_headings() -> None:
    from paxis_router.skills.model import Skill

    skill = Skill(id="owner__repo/pdf-tools", name="pdf", description="PDFs.")
    fields = skill_fields(skill, "# Split pages\ntext\n## Merge_files ##\n", body_max_chars=None)
    assert fields["name"] == "pdf pdf tools"
    assert fields["headings"] == "Split pages Merge_files"
    assert skill_fields(skill, "abcdef", body_max_chars=3)["body"] == "abc"
