"""Skill selection: speed at 1,000 and 100,000 skills against rank_bm25 and bm25s, and quality.

One run measures:

* on the real corpus (``../shared/data/skills-corpus``, 934 SKILL.md) and on a synthetic
  100,000-skill corpus recombined from it (each synthetic skill: a real skill's name with a
  numeric suffix, its description plus another random skill's description):
  build time, memory (numpy bytes for paxis; RSS growth for all three), and single-query
  latency p50/p99 in microseconds, query tokenisation included, for

  - ``paxis``: ``SkillLibrary.select(query, k=5)``, the default BM25F library (the product path:
    ranked skills with scores; their matched terms are computed when first read, which the
    router never does); ``paxis+terms`` also reads every match's matched terms; ``paxis-cold``
    is ``select`` with the index's query-chunk cache emptied before every query (what a
    never-seen wording costs);
  - ``paxis-okapi``: ``SkillIndex(mode="okapi").search`` on the same tokens as the baselines;
  - ``rank_bm25``: ``BM25Okapi.get_scores`` + top-5 (fewer queries at 100k: it is slow);
  - ``bm25s``: ``BM25.retrieve(tokens, k=5)``, its documented query API (top-k ids and scores),
    one query per call;
  - ``bm25s-scores``: ``BM25.get_scores`` + an argpartition top-5, its bare scoring kernel (no
    API around it: the fastest a caller can get from bm25s one query at a time).

  The baselines get exactly the tokens paxis indexes (same tokenizer, same fields concatenated).
  Ratios are baseline p50 / paxis p50, measured in this run.
* selection quality: recall@1, recall@5, MRR for Okapi and BM25F on name+description only, the
  previous and the current default field weights with the body, and the MiniLM rerank
  (``--no-rerank`` skips it; it needs the [embed] extra and takes a minute or two on a small
  CPU), each on two query sets: ``dev`` (``benchmarks/data/skills_dev_queries.jsonl``, 147
  queries written for this project; every parameter was chosen on it) and ``heldout`` (the
  corpus' ``queries.jsonl``, 100 queries, never used to choose anything).

``--json`` prints ``{"p50_us_1k", "p99_us_1k", "p50_us_100k", "speedup_vs_rank_bm25",
"speedup_vs_bm25s"}`` (speed-ups at ~1k skills, the product path against each baseline;
``speedup_vs_bm25s`` is against ``retrieve``, ``speedup_vs_bm25s_get_scores`` against the
kernel) plus the 100k ratios and the quality figures.

Run: ``.venv/bin/python benchmarks/skills_bench.py [--corpus DIR] [--n-large 100000] [--json]``
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paxis_router.skills.bm25 import SkillIndex  # noqa: E402
from paxis_router.skills.evaluate import EvalResult, evaluate, read_queries  # noqa: E402
from paxis_router.skills.library import (  # noqa: E402
    DEFAULT_BODY_MAX_CHARS,
    LIBRARY_FIELD_B,
    LIBRARY_FIELD_WEIGHTS,
    SkillLibrary,
    skill_fields,
)
from paxis_router.skills.model import Skill  # noqa: E402
from paxis_router.skills.parse import ParsedSkill, find_skill_dirs, parse_skill_dir  # noqa: E402
from paxis_router.skills.tokenize import Tokenizer  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "skills-corpus"
K = 5
BODY_MAX_CHARS = DEFAULT_BODY_MAX_CHARS  # the library default
DEV_QUERIES = ROOT / "benchmarks" / "data" / "skills_dev_queries.jsonl"


def rss_bytes() -> int:
    with Path("/proc/self/statm").open() as fh:
        return int(fh.read().split()[1]) * 4096


def percentile_us(samples_ns: Sequence[int], q: float) -> float:
    return float(np.percentile(np.asarray(samples_ns), q)) / 1000.0


def time_queries(
    fn: Callable[[str], object],
    queries: Sequence[str],
    reps: int,
    before_each: Callable[[], object] | None = None,
) -> list[int]:
    for query in queries[:5]:
        fn(query)  # warm caches (stemmer, compile)
    gc.collect()
    samples: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(reps):
        for query in queries:
            if before_each is not None:
                before_each()
            t0 = clock()
            fn(query)
            samples.append(clock() - t0)
    return samples


def build_timed(fn: Callable[[], object]) -> tuple[object, float, int]:
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    obj = fn()
    seconds = time.perf_counter() - t0
    return obj, seconds, rss_bytes() - rss0


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    if len(scores) <= k:
        return np.argsort(-scores)
    top = np.argpartition(scores, len(scores) - k)[-k:]
    return top[np.argsort(-scores[top])]


def measure_scale(
    skills: list[Skill],
    all_field_tokens: list[dict[str, list[str]]],
    queries: list[str],
    *,
    reps: int,
    rank_bm25_queries: int,
    field_weights: dict[str, float],
    okapi: bool,
) -> dict[str, dict[str, float]]:
    """Latency and build figures for each engine, all built from the same tokens."""
    from bm25s import BM25
    from rank_bm25 import BM25Okapi

    out: dict[str, dict[str, float]] = {}
    tokenizer = Tokenizer()
    fields = list(field_weights)
    field_tokens = [{name: ft[name] for name in fields} for ft in all_field_tokens]
    docs = [[t for name in fields for t in ft[name]] for ft in field_tokens]

    def build_library() -> SkillLibrary:
        index = SkillIndex(
            field_weights=field_weights, field_b=LIBRARY_FIELD_B, tokenizer=tokenizer
        )
        for skill, tokens in zip(skills, field_tokens, strict=True):
            index.add_tokens(skill.id, tokens)
        index.compact()
        return SkillLibrary.from_index(index, skills)

    lib_obj, seconds, rss = build_timed(build_library)
    assert isinstance(lib_obj, SkillLibrary)
    lib = lib_obj
    samples = time_queries(lambda q: lib.select(q, k=K), queries, reps)
    out["paxis"] = row(seconds, rss, samples, lib.index.nbytes)

    def select_and_read_terms(query: str) -> object:
        return [m.matched_terms for m in lib.select(query, k=K)]

    samples = time_queries(select_and_read_terms, queries, reps)
    out["paxis+terms"] = row(0.0, 0, samples)
    chunk_cache = lib.index._chunk_terms

    def cold_select(query: str) -> object:
        return lib.select(query, k=K)

    samples = time_queries(cold_select, queries, 1, before_each=chunk_cache.clear)
    out["paxis-cold"] = row(0.0, 0, samples)

    if okapi:
        ids = [s.id for s in skills]

        def build_okapi() -> SkillIndex:
            index = SkillIndex(mode="okapi", tokenizer=tokenizer)
            for doc_id, tokens in zip(ids, docs, strict=True):
                index.add_tokens(doc_id, {"text": tokens})
            index.compact()
            return index

        okapi_obj, seconds, rss = build_timed(build_okapi)
        assert isinstance(okapi_obj, SkillIndex)
        okapi_index = okapi_obj
        samples = time_queries(
            lambda q: okapi_index.search_terms(tokenizer.tokens(q), K), queries, reps
        )
        out["paxis-okapi"] = row(seconds, rss, samples, okapi_index.nbytes)

    def build_bm25s() -> BM25:
        model = BM25()
        model.index(docs, show_progress=False)
        return model

    bm25s_obj, seconds, rss = build_timed(build_bm25s)
    assert isinstance(bm25s_obj, BM25)
    bm25s_model = bm25s_obj
    samples = time_queries(
        lambda q: top_k(bm25s_model.get_scores(tokenizer.tokens(q)), K), queries, reps
    )
    out["bm25s-scores"] = row(seconds, rss, samples)
    samples = time_queries(
        lambda q: bm25s_model.retrieve(
            [tokenizer.tokens(q) or ["?"]], k=K, show_progress=False, n_threads=1
        ),
        queries if len(skills) < 10_000 else queries[:25],
        1,
    )
    out["bm25s"] = row(seconds, rss, samples)

    rank_obj, seconds, rss = build_timed(lambda: BM25Okapi(docs))
    assert isinstance(rank_obj, BM25Okapi)
    rank_model = rank_obj
    samples = time_queries(
        lambda q: top_k(rank_model.get_scores(tokenizer.tokens(q)), K),
        queries[:rank_bm25_queries],
        1,
    )
    out["rank_bm25"] = row(seconds, rss, samples)
    gc.collect()
    return out


def row(
    seconds: float, rss: int, samples: list[int], index_bytes: int | None = None
) -> dict[str, float]:
    out = {
        "build_s": seconds,
        "rss_mb": rss / 1e6,
        "p50_us": percentile_us(samples, 50),
        "p99_us": percentile_us(samples, 99),
        "n_queries": len(samples),
    }
    if index_bytes is not None:
        out["index_mb"] = index_bytes / 1e6
    return out


def tokenise_real(parsed: list[ParsedSkill]) -> list[dict[str, list[str]]]:
    """Every indexed field of every real skill, tokenised with the library's tokenizer."""
    tokenizer = Tokenizer()
    return [
        {
            name: tokenizer.tokens(text)
            for name, text in skill_fields(p.skill, p.body, body_max_chars=BODY_MAX_CHARS).items()
        }
        for p in parsed
    ]


