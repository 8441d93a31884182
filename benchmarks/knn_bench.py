"""Per-route cost of the kNN / mix ``score_below`` predicate, against the previous brute force.

One run measures, on RouteLLM's MMLU questions (``benchmarks/data/routellm/mmlu``, 10,988 rows
after decontamination, shuffled with seed 0): pools of the first 1,000 / 5,500 / 10,000 rows
(the training examples a scorer stores) and 300 queries from the last 988 rows (never in a
pool), for each encoder — ``hashed`` (1,024 dimensions, numpy only) and ``minilm`` (384, the
offline all-MiniLM-L6-v2; skipped without the ``[embed]`` extra or with ``--no-minilm``):

- ``encode``: the encoder on one prompt (MiniLM: the model's forward pass; hashed: Python);
- ``brute``: the previous per-route search, ``neighbour_values`` on one query (one GEMV over
  the whole float32 pool, argpartition, weights) — the baseline, measured in this run,
  interleaved query by query with ``search``;
- ``search``: the new per-route search (``KnnScorer.neighbour_score`` minus the encoder: the
  search index the scorer was calibrated with, and the weighted mean);
- ``predicate``: the whole ``score_below`` predicate of a ``--scorer mix`` policy on a
  ``RouteState`` (the kNN half and the learned half) with its cache off (every route embeds
  and searches), the encoder's output precomputed (so the figure excludes the model's forward
  pass, shown apart as ``encode``), interleaved with ``previous``: the same predicate as it was
  before the index (``neighbour_values`` over the pool, line for line);
  ``predicate (cached)``: with the cache on, prompts already seen (the kNN half is a lookup;
  the learned half, which reads the answer, still runs);
- agreement with brute force: the share of queries whose 50 neighbours are the same rows, and
  the largest difference in the kNN score.

Times are CPU seconds of the measuring thread (``time.thread_time``), median over the queries:
the machine this runs on is shared, and wall time there is mostly waiting for a core. BLAS runs
as configured (``--blas-threads N`` limits it through threadpoolctl): on a busy machine a
multi-threaded OpenBLAS GEMV (OpenBLAS threads any GEMV over 9,216 values) can cost milliseconds
of CPU waiting for its second thread, so run it both ways.

``--apgr`` also measures held-out APGR on MMLU with whole subjects held out (5 folds, fold seeds
0-4, k = 50, temperature 10): every row scored from the other folds' rows by brute force (what
``paxis calibrate`` cross-fits with) and by the search index fitted on those rows, same folds.

Run: ``.venv/bin/python benchmarks/knn_bench.py [--no-minilm] [--apgr] [--json]``
(``--cache DIR`` keeps the MMLU embeddings between runs; MiniLM on 11k questions takes minutes
on a small CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paxis_router.calibration.datasets import load_examples, quality  # noqa: E402
from paxis_router.calibration.knn import (  # noqa: E402
    KnnScorer,
    crossfit_neighbours,
    encoder_by_name,
    fit_index,
    hashed_encoder,
    neighbour_values,
    weighted_value,
)
from paxis_router.calibration.metrics import apgr, sweep  # noqa: E402
from paxis_router.calibration.scorer import LearnedScorer  # noqa: E402
from paxis_router.calibration.thresholds import score_below  # noqa: E402
from paxis_router.testing import make_state  # noqa: E402
from paxis_router.types import ChatRequest  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from numpy.typing import NDArray

    from paxis_router.calibration.datasets import Example

DATA = ROOT / "benchmarks" / "data" / "routellm" / "mmlu" / "responses"
WEAK, STRONG = "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"
POOLS = (1000, 5500, 10000)
QUERIES = 300
K, TEMPERATURE = 50, 10.0


def _cpu(fn: Callable[[Any], object], items: Iterable[Any]) -> list[float]:  # Any: any item
    """CPU seconds of the calling thread for ``fn(item)``, one sample per item."""
    out = []
    for item in items:
        start = time.thread_time()
        fn(item)
        out.append(time.thread_time() - start)
    return out


def _median_ms(samples: list[float]) -> float:
    return float(np.median(samples)) * 1e3


def _embed(name: str, examples: list[Example], cache: Path | None) -> NDArray[np.float32] | None:
    prompts = [e.prompt for e in examples]
    digest = hashlib.sha256("\n".join(prompts).encode()).hexdigest()[:16]
    path = None if cache is None else cache / f"mmlu-{name}-{digest}.npy"
    if path is not None and path.is_file():
        return np.asarray(np.load(path), dtype=np.float32)
    if name == "hashed":
        vectors = hashed_encoder()(prompts)
    else:
        try:
            encode = encoder_by_name(name)
        except Exception as exc:  # any missing extra: skip this encoder
            print(f"skipping {name}: {exc}", file=sys.stderr)
            return None
        vectors = encode(prompts)
    out = np.asarray(vectors, dtype=np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, out)
    return out


def _one_encode_ms(name: str, prompts: list[str]) -> float:
    encode = hashed_encoder() if name == "hashed" else encoder_by_name(name)
    encode(prompts[:2])  # load / warm up
    return _median_ms(_cpu(lambda p: encode([p]), prompts[:100]))


def _learned(dims: int) -> LearnedScorer:
    """A learned scorer of the shipped shape (1,024 hashed buckets of the prompt, two heads)."""
    rng = np.random.default_rng(0)

    def head() -> dict[str, Any]:  # Any: JSON values
        return {
            "intercept": 0.1,
            "hand": [],
            "text": {"prompt": rng.normal(0, 0.1, dims).round(4).tolist()},
        }

    return LearnedScorer.from_dict(
        {
            "format": "paxis-scorer/1",
            "features": [],
            "mean": [],
            "scale": [],
            "buckets": dims,
            "idf": {"prompt": rng.uniform(1, 5, dims).round(4).tolist()},
            "weak": head(),
            "strong": head(),
        }
    )


def _previous_predicate(
    pool: NDArray[np.float32],
    values: NDArray[np.float64],
    learned: LearnedScorer,
    encode: Callable[[list[str]], NDArray[np.float32]],
) -> Callable[[Any], bool]:  # Any: RouteState
    """The ``score_below`` predicate of a mix scorer as it was before the search index: one
    encode, ``neighbour_values`` over the whole pool, then the learned half (the previous
    ``KnnScorer.score`` -> ``score_many`` path, line for line)."""

    def predicate(state: Any) -> bool:  # Any: RouteState
        last = state.last
        prompt, response = state.request.query, last.completion.content
        vectors = np.asarray(encode([prompt]), dtype=np.float32)
        knn = neighbour_values(vectors, pool, values, k=K, temperature=TEMPERATURE)
        mixed = [
            (0.5 * float(v) + 0.5 * learned.score(p, r, vs)) / 1.0
            for v, p, r, vs in zip(knn, [prompt], [response], [last.verdicts], strict=True)
        ]
        return mixed[0] < 0.0

    return predicate


def _route_states(prompts: list[str]) -> list[Any]:  # Any: RouteState
    """A route at the worker tier with an answer, one per prompt (what the predicate reads)."""
    return [make_state(request=ChatRequest.from_text(p), tier_index=0) for p in prompts]


def _measure(
    name: str, vectors: NDArray[np.float32], values: NDArray[np.float64], prompts: list[str]
) -> list[dict[str, Any]]:  # Any: JSON values
    rows = []
    for n in POOLS:
        row = _pool_row(name, vectors[:n], values[:n], vectors[-QUERIES:], prompts[-QUERIES:])
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    return rows


def _pool_row(
    name: str,
    pool: NDArray[np.float32],
    pool_values: NDArray[np.float64],
    queries: NDArray[np.float32],
    query_prompts: list[str],
) -> dict[str, Any]:  # Any: JSON values
    built = time.perf_counter()
    index = fit_index(pool, K)
    fit_s = time.perf_counter() - built

    def brute_one(q: NDArray[np.float32]) -> float:
        found = neighbour_values(q[None, :], pool, pool_values, k=K, temperature=TEMPERATURE)
        return float(found[0])

    def search_one(q: NDArray[np.float32]) -> float:
        near, sims = index.search(q, K)
        return weighted_value(sims, pool_values[near], TEMPERATURE)

    brute: list[float] = []
    search: list[float] = []
    for q in queries:  # interleaved: both see the same machine load
        brute.extend(_cpu(brute_one, [q]))
        search.extend(_cpu(search_one, [q]))
    same, worst = 0, 0.0
    for q, sims in zip(queries, queries @ pool.T, strict=True):
        near, _ = index.search(q, K)
        same += set(near.tolist()) == set(np.argpartition(-sims, K - 1)[:K].tolist())
        worst = max(worst, abs(search_one(q) - brute_one(q)))
    by_prompt = dict(zip(query_prompts, queries, strict=True))

    def lookup(texts: list[str]) -> NDArray[np.float32]:  # the encoder's output, precomputed
        return np.stack([by_prompt[t] for t in texts])

    learned = _learned(1024)

    def scorer(cache_size: int) -> KnnScorer:
        return KnnScorer(
            pool,
            pool_values,
            k=K,
            temperature=TEMPERATURE,
            encoder=name,
            learned=learned,
            weights=(0.5, 0.5),
            encode=lookup,
            index=index,
            cache_size=cache_size,
        )

    new = score_below(scorer(0), 0.0)  # no cache: every route embeds and searches
    old = _previous_predicate(pool, pool_values, learned, lookup)
    states = _route_states(query_prompts)
    before: list[float] = []
    after: list[float] = []
    for state in states:  # interleaved, as above
        before.extend(_cpu(old, [state]))
        after.extend(_cpu(new, [state]))
    cached = score_below(scorer(4096), 0.0)
    for state in states:
        cached(state)
    warm = _cpu(cached, states)
    learned_ms = _median_ms(_cpu(lambda p: learned.score(p, "The answer is B."), query_prompts))
    return {
        "encoder": name,
        "pool": len(pool),
        "dims": int(pool.shape[1]),
        "mode": index.mode,
        "shortlist": index.shortlist or None,
        "index_fit_s": round(fit_s, 3),
        "brute_ms": round(_median_ms(brute), 4),
        "search_ms": round(_median_ms(search), 4),
        "speedup": round(_median_ms(brute) / _median_ms(search), 1),
        "predicate_ms": round(_median_ms(after), 4),
        "predicate_cached_ms": round(_median_ms(warm), 4),
        "previous_predicate_ms": round(_median_ms(before), 4),
        "predicate_speedup": round(_median_ms(before) / _median_ms(after), 1),
        "learned_half_ms": round(learned_ms, 4),
        "same_neighbours": same / len(queries),
        "max_score_diff": worst,
    }


def _apgr_rows(
    name: str, vectors: NDArray[np.float32], examples: list[Example]
) -> dict[str, Any]:  # Any: JSON values
    w = np.array([quality(e.outcomes[WEAK]) for e in examples])
    g = np.array([quality(e.outcomes[STRONG]) for e in examples])
    values = w - g
    groups = sorted({e.group for e in examples})
    per_seed: dict[str, list[float]] = {"brute": [], "index": []}
    same = 0.0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        shuffled = [groups[i] for i in rng.permutation(len(groups))]
        fold_of = {s: i % 5 for i, s in enumerate(shuffled)}
        fold = np.array([fold_of[e.group] for e in examples])
        brute = crossfit_neighbours(vectors, values, fold, k=K, temperature=TEMPERATURE)
        indexed = np.zeros(len(examples))
        for f in range(5):
            test, train = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
            index = fit_index(vectors[train], K)
            for i, (near, sims) in zip(test, index.search_many(vectors[test], K), strict=True):
                indexed[i] = weighted_value(sims, values[train][near], TEMPERATURE)
        same += float(np.mean(np.isclose(brute, indexed, atol=1e-6))) / 5
        per_seed["brute"].append(apgr(sweep(brute.tolist(), w.tolist(), g.tolist())))
        per_seed["index"].append(apgr(sweep(indexed.tolist(), w.tolist(), g.tolist())))
    return {
        "encoder": name,
        "apgr_brute": round(float(np.mean(per_seed["brute"])), 4),
        "apgr_index": round(float(np.mean(per_seed["index"])), 4),
        "per_seed_brute": [round(x, 4) for x in per_seed["brute"]],
        "per_seed_index": [round(x, 4) for x in per_seed["index"]],
        "rows_with_equal_scores": round(same, 4),
    }


@contextlib.contextmanager
def _blas_threads(count: int | None) -> Iterator[None]:
    if count is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=count, user_api="blas"):
        yield


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-minilm", action="store_true")
    parser.add_argument("--apgr", action="store_true", help="also held-out APGR, same folds")
    parser.add_argument("--cache", type=Path, default=None, help="keep embeddings here")
    parser.add_argument("--blas-threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    examples = load_examples([DATA])
    random.Random(0).shuffle(examples)
    prompts = [e.prompt for e in examples]
    values = np.array([quality(e.outcomes[WEAK]) - quality(e.outcomes[STRONG]) for e in examples])
    out: dict[str, Any] = {"routes": [], "apgr": [], "encode_ms": {}}  # Any: JSON values
    with _blas_threads(args.blas_threads):
        for name in ("hashed", *(() if args.no_minilm else ("minilm",))):
            vectors = _embed(name, examples, args.cache)
            if vectors is None:
                continue
            out["encode_ms"][name] = round(_one_encode_ms(name, prompts[-QUERIES:]), 3)
            out["routes"].extend(_measure(name, vectors, values, prompts))
            if args.apgr:
                out["apgr"].append(_apgr_rows(name, vectors, examples))
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print("per route, CPU ms (median over 300 new MMLU questions); previous = before the index")
    print(
        "encoder  pool   dims mode       shortlist | search: previous  new     x    | "
        "predicate: previous  new     x    cached | same-nbrs  max|diff|"
    )
    for r in out["routes"]:
        print(
            f"{r['encoder']:8s} {r['pool']:6d} {r['dims']:4d} {r['mode']:10s} "
            f"{r['shortlist'] or '-'!s:>9s} |         {r['brute_ms']:7.3f} {r['search_ms']:7.3f} "
            f"{r['speedup']:5.1f} |            {r['previous_predicate_ms']:7.3f} "
            f"{r['predicate_ms']:7.3f} {r['predicate_speedup']:5.1f} "
            f"{r['predicate_cached_ms']:6.3f} | {r['same_neighbours']:9.3f}  "
            f"{r['max_score_diff']:.1e}"
        )
    for name, ms in out["encode_ms"].items():
        print(
            f"encode one prompt ({name}): {ms:.3f} ms CPU (not in 'predicate'; cached per prompt)"
        )
    for a in out["apgr"]:
        print(
            f"held-out APGR ({a['encoder']}, subjects held out, seeds 0-4): brute "
            f"{a['apgr_brute']:.4f} {a['per_seed_brute']}, index {a['apgr_index']:.4f} "
            f"{a['per_seed_index']}; rows with equal scores {a['rows_with_equal_scores']:.4f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
