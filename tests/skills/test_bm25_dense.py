"""SkillIndex's dense rows for frequent terms change speed only: never a ranking, score or match."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

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
    main = dense._main
    assert main is not None and main.dense is not None
    assert main.dense.shape[0] == min(dense_rows, len(dense._terms))
    assert sparse._main is not None and sparse._main.dense is None


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
