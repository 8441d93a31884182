"""The kNN scorer's per-request search: the same neighbours and scores as brute force, a
versioned file that stores it, and a per-prompt cache."""

from __future__ import annotations

import doctest
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from paxis_router.calibration import knn_index
from paxis_router.calibration.knn import (
    KnnScorer,
    fit_index,
    hashed_encoder,
    neighbour_values,
)
from paxis_router.calibration.knn_index import NeighbourIndex, choose_shortlist, principal_basis
from paxis_router.calibration.thresholds import load_scorer
from paxis_router.errors import ConfigError

K, T = 50, 10.0
WORDS = [f"w{i}" for i in range(400)]  # a vocabulary large enough that similarities rarely tie


def _unit(rows: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float32]]:
    out = np.asarray(rows, dtype=np.float32)
    unit: np.ndarray[Any, np.dtype[np.float32]] = out / np.linalg.norm(out, axis=1, keepdims=True)
    return unit


def _dense(n: int, seed: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Embedding-like rows: 24 latent topics mixed into 128 dimensions, plus noise."""
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((24, 128))
    mix = rng.standard_normal((n, 24)) * rng.uniform(0.2, 1.0, 24)
    return _unit(mix @ topics + 0.35 * rng.standard_normal((n, 128)))


def _sparse(n: int, seed: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Rows with ~10 % of 1,024 coordinates set (continuous values: no tied similarities)."""
    rng = np.random.default_rng(seed)
    rows = rng.uniform(0.1, 1.0, (n, 1024)) * (rng.random((n, 1024)) < 0.1)
    rows[:, :16] += rng.uniform(0.5, 1.0, (n, 16))  # a few shared, frequent buckets
    return _unit(rows)


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(8, 30, n)
    return [" ".join(rng.choice(WORDS, size=size).tolist()) for size in sizes]


def _brute(
    queries: np.ndarray[Any, Any], pool: np.ndarray[Any, Any], values: np.ndarray[Any, Any]
) -> tuple[list[set[int]], np.ndarray[Any, Any]]:
    sims = queries @ pool.T
    truth = [set(np.argpartition(-row, K - 1)[:K].tolist()) for row in sims]
    return truth, neighbour_values(queries, pool, values, k=K, temperature=T)


@pytest.fixture(scope="module")
def dense() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    pool, queries = _dense(4000, 0), _dense(200, 1)
    values = np.random.default_rng(2).uniform(-1, 1, len(pool))
    return pool, values, queries


@pytest.mark.parametrize("kind", ["dense", "sparse", "small"])
def test_the_search_finds_the_brute_force_neighbours_and_scores(
    kind: str, dense: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]
) -> None:
    if kind == "sparse":  # like the hashed encoder's rows: ~10 % of 1,024 coordinates set
        pool, queries = _sparse(3000, 0), _sparse(150, 1)
        values = np.random.default_rng(3).uniform(-1, 1, len(pool))
    else:
        pool, values, queries = dense
        if kind == "small":
            pool, values = pool[:1500], values[:1500]
    index = fit_index(pool, K)
    assert index.mode == {"dense": "projected", "sparse": "sparse", "small": "exact"}[kind]
    if kind == "dense":  # a real shortlist, far smaller than the pool
        assert index.shortlist < len(pool) // 4
    truth, brute = _brute(queries, pool, values)
    found = [index.search(q, K) for q in queries]
    assert [set(near.tolist()) for near, _ in found] == truth
    for (near, sims), q in zip(found, queries, strict=True):
        np.testing.assert_allclose(sims, pool[near] @ q, atol=1e-5)
    scorer = KnnScorer(pool, values, k=K, temperature=T, encoder="hashed", index=index)
    lookup = {f"q{i}": q for i, q in enumerate(queries)}
    scorer.encode = lambda texts: np.stack([lookup[t] for t in texts])
    one_by_one = [scorer.neighbour_score(f"q{i}") for i in range(len(queries))]
    np.testing.assert_allclose(one_by_one, brute, atol=1e-6)
    scorer_many = KnnScorer(pool, values, k=K, temperature=T, encoder="hashed", index=index)
    scorer_many.encode = scorer.encode
    batched = scorer_many.neighbour_scores([f"q{i}" for i in range(len(queries))])
    np.testing.assert_allclose(batched, brute, atol=1e-6)


def test_a_useless_projection_falls_back_to_brute_force() -> None:
    rng = np.random.default_rng(0)
    pool = _unit(rng.standard_normal((2500, 384)))  # isotropic: 96 directions explain a quarter
    assert choose_shortlist(pool, principal_basis(pool), K) == len(pool)
    index = fit_index(pool, K)
    assert (index.mode, index.basis) == ("exact", None)


