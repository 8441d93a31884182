"""SkillIndex under adds and removes: exactly the rankings of a fresh build, every layout.

The index keeps documents in segments (matrix or MaxScore scoring), a mutable delta and
tombstones; these tests drive random histories through small thresholds (so sealing, tiered
merges, purges and impact refreshes all happen) and compare every answer with an index built
afresh from the live documents, and with a BM25F written out by hand.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path
from typing import TypedDict, Unpack

import numpy as np
import pytest

from paxis_router.errors import SkillError
from paxis_router.skills._scoring import sum_terms
from paxis_router.skills.bm25 import SkillIndex
from paxis_router.skills.tokenize import Tokenizer

VOCAB = [f"w{i}" for i in range(120)]
FIELDS = {"name": 3.0, "description": 2.0, "body": 0.5}
FIELD_B = {"name": 0.3, "description": 0.5, "body": 0.8}
Doc = dict[str, list[str]]


def _words(rng: random.Random, n: int) -> list[str]:
    # Zipf-like: frequent terms (dense rows, long postings) and a long tail.
    return [VOCAB[min(int(rng.paretovariate(0.9)) - 1, len(VOCAB) - 1)] for _ in range(n)]


def _doc(rng: random.Random) -> Doc:
    if rng.random() < 0.05:  # exact duplicates: ties that must break the same way
        return {"name": ["w1"], "description": ["w2", "w3"], "body": []}
    return {
        "name": _words(rng, rng.randint(1, 3)),
        "description": _words(rng, rng.randint(0, 12)),
        "body": _words(rng, rng.choice([0, 5, 40, 200])),
    }


class Layout(TypedDict, total=False):
    delta_docs: int
    merge_factor: int
    matrix_docs: int
    direct_postings: int
    dense_bytes: int
    refresh_drift: float


def _index(mode: str, **layout: Unpack[Layout]) -> SkillIndex:
    plain = Tokenizer(stem=False, stopwords=False)
    if mode == "okapi":
        return SkillIndex(mode="okapi", tokenizer=plain, **layout)
    return SkillIndex(field_weights=FIELDS, field_b=FIELD_B, tokenizer=plain, **layout)


def _add(index: SkillIndex, doc_id: str, doc: Doc) -> None:
    if index.mode == "okapi":
        index.add_tokens(doc_id, {"text": [t for ts in doc.values() for t in ts]})
    else:
        index.add_tokens(doc_id, doc)


def _fresh(mode: str, live: dict[str, Doc]) -> SkillIndex:
    index = _index(mode)
    for doc_id, doc in live.items():
        _add(index, doc_id, doc)
    return index


LAYOUTS: dict[str, Layout] = {
    "matrix": {"delta_docs": 8, "merge_factor": 3},
    "maxscore": {"delta_docs": 8, "merge_factor": 3, "matrix_docs": 0, "direct_postings": 0},
    "direct": {"delta_docs": 8, "merge_factor": 3, "matrix_docs": 0},
    "dense-off": {"delta_docs": 5, "merge_factor": 2, "dense_bytes": 0},
    "delta-only": {"delta_docs": 10_000},
}


@pytest.mark.parametrize("mode", ["bm25f", "okapi"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_random_histories_rank_exactly_like_a_fresh_build(mode: str, layout: str) -> None:
    rng = random.Random(f"{mode}-{layout}")
    index = _index(mode, **LAYOUTS[layout])
    live: dict[str, Doc] = {}
    serial = 0
    for step in range(260):
        roll = rng.random()
        if roll < 0.55 or len(live) < 5:
            doc_id = f"d{serial}"
            serial += 1
            live[doc_id] = _doc(rng)
            _add(index, doc_id, live[doc_id])
        elif roll < 0.8:
            victim = rng.choice(sorted(live))
            del live[victim]
            index.remove(victim)
        elif roll < 0.83:
            index.compact()
        else:
            query = _words(rng, rng.randint(1, 8))
            k = rng.choice([1, 3, 10, 400])
            floor = rng.choice([None, None, 0.5])
            fresh = _fresh(mode, live)
            got = index.search_terms(query, k=k, min_score=floor)
            assert got == fresh.search_terms(query, k=k, min_score=floor), (step, query)
        if step % 40 == 39:
            fresh = _fresh(mode, live)
            assert index.ids() == fresh.ids() == list(live)
            assert len(index) == len(live)
            query = _words(rng, 6)
            np.testing.assert_array_equal(index.get_scores(query), fresh.get_scores(query))


def test_maxscore_pruning_is_exact_on_a_larger_index() -> None:
    rng = random.Random(5)
    docs = {f"d{i}": _doc(rng) for i in range(3_000)}
    pruned = _index("bm25f", matrix_docs=0, direct_postings=0)
    full = _index("bm25f")
    for doc_id, doc in docs.items():
        _add(pruned, doc_id, doc)
        _add(full, doc_id, doc)
    for _ in range(60):
        query = _words(rng, rng.randint(1, 10))
        for k in (1, 5, 50):
            assert pruned.search_terms(query, k=k) == full.search_terms(query, k=k)
    # The same after changes that leave the stored impacts stale (drift below the refresh).
    for i in range(0, 3_000, 97):
        pruned.remove(f"d{i}")
        full.remove(f"d{i}")
    for i in range(40):
        doc = _doc(rng)
        _add(pruned, f"n{i}", doc)
        _add(full, f"n{i}", doc)
    for _ in range(30):
        query = _words(rng, rng.randint(1, 10))
        assert pruned.search_terms(query, k=5) == full.search_terms(query, k=5)


def _reference(live: dict[str, Doc], query: list[str]) -> dict[str, float]:
    """BM25F written out from its definition, one document at a time."""
    n = len(live)
    df = Counter(t for doc in live.values() for t in {t for ts in doc.values() for t in ts})
    avg = {f: sum(len(doc[f]) for doc in live.values()) / n for f in FIELDS}
    k1 = 1.2
    scores = {}
    for doc_id, doc in live.items():
        score = 0.0
        for term, count in Counter(query).items():
            if term not in df:
                continue
            pseudo = 0.0
            for f, weight in FIELDS.items():
                tf = doc[f].count(term)
                norm = 1 - FIELD_B[f] + FIELD_B[f] * len(doc[f]) / (avg[f] or 1.0)
                pseudo += weight * tf / norm
            idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
            score += count * idf * pseudo * (k1 + 1) / (pseudo + k1)
        scores[doc_id] = score
    return scores


def test_scores_equal_bm25f_written_out_by_hand_after_changes() -> None:
    rng = random.Random(11)
    index = _index("bm25f", delta_docs=16)
    live: dict[str, Doc] = {}
    for i in range(150):
        live[f"d{i}"] = _doc(rng)
        _add(index, f"d{i}", live[f"d{i}"])
        if i % 7 == 3:
            victim = rng.choice(sorted(live))
            del live[victim]
            index.remove(victim)
        if i % 25 == 0:
            index.search_terms(["w1"], k=1)  # seal and merge along the way
    for _ in range(20):
        query = _words(rng, rng.randint(1, 6))
        expected = _reference(live, query)
        got = dict(zip(index.ids(), index.get_scores(query).tolist(), strict=True))
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)
        ranked = sorted(expected, key=lambda d: (-expected[d], list(live).index(d)))
        top = [d for d in ranked if expected[d] > 0][:5]
        assert [d for d, _, _ in index.search_terms(query, k=5)] == top


@pytest.mark.parametrize("shape", [(1, 2), (3, 2), (8, 2), (9, 3), (17, 934), (40, 5)])
def test_term_sums_add_rows_one_after_the_other(shape: tuple[int, int]) -> None:
    # The property every exact score rests on: sum_terms is ((t0 + t1) + t2) + ... per column.
    rng = np.random.default_rng(sum(shape))
    matrix = rng.random(shape) * rng.choice([1e-6, 1.0, 1e6], size=shape)
    expected = matrix[0].copy()
    for row in matrix[1:]:
        expected = expected + row
    np.testing.assert_array_equal(sum_terms(matrix), expected)


def test_removing_everything_then_adding_again() -> None:
    index = _index("bm25f", delta_docs=2)
    for i in range(6):
        _add(index, f"d{i}", {"name": ["alpha"], "description": ["beta"] * i, "body": []})
    assert index.search_terms(["alpha"], k=1)
    for i in range(6):
        index.remove(f"d{i}")
    assert index.search_terms(["alpha"], k=3) == []
    assert len(index) == 0 and index.ids() == []
    np.testing.assert_array_equal(index.get_scores(["alpha"]), np.zeros(0))
    _add(index, "d0", {"name": ["alpha"], "description": [], "body": []})
    [(doc_id, score, terms)] = index.search_terms(["alpha", "beta"], k=3)
    assert (doc_id, terms) == ("d0", ("alpha",)) and score > 0
    with pytest.raises(KeyError):
        index.remove("d3")


@pytest.mark.parametrize("okapi", [False, True])
def test_drift_bounds_every_impact_under_new_mean_lengths(okapi: bool) -> None:
    from paxis_router.skills._scoring import Scorer

    rng = np.random.default_rng(int(okapi))
    scorer = Scorer(
        okapi=okapi, k1=1.2, b=0.75, weights=[3.0, 0.0, 0.5], field_b=[0.3, 0.9, 1.0], epsilon=0.25
    )
    for _ in range(200):
        tf = rng.integers(0, 6, size=(50, 3)).astype(np.uint16)
        tf[:, 0] += 1
        dl = tf + rng.integers(0, 300, size=(50, 3))
        avg_ref = rng.uniform(0.5, 200, size=3)
        avg_now = avg_ref * rng.uniform(0.3, 3.0, size=3)
        lo, hi = scorer.drift(avg_ref, avg_now)
        ratio = scorer.impacts(tf, dl, avg_now) / scorer.impacts(tf, dl, avg_ref)
        assert lo <= 1.0 <= hi
        assert ratio.min() >= lo * (1 - 1e-12) and ratio.max() <= hi * (1 + 1e-12)


@pytest.mark.parametrize("layout", ["matrix", "maxscore"])
def test_stale_impacts_far_from_todays_statistics_still_rank_exactly(layout: str) -> None:
    rng = random.Random(layout)
    settings: Layout = {**LAYOUTS[layout], "refresh_drift": float("inf")}
    stale = _index("bm25f", **settings)
    live: dict[str, Doc] = {}
    for i in range(400):
        live[f"d{i}"] = _doc(rng)
        _add(stale, f"d{i}", live[f"d{i}"])
    stale.compact()
    for i in range(300):  # long bodies: the mean body length triples
        doc = {"name": _words(rng, 1), "description": _words(rng, 30), "body": _words(rng, 900)}
        live[f"n{i}"] = doc
        _add(stale, f"n{i}", doc)
        if i % 3 == 0:
            victim = f"d{i}"
            del live[victim]
            stale.remove(victim)
    fresh = _fresh("bm25f", live)
    for _ in range(40):
        query = _words(rng, rng.randint(1, 8))
        for k in (1, 4, 30):
            assert stale.search_terms(query, k=k) == fresh.search_terms(query, k=k)


@pytest.mark.parametrize("layout", ["matrix", "maxscore", "delta-only"])
def test_okapi_negative_idf_floor_under_changes(layout: str) -> None:
    from rank_bm25 import BM25Okapi

    rng = random.Random(3)
    index = _index("okapi", **LAYOUTS[layout])
    live: dict[str, list[str]] = {}
    for i in range(120):
        # "common" is in most documents: its idf is negative and takes rank_bm25's floor.
        tokens = [*(["common"] if rng.random() < 0.8 else []), *_words(rng, rng.randint(1, 9))]
        live[f"d{i}"] = tokens
        index.add_tokens(f"d{i}", {"text": tokens})
        if i % 5 == 4:
            victim = rng.choice(sorted(live))
            del live[victim]
            index.remove(victim)
        if i % 30 == 29:
            reference = BM25Okapi(list(live.values()))
            for query in (["common"], ["common", "w1", "w5"], ["w0", "common", "common"]):
                np.testing.assert_allclose(
                    index.get_scores(query), reference.get_scores(query), rtol=0, atol=1e-9
                )
                expected = sorted(
                    (-s, n) for n, s in enumerate(reference.get_scores(query).tolist()) if s > 0
                )[:5]
                ids = list(live)
                assert [d for d, _, _ in index.search_terms(query, k=5)] == [
                    ids[n] for _, n in expected
                ]


@pytest.mark.parametrize("layout", ["matrix", "maxscore", "delta-only"])
def test_okapi_with_a_negative_floor_matches_rank_bm25(layout: str) -> None:
    from rank_bm25 import BM25Okapi

    # Nearly every term is in most documents: the mean idf, hence the floor, is negative.
    docs = [["x", "y"], ["x", "y", "z"], ["x"], ["y", "x", "x"], ["x", "y"], ["q", "x", "y"]]
    index = _index("okapi", **LAYOUTS[layout])
    for i, doc in enumerate(docs):
        index.add_tokens(f"d{i}", {"text": doc})
    index.search_terms(["x"], k=1)
    index.add_tokens("d6", {"text": ["y", "z"]})
    index.remove("d2")
    reference = BM25Okapi([d for i, d in enumerate([*docs, ["y", "z"]]) if i != 2])
    assert reference.epsilon * reference.average_idf < 0
    for query in (["x"], ["x", "y"], ["z", "x"], ["q", "y", "x"]):
        expected = reference.get_scores(query)
        np.testing.assert_allclose(index.get_scores(query), expected, rtol=0, atol=1e-12)
        ranked = sorted((-s, n) for n, s in enumerate(expected.tolist()) if s > 0)
        ids = index.ids()
        assert [d for d, _, _ in index.search_terms(query, k=3)] == [ids[n] for _, n in ranked][:3]


@pytest.mark.parametrize("mode", ["bm25f", "okapi"])
def test_add_many_builds_the_index_add_tokens_builds(mode: str) -> None:
    rng = random.Random(mode)
    docs = [(f"d{i}", _doc(rng)) for i in range(700)]
    one_by_one = _index(mode, delta_docs=50)
    bulk = _index(mode, delta_docs=50)

    def fields(doc: Doc) -> Doc:
        return {"text": [t for ts in doc.values() for t in ts]} if mode == "okapi" else doc

    for doc_id, doc in docs[:100]:  # some history first: a delta, a removal
        one_by_one.add_tokens(doc_id, fields(doc))
        bulk.add_tokens(doc_id, fields(doc))
    for index in (one_by_one, bulk):
        index.remove("d7")
    for doc_id, doc in docs[100:]:
        one_by_one.add_tokens(doc_id, fields(doc))
    bulk.add_many((doc_id, fields(doc)) for doc_id, doc in docs[100:])
    assert bulk.ids() == one_by_one.ids() and "d7" not in bulk and "d699" in bulk
    for _ in range(30):
        query = _words(rng, rng.randint(1, 8))
        assert bulk.search_terms(query, k=7) == one_by_one.search_terms(query, k=7)
        np.testing.assert_array_equal(bulk.get_scores(query), one_by_one.get_scores(query))


def test_add_many_refuses_duplicates_and_unknown_fields_whole() -> None:
    index = _index("bm25f")
    index.add_tokens("a", {"name": ["x"]})
    with pytest.raises(SkillError, match="a: duplicate skill id"):
        index.add_many([("b", {"name": ["y"]}), ("a", {"name": ["z"]})])
    with pytest.raises(SkillError, match="c: duplicate skill id"):
        index.add_many([("c", {"name": ["y"]}), ("c", {"name": ["z"]})])
    with pytest.raises(ValueError, match="unknown field 'title' for 'd'"):
        index.add_many([("d", {"title": ["y"]})])
    assert index.ids() == ["a"]
    index.add_many([])
    assert len(index) == 1


def test_ids_stay_findable_through_table_rebuilds_removals_and_re_adds(tmp_path: Path) -> None:
    index = _index("bm25f", delta_docs=64)
    index.add_many((f"s{i}", {"name": [f"w{i % 50}"]}) for i in range(5_000))
    for i in range(5_000, 11_000):  # enough one-by-one adds to rebuild the id table
        index.add_tokens(f"s{i}", {"name": [f"w{i % 50}"]})
    for i in range(0, 11_000, 3):
        index.remove(f"s{i}")
    index.add_tokens("s3", {"name": ["again"]})  # a removed id may come back
    assert "s3" in index and "s6" not in index and "s10999" in index and "nope" not in index
    assert index.search_terms(["again"], k=1)[0][0] == "s3"
    index.remove("s3")
    with pytest.raises(KeyError):
        index.remove("s3")
    index.save(tmp_path / "ix")
    loaded = SkillIndex.load(tmp_path / "ix")
    assert "s1" in loaded and "s3" not in loaded and len(loaded) == len(index)
    loaded.remove("s1")
    assert "s1" not in loaded and loaded.ids()[:2] == ["s2", "s4"]


@pytest.mark.parametrize("layout", ["matrix", "maxscore"])
def test_a_saved_index_with_a_large_vocabulary_loads_and_ranks_the_same(
    tmp_path: Path, layout: str
) -> None:
    rng = random.Random(8)
    words = [f"t{i}" for i in range(3_000)]
    index = _index("bm25f", **LAYOUTS[layout])
    index.add_many(
        (f"d{i}", {"name": rng.sample(words, 2), "description": rng.sample(words, 30)})
        for i in range(600)
    )
    index.remove("d5")
    index.save(tmp_path / "ix")
    loaded = SkillIndex.load(tmp_path / "ix")
    for _ in range(20):
        query = rng.sample(words, 4)
        assert loaded.search_terms(query, k=5) == index.search_terms(query, k=5)


def test_combine_sums_each_document_in_query_order_like_the_matrix() -> None:
    from paxis_router.skills._scoring import combine

    rng = np.random.default_rng(4)
    n_terms, n_docs = 9, 40
    present = rng.random((n_terms, n_docs)) < 0.4
    rows, cols = np.nonzero(present)
    impacts = rng.random(len(rows)) * rng.choice([1e-3, 1.0, 1e3], size=len(rows))
    idfs = rng.random(n_terms).tolist()
    counts = [1, 2, 1, 1, 3, 1, 1, 1, 1]
    matrix = np.zeros((n_terms, n_docs))
    matrix[rows, cols] = impacts * np.asarray(idfs)[rows]
    matrix *= np.asarray(counts, dtype=np.float64)[:, None]
    expected = sum_terms(matrix)
    shuffled = rng.permutation(len(rows))  # document-major or any order: the same bits
    got = combine(impacts[shuffled], rows[shuffled], cols[shuffled], n_docs, idfs, counts)
    np.testing.assert_array_equal(got, expected)