def synthetic(
    parsed: list[ParsedSkill], real_tokens: list[dict[str, list[str]]], n: int, seed: int = 7
) -> tuple[list[Skill], list[dict[str, list[str]]]]:
    """``n`` skills: real skill ``i % 934`` renamed ``<name>-<i>``, its description followed by a
    random other skill's. Their tokens are composed from the real skills' tokens, which equals
    tokenising the composed text (checked on the first 50)."""
    rng = random.Random(seed)
    tokenizer = Tokenizer()
    name_tokens = [tokenizer.tokens(p.skill.name[:40].replace("-", " ")) for p in parsed]
    skills: list[Skill] = []
    tokens: list[dict[str, list[str]]] = []
    for i in range(n):
        j = i % len(parsed)
        k = rng.randrange(len(parsed))
        base, other = parsed[j].skill, parsed[k].skill
        name = f"{base.name[:40]}-{i}"
        skill = Skill(
            id=f"synthetic/{name}",
            name=name,
            description=f"{base.description} {other.description}",
        )
        skills.append(skill)
        tokens.append(
            {
                "name": [*name_tokens[j], str(i)],
                "description": real_tokens[j]["description"] + real_tokens[k]["description"],
            }
        )
    for skill, composed in zip(skills[:50], tokens[:50], strict=False):
        fields = skill_fields(skill, "", body_max_chars=None)
        assert composed["description"] == tokenizer.tokens(fields["description"])
        assert composed["name"] == tokenizer.tokens(fields["name"]), (composed, fields)
    return skills, tokens