def test_the_file_stores_the_search_and_loads_it_back(
    tmp_path: Path,
    dense: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]],
) -> None:
    pool, values, queries = dense
    scorer = KnnScorer(pool, values, k=K, temperature=T, encoder="hashed")
    path = tmp_path / "s.scorer.json"
    scorer.save(path)
    meta = json.loads(path.read_text())
    assert meta["format"] == "paxis-knn-scorer/2"
    index = scorer.search_index()
    assert meta["search"] == {"mode": "projected", "dims": 96, "shortlist": index.shortlist}
    with np.load(tmp_path / "s.scorer.npz", allow_pickle=False) as arrays:
        assert arrays["basis"].shape == (128, 96)
    loaded = load_scorer(str(path))
    assert isinstance(loaded, KnnScorer)
    got = loaded.search_index()
    assert (got.mode, got.shortlist) == ("projected", index.shortlist)
    assert got.basis is not None and index.basis is not None
    np.testing.assert_array_equal(got.basis, index.basis)
    # Embeddings are stored in float16: the search equals brute force over what is stored.
    stored = pool.astype(np.float16).astype(np.float32)
    _, brute = _brute(queries, stored, values.astype(np.float32).astype(np.float64))
    lookup = {f"q{i}": q for i, q in enumerate(queries)}
    loaded.encode = lambda texts: np.stack([lookup[t] for t in texts])
    np.testing.assert_allclose(
        [loaded.neighbour_score(f"q{i}") for i in range(len(queries))], brute, atol=1e-6
    )


def test_a_version_1_file_still_loads_and_fits_its_search(tmp_path: Path) -> None:
    encode = hashed_encoder()
    pool = encode(_texts(2500, 4))
    values = np.random.default_rng(5).uniform(-1, 1, len(pool))
    path = tmp_path / "old.json"
    KnnScorer(pool, values, k=K, temperature=T, encoder="hashed").save(path)
    meta = json.loads(path.read_text())
    meta["format"] = "paxis-knn-scorer/1"
    del meta["search"]
    path.write_text(json.dumps(meta))
    loaded = load_scorer(str(path))
    assert isinstance(loaded, KnnScorer) and loaded.search_index().mode == "sparse"
    query = _texts(1, 9)[0]
    expected = neighbour_values(encode([query]), pool, values, k=K, temperature=T)[0]
    assert loaded.score(query, "") == pytest.approx(expected, abs=1e-3)  # float16 on disk


@pytest.mark.parametrize(
    ("search", "match"),
    [
        (None, "a version 2 scorer needs its search section"),
        ({"mode": "tree"}, "search.mode: unknown search mode 'tree'"),
        ({"mode": "projected"}, "search.shortlist: a projected search needs its shortlist"),
        ({"mode": "projected", "shortlist": 0}, "needs a basis of 2 rows"),
    ],
)
def test_a_bad_search_section_is_a_config_error(
    tmp_path: Path, search: dict[str, Any] | None, match: str
) -> None:
    path = tmp_path / "s.json"
    KnnScorer(np.eye(2), np.array([0.1, -0.1]), encoder="hashed").save(path)
    meta = json.loads(path.read_text())
    if search is None:
        del meta["search"]
    else:
        meta["search"] = search
    path.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=match):
        load_scorer(str(path))


def test_repeated_prompts_are_embedded_and_searched_once() -> None:
    calls: list[list[str]] = []
    encode = hashed_encoder(64)

    def counting(texts: list[str]) -> np.ndarray[Any, Any]:
        calls.append(list(texts))
        return encode(texts)

    pool = encode(_texts(100, 0))
    values = np.linspace(-1, 1, 100)
    scorer = KnnScorer(pool, values, k=5, encoder="hashed", encode=counting, cache_size=2)
    first = scorer.score("acid bond", "")
    assert [scorer.score("acid bond", "r") for _ in range(3)] == [first] * 3
    assert (calls, scorer.cache_hits) == ([["acid bond"]], 3)
    scorer.score("king war", "")
    scorer.score("river ocean", "")  # the cache holds 2 prompts: "acid bond" is evicted
    scorer.score("acid bond", "")
    assert [c[0] for c in calls] == ["acid bond", "king war", "river ocean", "acid bond"]
    # A batch encodes only what the cache lacks, once per distinct prompt.
    many = scorer.score_many(["acid bond", "new one", "new one"], ["", "", ""])
    assert calls[-1] == ["new one"] and many[1] == many[2]
    uncached = KnnScorer(pool, values, k=5, encoder="hashed", encode=counting, cache_size=0)
    uncached.score("acid bond", "")
    uncached.score("acid bond", "")
    assert calls[-2:] == [["acid bond"], ["acid bond"]]


def test_an_index_built_by_hand_keeps_the_mode_asked_for() -> None:
    rows = _dense(300, 7)
    for mode in ("exact", "sparse", "projected"):
        index = NeighbourIndex.build(rows, mode=mode, shortlist=100)
        near, _ = index.search(rows[5], 3)
        assert index.mode == mode and 5 in near.tolist()


def test_docstring_examples_run() -> None:
    result = doctest.testmod(knn_index)
    assert result.attempted > 0
    assert result.failed == 0
