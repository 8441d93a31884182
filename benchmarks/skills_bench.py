"""Skill selection at 1k, 10k, 100k and 1M skills against bm25s and rank_bm25, and its quality.

Every scale runs in its own Python process (so RSS growth is that scale's alone) and builds
every engine from exactly the same tokens:

* ``1k``: the real corpus (``../shared/data/skills-corpus``, 934 SKILL.md), the library's
  fields (name, description, headings, the first 5,000 characters of the body);
* ``10k``, ``100k``, ``1m``: SYNTHETIC skills recombined from the corpus: skill ``i`` is real
  skill ``i % 934`` renamed ``<name>-<i>`` with its description followed by a random other
  skill's (name and description fields). The vocabulary is the corpus's, plus one number term
  per skill.

Per scale and engine: build time and RSS growth per skill; single-query latency p50/p99 in
microseconds (query tokenisation included) over the corpus's 100 held-out task queries, k=5:

* ``paxis``: ``SkillLibrary.select`` with its selection cache off (every query scored);
  ``paxis-cached``: the same queries again with the cache on (a repeated task);
* ``paxis-load``: the library saved with ``save`` and loaded with ``load`` (memory-mapped) in a
  fresh process: load time, its RSS per skill, and ``select`` latency there;
* ``bm25s``: ``BM25.get_scores`` + an argpartition top-5, its bare scoring kernel (the fastest a
  caller gets from bm25s one query at a time); ``bm25s-retrieve``: ``BM25.retrieve`` (up to 10k);
* ``rank_bm25``: ``BM25Okapi.get_scores`` + top-5 (1k and 10k only: it is slow).

Serving with updates: from a built library, 1,000 steps: 50% a query, 30% ``add`` of a new
skill then a query, 20% ``remove`` of a random live skill then a query (that query pays any
upkeep the update left), every answer exact. Figures: the mean add+query and remove+query pair,
and plain query p50/p99 while serving. bm25s has no incremental update: staying exact means
rebuilding it, whose cost is its build time (reported as such, not run per update).

Also: rendering three chosen skills' bodies for the prompt (``render_skills``: cold, i.e. read
from disk, vs the library's body cache), and selection quality (recall@1, recall@5, MRR on the
dev set and the held-out queries; ``--no-quality`` skips it, ``--no-rerank`` skips the MiniLM
row).

Ratios are always within one run: the machines this runs on are shared and noisy.

Run: ``.venv/bin/python benchmarks/skills_bench.py [--scales 1k,10k,100k,1m] [--json]``
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import subprocess
import sys
import tempfile
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

CORPUS_CANDIDATES = [ROOT.parent / "shared", ROOT.parent.parent / "shared"]
DEFAULT_CORPUS = next(
    (c / "data" / "skills-corpus" for c in CORPUS_CANDIDATES if (c / "data").is_dir()),
    CORPUS_CANDIDATES[0] / "data" / "skills-corpus",
)
DEV_QUERIES = ROOT / "benchmarks" / "data" / "skills_dev_queries.jsonl"
K = 5
SCALES = {"1k": 0, "10k": 10_000, "100k": 100_000, "1m": 1_000_000}
SYNTHETIC_FIELDS = {"name": 3.0, "description": 2.0}
Tokens = dict[str, list[str]]


def rss_bytes() -> int:
    with Path("/proc/self/statm").open() as fh:
        return int(fh.read().split()[1]) * 4096


def pct_us(samples_ns: Sequence[int], q: float) -> float:
    return float(np.percentile(np.asarray(samples_ns), q)) / 1000.0


def time_queries(fn: Callable[[str], object], queries: Sequence[str], reps: int) -> list[int]:
    for query in queries[:5]:
        fn(query)  # warm caches (stemmer, first compile)
    gc.collect()
    samples: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(reps):
        for query in queries:
            t0 = clock()
            fn(query)
            samples.append(clock() - t0)
    return samples


def measured(fn: Callable[[], object]) -> tuple[object, float, int]:
    """(result, seconds, RSS growth in bytes)."""
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    obj = fn()
    seconds = time.perf_counter() - t0
    gc.collect()
    return obj, seconds, rss_bytes() - rss0


def latency(samples: list[int]) -> dict[str, float]:
    return {"p50_us": pct_us(samples, 50), "p99_us": pct_us(samples, 99), "n": len(samples)}


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    if len(scores) <= k:
        return np.argsort(-scores)
    top = np.argpartition(scores, len(scores) - k)[-k:]
    return top[np.argsort(-scores[top])]


# --- data --------------------------------------------------------------------------------------


def real_corpus(corpus: Path) -> tuple[list[ParsedSkill], list[Tokens]]:
    parsed = [parse_skill_dir(f, root=corpus) for f in find_skill_dirs(corpus)]
    tokenizer = Tokenizer()
    tokens = [
        {
            name: tokenizer.tokens(text)
            for name, text in skill_fields(
                p.skill, p.body, body_max_chars=DEFAULT_BODY_MAX_CHARS
            ).items()
        }
        for p in parsed
    ]
    return parsed, tokens


def synthetic(
    parsed: list[ParsedSkill], real_tokens: list[Tokens], n: int, seed: int = 7, start: int = 0
) -> tuple[list[Skill], list[Tokens]]:
    """``n`` skills: real skill ``i % 934`` renamed ``<name>-<i>``, its description followed by a
    random other skill's. Their tokens are composed from the real skills' tokens, which equals
    tokenising the composed text (checked on the first 50)."""
    rng = random.Random(seed)
    tokenizer = Tokenizer()
    name_tokens = [tokenizer.tokens(p.skill.name[:40].replace("-", " ")) for p in parsed]
    skills: list[Skill] = []
    tokens: list[Tokens] = []
    for i in range(start, start + n):
        j = i % len(parsed)
        k = rng.randrange(len(parsed))
        base, other = parsed[j].skill, parsed[k].skill
        name = f"{base.name[:40]}-{i}"
        skills.append(
            Skill(
                id=f"synthetic/{name}",
                name=name,
                description=f"{base.description} {other.description}",
            )
        )
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


# --- one scale, in its own process -------------------------------------------------------------


def run_scale(scale: str, corpus: Path, workdir: Path) -> dict[str, object]:
    parsed, real_tokens = real_corpus(corpus)
    queries = [q.query for q in read_queries(corpus / "queries.jsonl")]
    if scale == "1k":
        skills, tokens = [p.skill for p in parsed], real_tokens
        weights = LIBRARY_FIELD_WEIGHTS
    else:
        skills, tokens = synthetic(parsed, real_tokens, SCALES[scale])
        weights = SYNTHETIC_FIELDS
    n = len(skills)
    reps = 5 if n <= 10_000 else 2 if n <= 100_000 else 1
    engines: dict[str, dict[str, float]] = {}
    lib = paxis_engines(engines, skills, tokens, weights, queries, reps, workdir / scale, corpus)
    engines["paxis-serving"] = serving(lib, parsed, real_tokens, queries)
    del lib
    docs = [[t for f in weights for t in doc[f]] for doc in tokens]
    del tokens
    gc.collect()
    bm25s_engines(engines, docs, queries, reps)
    if n <= 10_000:
        rank_bm25_engine(engines, docs, queries)
    out: dict[str, object] = {"scale": scale, "n_skills": n, "synthetic": scale != "1k"}
    if scale == "1k":
        out["render"] = render(corpus)
    out["engines"] = engines
    return out


def paxis_index(skills: list[Skill], tokens: list[Tokens], weights: dict[str, float]) -> SkillIndex:
    index = SkillIndex(field_weights=weights, field_b=LIBRARY_FIELD_B)
    index.add_many((s.id, {f: t[f] for f in weights}) for s, t in zip(skills, tokens, strict=True))
    index.search("warm", k=1)  # the first query seals and compiles: part of the build
    return index


def paxis_engines(
    engines: dict[str, dict[str, float]],
    skills: list[Skill],
    tokens: list[Tokens],
    weights: dict[str, float],
    queries: list[str],
    reps: int,
    saved: Path,
    corpus: Path,
) -> SkillLibrary:
    n = len(skills)
    built, seconds, rss = measured(lambda: paxis_index(skills, tokens, weights))
    assert isinstance(built, SkillIndex)
    lib = SkillLibrary.from_index(built, skills, cache_size=0)
    samples = time_queries(lambda q: lib.select(q, k=K), queries, reps)
    engines["paxis"] = {
        "build_s": seconds,
        "rss_b_per_skill": rss / n,
        "index_b_per_skill": built.nbytes / n,
        **latency(samples),
    }
    cached = SkillLibrary.from_index(built, skills, cache_size=1024)
    for query in queries:
        cached.select(query, k=K)
    engines["paxis-cached"] = latency(time_queries(lambda q: cached.select(q, k=K), queries, reps))
    t0 = time.perf_counter()
    lib.save(saved)
    save_s = time.perf_counter() - t0
    child = [sys.executable, __file__, "--load", str(saved), "--reps", str(reps)]
    done = subprocess.run(
        [*child, "--corpus", str(corpus)], check=True, stdout=subprocess.PIPE, text=True
    )
    engines["paxis-load"] = {"save_s": save_s, **json.loads(done.stdout)}
    return lib


def bm25s_engines(
    engines: dict[str, dict[str, float]], docs: list[list[str]], queries: list[str], reps: int
) -> None:
    from bm25s import BM25

    def build() -> BM25:
        model = BM25()
        model.index(docs, show_progress=False)
        return model

    built, seconds, rss = measured(build)
    assert isinstance(built, BM25)
    tokenizer = Tokenizer()
    samples = time_queries(lambda q: top_k(built.get_scores(tokenizer.tokens(q)), K), queries, reps)
    engines["bm25s"] = {"build_s": seconds, "rss_b_per_skill": rss / len(docs), **latency(samples)}
    if len(docs) <= 10_000:
        samples = time_queries(
            lambda q: built.retrieve(
                [tokenizer.tokens(q) or ["?"]], k=K, show_progress=False, n_threads=1
            ),
            queries,
            1,
        )
        engines["bm25s-retrieve"] = latency(samples)


def rank_bm25_engine(
    engines: dict[str, dict[str, float]], docs: list[list[str]], queries: list[str]
) -> None:
    from rank_bm25 import BM25Okapi

    built, seconds, rss = measured(lambda: BM25Okapi(docs))
    assert isinstance(built, BM25Okapi)
    tokenizer = Tokenizer()
    samples = time_queries(
        lambda q: top_k(built.get_scores(tokenizer.tokens(q)), K),
        queries if len(docs) <= 1_000 else queries[:30],
        1,
    )
    engines["rank_bm25"] = {
        "build_s": seconds,
        "rss_b_per_skill": rss / len(docs),
        **latency(samples),
    }


def serving(
    lib: SkillLibrary, parsed: list[ParsedSkill], real_tokens: list[Tokens], queries: list[str]
) -> dict[str, float]:
    """1,000 mixed operations on a live library: 50% query, 30% add, 20% remove."""
    rng = random.Random(11)
    index = lib.index
    more, more_tokens = synthetic(parsed, real_tokens, 300, seed=3, start=10**7)
    fresh = list(zip(more, more_tokens, strict=True))
    live = index.ids()
    adds: list[int] = []
    removes: list[int] = []
    query_ns: list[int] = []
    clock = time.perf_counter_ns
    for step in range(1_000):
        roll = rng.random()
        query = queries[step % len(queries)]
        t0 = clock()
        if roll < 0.3 and fresh:
            skill, _ = fresh.pop()
            lib.add(skill, body="")
            lib.select(query, k=K)
            adds.append(clock() - t0)
            live.append(skill.id)
        elif roll < 0.5:
            lib.remove(live.pop(rng.randrange(len(live))))
            lib.select(query, k=K)
            removes.append(clock() - t0)
        else:
            lib.select(query, k=K)
            query_ns.append(clock() - t0)
    return {
        "add_then_query_us": float(np.mean(adds)) / 1000,
        "remove_then_query_us": float(np.mean(removes)) / 1000,
        "n_adds": len(adds),
        "n_removes": len(removes),
        **{f"query_{k}": v for k, v in latency(query_ns).items()},
    }


def render(corpus: Path) -> dict[str, float]:
    """Rendering three chosen skills for the prompt: read from disk vs the body cache."""
    from paxis_router.skills.bodies import BodyCache
    from paxis_router.skills.prompt import render_skills

    warm = SkillLibrary.from_dir(corpus)
    cold = SkillLibrary.from_dir(corpus, bodies=BodyCache(max_entries=0))
    queries = [q.query for q in read_queries(corpus / "queries.jsonl")]
    chosen = {id(lib): [lib.select(q, k=3) for q in queries] for lib in (warm, cold)}
    result = {}
    for label, lib in (("render_cold_us", cold), ("render_cached_us", warm)):
        picks = chosen[id(lib)]
        samples = time_queries(lambda q, p=picks: render_skills(p[hash(q) % len(p)]), queries, 3)
        result[label] = pct_us(samples, 50)
    return result


def load_child(path: Path, reps: int, corpus: Path) -> dict[str, float]:
    """In a fresh process: load a saved library, then query it."""
    queries = [q.query for q in read_queries(corpus / "queries.jsonl")]
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    lib = SkillLibrary.load(path, cache_size=0)
    seconds = time.perf_counter() - t0
    samples = time_queries(lambda q: lib.select(q, k=K), queries, reps)
    gc.collect()
    return {
        "load_s": seconds,
        "rss_b_per_skill": (rss_bytes() - rss0) / len(lib),
        **latency(samples),
    }


# --- quality (1k, real corpus) -----------------------------------------------------------------


def quality(
    parsed: list[ParsedSkill], real_tokens: list[Tokens], corpus: Path, rerank: bool
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

    def lib_with(index: SkillIndex, tokens: list[Tokens]) -> SkillLibrary:
        fields = index.fields
        index.add_many(
            (s.id, {f: t[f] for f in fields}) for s, t in zip(skills, tokens, strict=True)
        )
        return SkillLibrary.from_index(index, skills)

    plain = Tokenizer(stem=False, stopwords=False)
    baseline = SkillIndex(mode="okapi", tokenizer=plain)
    baseline.add_many((s.id, {"text": plain.tokens(f"{s.name} {s.description}")}) for s in skills)
    score(
        "okapi name+description, no stemming/stopwords", SkillLibrary.from_index(baseline, skills)
    )
    name_desc = {f: LIBRARY_FIELD_WEIGHTS[f] for f in ("name", "description")}
    score(
        "bm25f name+description (stemming, stopwords)",
        lib_with(SkillIndex(field_weights=name_desc, field_b=LIBRARY_FIELD_B), real_tokens),
    )
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


# --- report ------------------------------------------------------------------------------------


def report(results: list[dict[str, object]]) -> str:
    lines = []
    for res in results:
        engines = res["engines"]
        assert isinstance(engines, dict)
        kind = "synthetic, from the corpus vocabulary" if res["synthetic"] else "real corpus"
        lines.append(f"\n{res['scale']}: {res['n_skills']:,} skills ({kind})")
        lines.append(
            f"  {'engine':<16}{'build s':>9}{'B/skill':>9}{'p50 us':>10}{'p99 us':>10}"
            f"{'bm25s p50 / p50':>17}"
        )
        kernel = engines["bm25s"]["p50_us"]
        for name in ("paxis", "paxis-cached", "paxis-load", "bm25s", "bm25s-retrieve", "rank_bm25"):
            row = engines.get(name)
            if row is None:
                continue
            build = row.get("build_s", row.get("load_s"))
            build_cell = f"{build:>9.2f}" if build is not None else f"{'-':>9}"
            per_skill = row.get("rss_b_per_skill")
            size_cell = f"{per_skill:>9.0f}" if per_skill is not None else f"{'-':>9}"
            lines.append(
                f"  {name:<16}{build_cell}{size_cell}{row['p50_us']:>10.1f}{row['p99_us']:>10.1f}"
                f"{kernel / row['p50_us']:>16.1f}x"
            )
        load = engines["paxis-load"]
        lines.append(
            f"  paxis save {load['save_s']:.2f} s, load {load['load_s']:.2f} s (fresh process, "
            "memory-mapped; its B/skill is RSS after loading and querying)"
        )
        serving = engines["paxis-serving"]
        lines.append(
            f"  serving (1,000 ops): add+query {serving['add_then_query_us']:.0f} us, remove+query "
            f"{serving['remove_then_query_us']:.0f} us (an update and the query after it), "
            f"query p50 {serving['query_p50_us']:.0f} us / p99 {serving['query_p99_us']:.0f} us; "
            f"an exact bm25s update = a rebuild = {engines['bm25s']['build_s']:.2f} s"
        )
        if "render" in res:
            rendered = res["render"]
            assert isinstance(rendered, dict)
            cold, warm = rendered["render_cold_us"], rendered["render_cached_us"]
            lines.append(
                f"  render 3 chosen skills for the prompt: from disk {cold:.0f} us, from the "
                f"body cache {warm:.1f} us"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--scales", default="1k,10k,100k,1m", help="comma-separated: 1k,10k,...")
    parser.add_argument("--no-quality", action="store_true", help="skip the quality table")
    parser.add_argument("--no-rerank", action="store_true", help="skip the MiniLM rerank row")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--scale", help=argparse.SUPPRESS)  # internal: run one scale
    parser.add_argument("--load", type=Path, help=argparse.SUPPRESS)  # internal: load child
    parser.add_argument("--reps", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.load is not None:
        sys.stdout.write(json.dumps(load_child(args.load, args.reps, args.corpus)) + "\n")
        return 0
    if args.scale is not None:
        with tempfile.TemporaryDirectory() as tmp:
            result = run_scale(args.scale, args.corpus, Path(tmp))
        sys.stdout.write(json.dumps(result) + "\n")
        return 0

    results = []
    for scale in args.scales.split(","):
        if scale not in SCALES:
            parser.error(f"unknown scale {scale!r}; choose from {', '.join(SCALES)}")
        done = subprocess.run(
            [sys.executable, __file__, "--scale", scale, "--corpus", str(args.corpus)],
            check=True,
            stdout=subprocess.PIPE,
            text=True,
        )
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        if not args.json:
            sys.stdout.write(report(results[-1:]))
            sys.stdout.flush()
    summary: dict[str, object] = {"scales": results}
    if not args.no_quality:
        parsed, real_tokens = real_corpus(args.corpus)
        summary["quality"] = quality(parsed, real_tokens, args.corpus, rerank=not args.no_rerank)
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return 0
    if "quality" in summary:
        qual = summary["quality"]
        assert isinstance(qual, dict)
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
