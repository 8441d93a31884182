"""SkillIndex's dense rows for frequent terms change speed only: never a ranking, score or match."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pytest

from paxis_router.skills._segment import top_k
from paxis_router.skills.bm25 import SkillIndex
from paxis_router.skills.tokenize import Tokenizer

N_DOCS = 300
VOCAB = [f"w{i}" for i in range(400)]


def _zipf_words(rng: random.Random, n: int) -> list[str]:
    # Zipf-like: a few very frequent terms (dense rows) and a long tail (sparse postings).
    return [VOCAB[min(int(rng.paretovariate(0.8)) - 1, len(VOCAB) - 1)] for _ in range(n)]


def _corpus(seed: int) -> list[tuple[str, dict[str, list[str]]]]:
    rng = random.Random(seed)
    return [
        (
            f"doc-{i}",
            {
                "name": _zipf_words(rng, rng.randint(1, 3)),
                "description": _zipf_words(rng, rng.randint(3, 20)),
                "body": _zipf_words(rng, rng.randint(0, 80)),
            },
        )
        for i in range(N_DOCS)
    ]


def _index(dense_rows: int, mode: str = "bm25f") -> SkillIndex:
    fields = {"name": 3.0, "description": 2.0, "body": 1.0}
    index = SkillIndex(
        mode=mode,  # type: ignore[arg-type]  # a Mode literal, parametrised
        field_weights=None if mode == "okapi" else fields,
        tokenizer=Tokenizer(stem=False, stopwords=False),
        dense_bytes=8 * N_DOCS * dense_rows,
    )
    for doc_id, tokens in _corpus(seed=1):
        if mode == "okapi":
            index.add_tokens(doc_id, {"text": [t for ts in tokens.values() for t in ts]})
        else:
            index.add_tokens(doc_id, tokens)
    return index


def _queries() -> list[list[str]]:
    rng = random.Random(2)
    queries = [_zipf_words(rng, rng.randint(1, 12)) for _ in range(60)]
    return [*queries, ["w0", "w0", "w399"], ["unknown"], ["w1", "unknown", "w1"]]


def _same(left: SkillIndex, right: SkillIndex) -> None:
    for query in _queries():
        got, want = left.search_terms(query, k=7), right.search_terms(query, k=7)
        assert [(d, terms) for d, _, terms in got] == [(d, terms) for d, _, terms in want], query
        assert [s for _, s, _ in got] == pytest.approx([s for _, s, _ in want], abs=1e-12)


@pytest.mark.parametrize("mode", ["bm25f", "okapi"])
@pytest.mark.parametrize("dense_rows", [20, 10_000])
def test_dense_rows_rank_score_and_match_like_sparse_postings(mode: str, dense_rows: int) -> None:
    sparse, dense = _index(0, mode), _index(dense_rows, mode)
    _same(dense, sparse)
    [main] = dense._segments
    assert main.dense is not None
    assert main.dense.shape[0] - 1 == min(dense_rows, len(dense._terms))  # + the zero row
    assert sparse._segments[0].dense is None


def test_matched_terms_are_the_query_terms_each_document_contains() -> None:
    index = _index(20)
    query = ["w0", "w1", "w250", "w399", "w0"]
    for doc_id, _, terms in index.search_terms(query, k=50):
        tokens = dict(_corpus(seed=1))[doc_id]
        present = {t for ts in tokens.values() for t in ts}
        assert terms == tuple(t for t in dict.fromkeys(query) if t in present)


def test_dense_layout_survives_adds_removes_and_compaction() -> None:
    sparse, dense = _index(0), _index(20)
    rng = random.Random(3)
    extra = [(f"new-{i}", {"description": _zipf_words(rng, 10)}) for i in range(30)]
    for index in (sparse, dense):
        index.search_terms(["w0"], k=1)  # compile, so the next changes go to the delta
        for doc_id, tokens in extra:
            index.add_tokens(doc_id, tokens)
        for i in range(0, N_DOCS, 20):
            index.remove(f"doc-{i}")
    _same(dense, sparse)  # main (dense rows) + delta (sparse) + removed slots masked
    assert dense._delta is not None and dense._delta.n_docs == len(extra)
    found = {d for d, _, _ in dense.search_terms(extra[0][1]["description"], k=50)}
    assert "new-0" in found and "doc-0" not in found
    dense.compact()
    sparse.compact()
    _same(dense, sparse)


def test_dense_bytes_is_saved_with_the_index(tmp_path: Path) -> None:
    index = _index(20)
    index.save(tmp_path / "ix")
    loaded = SkillIndex.load(tmp_path / "ix")
    assert loaded.dense_bytes == index.dense_bytes
    _same(loaded, index)


def test_tokenizer_is_whitespace_local_on_real_text() -> None:
    # The promise query_terms_of_text relies on, checked on awkward text.
    tokenizer = Tokenizer()
    texts = [
        "Use C++ and C# (not F#) to parse PDFs; e-mail the CSV/TSV files, résumé-style!",
        "k8s\tdeploy\n\nHelm-charts  50% off... re-run `make test` -- don't  stop",
        "Ünïcode naïve café straße 東京 data_frames snake_case",
    ]
    for text in texts:
        chunks = [t for chunk in text.split() for t in tokenizer.tokens(chunk)]
        assert tokenizer.tokens(text) == chunks


class _BigramTokenizer(Tokenizer):
    """Adds neighbour pairs: tokens span whitespace, so it must not promise locality."""

    whitespace_local = False

    def tokens(self, text: str) -> list[str]:
        words = super().tokens(text)
        return [*words, *(f"{a}_{b}" for a, b in itertools.pairwise(words))]


def test_text_queries_match_token_queries_with_and_without_the_chunk_cache() -> None:
    for tokenizer in (Tokenizer(), _BigramTokenizer()):
        index = SkillIndex(tokenizer=tokenizer)
        index.add("a", {"name": "pdf tables", "description": "Extract tables from PDF files"})
        index.add("b", {"name": "csv", "description": "Merge CSV files; extract columns"})
        for text in ("extract PDF tables", "extract  pdf\ttables", "the of", ""):
            expected = index.search_terms(tokenizer.tokens(text), k=2)
            assert index.search_text(text, k=2) == expected
            assert index.search_text(text, k=2) == expected  # second time: from the cache
    assert any("pdf_tabl" in terms for _, _, terms in index.search_text("extract pdf tables", k=2))
    assert not index._chunk_terms  # the bigram tokenizer never used the chunk cache


def _reference_top_k(values: list[float], k: int, floor: float) -> list[tuple[float, int]]:
    ranked = sorted((-v, i) for i, v in enumerate(values) if v > 0.0 and v >= floor)
    return [(-neg, i) for neg, i in ranked[:k]]


@pytest.mark.parametrize("n_docs", [7, 1_000, 120_000])  # argmax scans / threshold cut-offs
@pytest.mark.parametrize("k", [1, 5, 40])
def test_top_k_is_exact_with_ties_zeros_and_floors(n_docs: int, k: int) -> None:
    rng = np.random.default_rng(n_docs + k)
    for case in range(6):
        values = rng.choice([0.0, 0.0, 1.0, 2.5, 2.5], size=n_docs) * rng.random(n_docs)
        if case == 1:
            values[rng.choice(n_docs, size=min(3, n_docs), replace=False)] = 9.0  # tied best
        if case == 2:
            values[:] = 0.0
        if case == 3:  # one strong match, the rest far below: the cut-off must widen
            values = values * 0.01
            values[n_docs // 2] = 50.0
        floor = [0.0, 0.0, 0.0, 0.0, 1.0, 2.0][case]
        expected = _reference_top_k(values.tolist(), k, floor)
        assert top_k(values.copy(), k, floor) == expected


def test_skill_match_terms_are_computed_once_on_first_read_and_are_read_only() -> None:
    from paxis_router.skills.model import Skill, SkillMatch

    calls: list[int] = []

    def resolve() -> tuple[str, ...]:
        calls.append(1)
        return ("csv",)

    skill = Skill(id="csv", name="csv", description="Merge CSV files")
    match = SkillMatch(skill, 2.0, lazy_terms=resolve)
    assert calls == []
    assert match.matched_terms == ("csv",) and match.matched_terms == ("csv",)
    assert calls == [1]
    assert match == SkillMatch(skill, 2.0, ("csv",))
    assert match != SkillMatch(skill, 2.0, ("merg",))
    with pytest.raises(AttributeError, match="read-only"):
        match.score = 3.0


def test_library_select_terms_equal_the_eager_search() -> None:
    from paxis_router.skills.library import SkillLibrary
    from paxis_router.skills.model import Skill

    lib = SkillLibrary(
        [
            Skill(id="pdf", name="pdf", description="Extract tables and text from PDF files"),
            Skill(id="csv", name="csv", description="Merge CSV files and extract columns"),
            Skill(id="img", name="img", description="Resize images"),
        ]
    )
    for query in ("extract tables from pdf files", "merge csv", "resize the pdf images"):
        matches = lib.select(query, k=3)
        eager = lib.index.search_text(query, k=3)
        assert [(m.skill.id, m.score, m.matched_terms) for m in matches] == eager