def quality(
    parsed: list[ParsedSkill],
    real_tokens: list[dict[str, list[str]]],
    corpus: Path,
    rerank: bool,
) -> dict[str, dict[str, dict[str, float | int]]]:
    """Each configuration's figures on the dev set and on the held-out ``queries.jsonl``."""
    query_sets = {
        "dev": read_queries(DEV_QUERIES),
        "heldout": read_queries(corpus / "queries.jsonl"),
    }
    rows: dict[str, dict[str, EvalResult]] = {}
    skills = [p.skill for p in parsed]

    def score(label: str, lib: SkillLibrary) -> None:
        rows[label] = {name: evaluate(lib, qs) for name, qs in query_sets.items()}

    def lib_with(index: SkillIndex, tokens: list[dict[str, list[str]]]) -> SkillLibrary:
        fields = index.fields
        for skill, field_tokens in zip(skills, tokens, strict=True):
            index.add_tokens(skill.id, {f: field_tokens[f] for f in fields})
        return SkillLibrary.from_index(index, skills)

    plain = Tokenizer(stem=False, stopwords=False)
    baseline = SkillIndex(mode="okapi", tokenizer=plain)
    for skill in skills:
        baseline.add_tokens(skill.id, {"text": plain.tokens(f"{skill.name} {skill.description}")})
    score(
        "okapi name+description, no stemming/stopwords",
        SkillLibrary.from_index(baseline, skills),
    )
    name_desc = {f: LIBRARY_FIELD_WEIGHTS[f] for f in ("name", "description")}
    score(
        "bm25f name+description (stemming, stopwords)",
        lib_with(SkillIndex(field_weights=name_desc, field_b=LIBRARY_FIELD_B), real_tokens),
    )
    # The defaults before they were tuned on the dev set: weights 3/2/1/1, bodies cut at 20k.
    tokenizer = Tokenizer()
    old_tokens = [
        {
            f: tokenizer.tokens(t)
            for f, t in skill_fields(p.skill, p.body, body_max_chars=20_000).items()
        }
        for p in parsed
    ]
    old_weights = {"name": 3.0, "description": 2.0, "headings": 1.0, "body": 1.0}
    score(
        "bm25f +headings +body, untuned weights 3/2/1/1",
        lib_with(SkillIndex(field_weights=old_weights, field_b=LIBRARY_FIELD_B), old_tokens),
    )
    default = lib_with(
        SkillIndex(field_weights=LIBRARY_FIELD_WEIGHTS, field_b=LIBRARY_FIELD_B), real_tokens
    )
    score("bm25f +headings +body, dev-tuned weights (default)", default)
    if rerank:
        from paxis_router.skills.rerank import EmbeddingReranker

        default.reranker = EmbeddingReranker()
        score("default + MiniLM rerank of top 20", default)
    return {
        label: {name: result.as_dict() for name, result in by_set.items()}
        for label, by_set in rows.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--n-large", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=10, help="passes over the queries at 1k")
    parser.add_argument("--no-rerank", action="store_true", help="skip the MiniLM rerank row")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    parsed = [parse_skill_dir(f, root=args.corpus) for f in find_skill_dirs(args.corpus)]
    queries = [q.query for q in read_queries(args.corpus / "queries.jsonl")]
    t0 = time.perf_counter()
    real_tokens = tokenise_real(parsed)
    tok_small = time.perf_counter() - t0
    small = measure_scale(
        [p.skill for p in parsed],
        real_tokens,
        queries,
        reps=args.reps,
        rank_bm25_queries=len(queries),
        field_weights=LIBRARY_FIELD_WEIGHTS,
        okapi=True,
    )
    t0 = time.perf_counter()
    skills, large_tokens = synthetic(parsed, real_tokens, args.n_large)
    tok_large = time.perf_counter() - t0
    large = measure_scale(
        skills,
        large_tokens,
        queries,
        reps=2,
        rank_bm25_queries=5,
        field_weights={"name": 3.0, "description": 2.0},
        okapi=False,
    )
    del skills, large_tokens
    qual = quality(parsed, real_tokens, args.corpus, rerank=not args.no_rerank)

    p = small["paxis"]["p50_us"]
    pl = large["paxis"]["p50_us"]
    summary = {
        "p50_us_1k": round(p, 1),
        "p99_us_1k": round(small["paxis"]["p99_us"], 1),
        "p50_us_100k": round(pl, 1),
        "speedup_vs_rank_bm25": round(small["rank_bm25"]["p50_us"] / p, 1),
        "speedup_vs_bm25s": round(small["bm25s"]["p50_us"] / p, 1),
        "speedup_vs_bm25s_get_scores": round(small["bm25s-scores"]["p50_us"] / p, 1),
        "p50_us_1k_cold_cache": round(small["paxis-cold"]["p50_us"], 1),
        "p50_us_1k_with_terms": round(small["paxis+terms"]["p50_us"], 1),
        "p99_us_100k": round(large["paxis"]["p99_us"], 1),
        "speedup_vs_rank_bm25_100k": round(large["rank_bm25"]["p50_us"] / pl, 1),
        "speedup_vs_bm25s_100k": round(large["bm25s"]["p50_us"] / pl, 1),
        "speedup_vs_bm25s_get_scores_100k": round(large["bm25s-scores"]["p50_us"] / pl, 1),
        "tokenise_s_1k": round(tok_small, 2),
        "tokenise_s_100k": round(tok_large, 2),
        "n_skills_1k": len(parsed),
        "n_skills_100k": args.n_large,
        "quality": qual,
    }
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return 0
    scales = (
        ("real corpus", small, len(parsed), tok_small),
        ("synthetic", large, args.n_large, tok_large),
    )
    for label, table, n, tok_s in scales:
        sys.stdout.write(
            f"\n{label}: {n:,} skills; tokens made once in {tok_s:.1f} s, every engine built from"
            " them; latency per query includes tokenising the query\n"
        )
        sys.stdout.write(
            f"{'engine':<13}{'build s':>8} {'RSS MB':>8} {'index MB':>9} "
            f"{'p50 us':>10} {'p99 us':>10} {'queries':>8} {'p50 / paxis':>12}\n"
        )
        base = table["paxis"]["p50_us"]
        for engine, fig in table.items():
            index_mb = f"{fig['index_mb']:.1f}" if "index_mb" in fig else "-"
            sys.stdout.write(
                f"{engine:<13}{fig['build_s']:>8.2f} {fig['rss_mb']:>8.1f} {index_mb:>9} "
                f"{fig['p50_us']:>10.1f} {fig['p99_us']:>10.1f} {int(fig['n_queries']):>8} "
                f"{fig['p50_us'] / base:>11.1f}x\n"
            )
    any_row = next(iter(qual.values()))
    sizes = ", ".join(f"{name} n={int(r['n'])}" for name, r in any_row.items())
    sys.stdout.write(
        f"\nselection quality, recall@1 / recall@5 / MRR ({sizes}; parameters chosen on dev)\n"
    )
    sys.stdout.write(f"  {'configuration':<52}{'dev':>19}{'held-out':>19}\n")
    for label, by_set in qual.items():
        cells = "".join(
            f" {r['recall_at_1']:>5.2f} {r['recall_at_5']:>5.2f} {r['mrr']:>6.3f}"
            for r in by_set.values()
        )
        sys.stdout.write(f"  {label:<52}{cells}\n")
    sys.stdout.write("\n" + json.dumps({k: v for k, v in summary.items() if k != "quality"}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
