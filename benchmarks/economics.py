"""Routing economics on real published outcomes: RouteLLM's GSM8K, MMLU and MT-Bench files.

RouteLLM's metrics as the paper (arXiv 2406.18665) defines them — PGR against strong-call share
on a 1 % grid, APGR (trapezoid area), CPT(50 %) and CPT(80 %) — measured on folds never used for
fitting, beside the published best router (with data augmentation) and random routing, and in
dollars: Mixtral priced as a local GPU worker (policies/demo.yaml: 2 x H100 at $2.49/GPU-hour,
3,000 tokens/s), gpt-4-1106-preview from litellm's bundled price map; tokens counted offline
(cl100k_base). A cascade pays the worker's call even when it escalates; a pre-router does not.

- GSM8K: a cascade (it sees the worker's answer): the learned scorer of
  paxis_router.calibration.thresholds
  (answer features, arithmetic-verifier verdicts, hashed TF-IDF), 5-fold cross-fitted, mean over
  seeds. Also the arithmetic verifier alone (option (a): one score, one threshold).
- MMLU: no answers in the data, so a pre-router on query signals only, fitted on other
  subjects: whole subjects are held out (5 folds over the 47 subjects; 5 fold seeds, so no
  query is scored by a model that saw its subject). The score is the plain mean of two
  estimates of P(Mixtral right) - P(GPT-4 right): (1) two logistic heads (C = 0.3) on TF-IDF
  + the offline MiniLM embedding of the question + the MiniLM embedding of the subject name;
  (2) the similarity-weighted mean of that difference over the 50 most similar training
  questions (MiniLM cosine, weights exp(10 cosine)), RouteLLM's similarity-weighted router in
  its simplest form. Both are benchmark-only (sklearn TF-IDF, MiniLM at run time, the
  training embeddings); the library's JSON scorer is measured beside them, and so is what the
  Router can load: ``paxis calibrate --scorer mix`` (the JSON scorer averaged with the
  library's MiniLM kNN scorer, paxis-knn-scorer/2), cross-fitted by the library on the same
  subject folds. Hyper-parameters are fixed a priori; economics_mmlu_tried.md lists every
  variant tried and a nested cross-validation check of the choice. The first run embeds the
  10,988 questions (about 13 CPU-minutes here); later runs read the cache.
- MT-Bench: a cascade on the worker's first-turn answer (the learned scorer, and MiniLM of
  question and answer); quality = mean GPT-4 judge score; 5-fold cross-fitted, mean over seeds.

Contaminated prompts are dropped as the paper does. Run:

    .venv/bin/python benchmarks/economics.py            # table + plots into benchmarks/results/
    .venv/bin/python benchmarks/economics.py --json     # the figures as JSON

``--json`` keys: ``{benchmark: {n, weak_quality, strong_quality, weak_usd_per_1k,
strong_usd_per_1k, methods: {method: {apgr, cpt50, cpt80, apgr_sd, usd_per_1k_at_cpt50,
usd_per_1k_at_cpt80}}, published: {apgr, cpt50, cpt80}, apgr_ratio_vs_published, note}}`` (shares
and APGR are fractions in 0..1; a CPT is null when never reached).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from paxis_router.calibration.datasets import Example, load_examples, quality  # noqa: E402
from paxis_router.calibration.metrics import Curve, apgr, cpt, sweep  # noqa: E402
from paxis_router.calibration.thresholds import crossfit_scores, example_costs, worker_verdicts  # noqa: E402
from paxis_router.config.calibrated import weak_price  # noqa: E402
from paxis_router.pricing import litellm_price  # noqa: E402
from paxis_router.verifiers.arithmetic import ArithmeticVerifier  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"
# RouteLLM (arXiv 2406.18665 v4), best router with data augmentation.
PUBLISHED: dict[str, dict[str, float | None]] = {
    "gsm8k": {"apgr": 0.622, "cpt50": 0.3364, "cpt80": 0.6326},
    "mmlu": {"apgr": 0.603, "cpt50": 0.3540, "cpt80": 0.7031},
    "mt_bench": {"apgr": 0.802, "cpt50": 0.1340, "cpt80": None},
}
TARGETS: dict[str, dict[str, float | None]] = {
    "gsm8k": {"apgr": 0.80, "cpt50": 0.15, "cpt80": 0.35},
    "mmlu": {"apgr": 0.6031, "cpt50": 0.3539, "cpt80": None},  # beat the published best
    "mt_bench": {"apgr": None, "cpt50": None, "cpt80": None},
}

logger = logging.getLogger("economics")


@dataclass
class Method:
    """One router's results: per-seed scores and the metrics over seeds."""

    name: str
    curves: list[Curve] = field(default_factory=list)
    usd50: list[float | None] = field(default_factory=list)
    usd80: list[float | None] = field(default_factory=list)
    usd_curve: list[float] = field(default_factory=list)

    def metrics(self) -> dict[str, float | None]:
        apgrs = [apgr(c) for c in self.curves]
        c50 = [cpt(c, 0.5) for c in self.curves]
        c80 = [cpt(c, 0.8) for c in self.curves]
        return {
            "apgr": float(np.mean(apgrs)),
            "apgr_sd": float(np.std(apgrs)),
            "cpt50": _mean_or_none(c50),
            "cpt80": _mean_or_none(c80),
            "usd_per_1k_at_cpt50": _mean_or_none(self.usd50),
            "usd_per_1k_at_cpt80": _mean_or_none(self.usd80),
        }


@dataclass
class Bench:
    """One benchmark's data and methods."""

    name: str
    examples: list[Example]
    cascade: bool
    weak_q: NDArray[np.float64]
    strong_q: NDArray[np.float64]
    weak_cost: NDArray[np.float64]
    strong_cost: NDArray[np.float64]
    methods: list[Method] = field(default_factory=list)
    note: str = ""
    transfer: dict[str, dict[str, Any]] = field(default_factory=dict)  # Any: JSON values

    def add(self, name: str, scores_per_seed: Sequence[NDArray[np.float64]]) -> Method:
        method = Method(name)
        for scores in scores_per_seed:
            curve = sweep(scores, self.weak_q, self.strong_q)
            usd = usd_curve(scores, self.weak_cost, self.strong_cost, cascade=self.cascade)
            method.curves.append(curve)
            method.usd_curve = usd if not method.usd_curve else method.usd_curve
            for target, out in ((0.5, method.usd50), (0.8, method.usd80)):
                share = cpt(curve, target)
                out.append(None if share is None else usd[round(share * 100)])
        self.methods.append(method)
        return method

    def only_usd_per_1k(self) -> tuple[float, float]:
        return float(self.weak_cost.mean() * 1000), float(self.strong_cost.mean() * 1000)


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return float(np.mean([v for v in values if v is not None]))


def usd_curve(
    scores: NDArray[np.float64],
    weak_cost: NDArray[np.float64],
    strong_cost: NDArray[np.float64],
    *,
    cascade: bool,
    steps: int = 100,
) -> list[float]:
    """$ per 1,000 queries at each strong-call share (lowest scores escalated first)."""
    n = len(scores)
    order = np.argsort(scores, kind="stable")
    strong_cum = np.r_[0.0, np.cumsum(strong_cost[order])]
    weak_cum = np.r_[0.0, np.cumsum(weak_cost[order])]
    out = []
    for i in range(steps + 1):
        k = round(i / steps * n)
        total = strong_cum[k] + (weak_cum[-1] if cascade else weak_cum[-1] - weak_cum[k])
        out.append(float(total / n * 1000))
    return out


def load_bench(name: str, paths: Sequence[Path], *, cascade: bool) -> Bench:
    examples = load_examples(paths)
    w = np.array([quality(e.outcomes[WEAK]) for e in examples])
    s = np.array([quality(e.outcomes[STRONG]) for e in examples])
    wc = example_costs(examples, WEAK, weak_price())
    sc = example_costs(examples, STRONG, litellm_price(STRONG))
    return Bench(
        name,
        examples,
        cascade,
        w,
        s,
        np.array([float(c or 0) for c in wc]),
        np.array([float(c or 0) for c in sc]),
    )


# --- GSM8K ------------------------------------------------------------------------------------


def run_gsm8k(data: Path, seeds: int) -> Bench:
    bench = load_bench("gsm8k", [data / "gsm8k_responses.csv"], cascade=True)
    ex = bench.examples
    verifier = ArithmeticVerifier()
    learned = [
        crossfit_scores(ex, weak=WEAK, strong=STRONG, folds=5, seed=seed, verifiers=[verifier])
        for seed in range(seeds)
    ]
    bench.add("paxis cascade: learned scorer (cross-fitted)", learned)
    verdicts = worker_verdicts(ex, WEAK, [verifier])
    verifier_only = np.array([2.0 * v[0].passed + (v[0].score or 0.0) for v in verdicts])
    bench.add("arithmetic verifier alone (one threshold)", [verifier_only])
    bench.add("random", [np.zeros(len(ex))])
    bench.add("oracle (perfect router)", [bench.weak_q - bench.strong_q])
    return bench


# --- MMLU ---------------------------------------------------------------------------------------

MMLU_NEIGHBOURS = 50  # fixed a priori (not tuned on the evaluation folds)
MMLU_TEMPERATURE = 10.0  # softmax weight exp(10 * cosine): a 0.1 cosine gap is a factor e


def _gain_model(
    x_train: Any, x_test: Any, w: NDArray[np.float64], s: NDArray[np.float64], c: float
) -> NDArray[np.float64]:  # Any: dense or scipy sparse matrices (vendor types)
    """3-class logistic regression of the gain: P(only the worker right) - P(only GPT-4 right)."""
    from sklearn.linear_model import LogisticRegression

    gain = (s - w).astype(int)  # -1, 0, +1
    model = LogisticRegression(C=c, max_iter=3000).fit(x_train, gain)
    p = model.predict_proba(x_test)
    classes = list(model.classes_)
    return np.asarray(p[:, classes.index(-1)] - p[:, classes.index(1)], dtype=float)


def _two_heads(
    x_train: Any, x_test: Any, w: NDArray[np.float64], s: NDArray[np.float64], c: float
) -> NDArray[np.float64]:  # Any: dense or scipy sparse matrices (vendor types)
    """P(worker right) - P(GPT-4 right), one logistic head each (the library scorer's form)."""
    from sklearn.linear_model import LogisticRegression

    heads = [LogisticRegression(C=c, max_iter=3000).fit(x_train, y) for y in (w, s)]
    p_weak, p_strong = (h.predict_proba(x_test)[:, 1] for h in heads)
    return np.asarray(p_weak - p_strong, dtype=float)


def neighbour_gain(
    emb: NDArray[np.float32],
    groups: NDArray[np.str_],
    w: NDArray[np.float64],
    s: NDArray[np.float64],
    query: NDArray[np.int64],
    pool: NDArray[np.int64],
    *,
    k: int = MMLU_NEIGHBOURS,
    temperature: float = MMLU_TEMPERATURE,
) -> NDArray[np.float64]:
    """Similarity-weighted mean of (worker right - GPT-4 right) over each query's ``k`` nearest
    pool questions (cosine of L2-normalised embeddings; weights softmax(temperature * cosine)).

    RouteLLM's similarity-weighted router in its simplest form; the pool holds only other
    subjects' questions when subjects are held out. Pool rows of the query's own group are
    skipped too, so it reads the same on training rows.
    """
    out = np.empty(len(query))
    for lo in range(0, len(query), 1024):
        rows = query[lo : lo + 1024]
        sims = emb[rows] @ emb[pool].T
        sims[groups[rows][:, None] == groups[pool][None, :]] = -2.0
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        weight = np.exp(temperature * np.take_along_axis(sims, top, axis=1))
        diff = (w - s)[pool][top]
        out[lo : lo + len(rows)] = (weight * diff).sum(axis=1) / weight.sum(axis=1)
    return out


def _group_folds(groups: Sequence[str], folds: int, seed: int) -> NDArray[np.int64]:
    names = sorted(set(groups))
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    fold_of = {g: i % folds for i, g in enumerate(order)}
    return np.array([fold_of[g] for g in groups])


def run_mmlu(data: Path, seeds: int) -> Bench:
    from _economics_embed import embed
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer

    from paxis_router.calibration.fit import fit, prepare, score_rows

    bench = load_bench("mmlu", [data / "mmlu" / "responses"], cascade=False)
    ex = bench.examples
    prompts = [e.prompt for e in ex]
    groups = np.array([e.group for e in ex])
    t0 = time.perf_counter()
    q_emb = embed(prompts, name="mmlu-questions")
    subjects = sorted(set(groups.tolist()))
    s_emb = embed([s.replace("_", " ") for s in subjects], name="mmlu-subjects")
    subject_of = {s: s_emb[i] for i, s in enumerate(subjects)}
    g_emb = np.stack([subject_of[g] for g in groups])
    logger.info("MMLU embeddings in %.1f s", time.perf_counter() - t0)
    w, s = bench.weak_q, bench.strong_q
    design = prepare(prompts, [""] * len(ex), text_fields=("prompt",))

    def held_out_subjects(seed: int) -> dict[str, NDArray[np.float64]]:
        fold = folds[seed]
        out = {name: np.zeros(len(ex)) for name in ("two", "knn", "tfidf", "lib")}
        for k in range(5):
            tr, te = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            vec = TfidfVectorizer(sublinear_tf=True, min_df=3)
            t_tr = vec.fit_transform([prompts[i] for i in tr])
            t_te = vec.transform([prompts[i] for i in te])
            a = hstack([t_tr, csr_matrix(q_emb[tr]), csr_matrix(g_emb[tr])]).tocsr()
            b = hstack([t_te, csr_matrix(q_emb[te]), csr_matrix(g_emb[te])]).tocsr()
            out["two"][te] = _two_heads(a, b, w[tr], s[tr], 0.3)
            out["knn"][te] = neighbour_gain(q_emb, groups, w, s, te, tr)
            out["tfidf"][te] = _gain_model(t_tr, t_te, w[tr], s[tr], 1.0)
            out["lib"][te] = score_rows(fit(design, tr, w, s), design, te)
        # Both parts estimate P(worker right) - P(GPT-4 right): their plain mean, no weights.
        out["mean"] = (out["two"] + out["knn"]) / 2.0
        # What a user can deploy: the library's mix scorer (learned JSON scorer + MiniLM kNN,
        # paxis-knn-scorer/2), cross-fitted by the library on the same subject folds.
        out["deploy"] = crossfit_scores(
            ex,
            weak=WEAK,
            strong=STRONG,
            folds=5,
            groups=groups.tolist(),
            seed=seed,
            scorer="mix",
            encode=lambda texts: embed(texts, name="mmlu-questions"),
        )
        return out

    folds = [_group_folds(groups.tolist(), 5, seed) for seed in range(seeds)]
    runs = [held_out_subjects(seed) for seed in range(seeds)]
    for key, name in (
        ("mean", "paxis pre-router, benchmark-only: mean of the next two (47-subject CV)"),
        ("two", "two-head logistic on TF-IDF + MiniLM + subject (benchmark-only)"),
        ("knn", "MiniLM kNN over other subjects' questions (benchmark-only)"),
        ("deploy", "paxis calibrate --scorer mix (Router-loadable)"),
        ("lib", "library scorer of paxis calibrate (hashed TF-IDF, JSON)"),
        ("tfidf", "TF-IDF logistic regression"),
    ):
        bench.add(name, [r[key] for r in runs])
    bench.add("random", [np.zeros(len(ex))])
    bench.add("oracle (perfect router)", [w - s])
    bench.note = _mmlu_note(bench, groups)
    from _economics_transfer import transfer

    labels = {
        "mean": "benchmark-only mean (first row)",
        "deploy": "paxis calibrate --scorer mix",
        "knn": "MiniLM kNN (= --scorer knn)",
        "lib": "learned JSON scorer (= --scorer learned)",
    }
    bench.transfer = transfer(runs, folds, groups, w, s, labels)
    return bench


def _mmlu_note(bench: Bench, groups: NDArray[np.str_]) -> str:
    """Where the MMLU figure comes from and what limits it, computed from the data."""
    w, s = bench.weak_q, bench.strong_q
    total_gain = float((s - w).sum())
    moral = groups == "moral_scenarios"
    maths = groups == "high_school_mathematics"
    per_seed = ", ".join(f"{apgr(c):.3f}" for c in bench.methods[0].curves)
    deploy = next(m for m in bench.methods if m.name.startswith("paxis calibrate --scorer mix"))
    deploy_seeds = ", ".join(f"{apgr(c):.3f}" for c in deploy.curves)
    return (
        "Conditions: the 47 MMLU subjects in this repository, 5-fold cross-validation over whole "
        "subjects (each fold's ~9 subjects are never seen in fitting), mean over 5 fold seeds. "
        "Why this is hard, and what limits the figure: two subjects weigh most. "
        f"moral_scenarios is {moral.mean():.0%} of the queries but "
        f"{(s - w)[moral].sum() / total_gain:.0%} of GPT-4's total gain (Mixtral "
        f"{w[moral].mean():.2f}, GPT-4 {s[moral].mean():.2f}); on high_school_mathematics "
        f"GPT-4's recorded answers are right {s[maths].mean():.0%} of the time (Mixtral "
        f"{w[maths].mean():.0%}), so escalating it loses. A router that never saw a subject places "
        "it from other subjects' questions only, so APGR moves with the fold split (ours per "
        f"fold seed: {per_seed}). The first row is benchmark-only: it needs MiniLM at run time "
        "and, for its kNN half, the training questions' embeddings. What a user can deploy is "
        "the 'paxis calibrate --scorer mix' row: the library's own code, cross-fitted on the "
        "same subject folds, averaging its JSON learned scorer (the 'library scorer' row) with "
        "its MiniLM kNN scorer (paxis-knn-scorer/2: k = 50, temperature 10, the training "
        "questions' embeddings in an .npz beside the policy, about 7.8 MB for all of MMLU); "
        f"the Router loads it from the policy file (per fold seed: {deploy_seeds}). "
        "Hyper-parameters are fixed a priori (C = 0.3 as before, k = 50 neighbours, "
        "temperature 10). This combination was chosen after trying others; choosing among "
        "them by nested cross-validation inside the training subjects beats the published best "
        "by a smaller margin: every variant and that check are in `economics_mmlu_tried.md`. "
        "Every learned row here is fitted with the query's subject held out. "
        "**It does not transfer as the mean suggests**: on 10 further MMLU subjects of the same "
        "RouteLLM release (kept outside this repository, issue 17), the Router-loadable scorers "
        "fitted on all 47 subjects scored APGR 0.497 (learned) and 0.502 (kNN), random "
        "routing's level. The table below puts that in context: part of the cross-validated "
        "gain rests on moral_scenarios, single folds of ~9 unseen subjects vary widely, yet a "
        "set of 10 subjects at or below 0.52 is uncommon within the 47 for the kNN-based "
        "routers, so the outside result sits at or below the low end of what this "
        "cross-validation predicts (the mix was also chosen on these folds). Read the figure as "
        "specific to these 47 subjects, not as a property of the router."
    )


# --- MT-Bench -----------------------------------------------------------------------------------


def run_mt_bench(data: Path, seeds: int) -> Bench:
    from _economics_embed import embed

    bench = load_bench("mt_bench", [data / "mt_bench" / "judgements.jsonl"], cascade=True)
    ex = bench.examples
    learned = [
        crossfit_scores(ex, weak=WEAK, strong=STRONG, folds=5, seed=seed) for seed in range(seeds)
    ]
    bench.add("paxis cascade: learned scorer (cross-fitted)", learned)
    q = embed([e.prompt for e in ex], name="mtbench-questions")
    a = embed([e.outcomes[WEAK].response for e in ex], name="mtbench-answers")
    x = np.hstack([q, a])
    lo = min(bench.weak_q.min(), bench.strong_q.min())
    span = max(bench.weak_q.max(), bench.strong_q.max()) - lo
    gap = (bench.weak_q - bench.strong_q) / span  # the gain of keeping the worker, scaled
    runs = []
    from sklearn.linear_model import Ridge

    for seed in range(seeds):
        fold = np.random.default_rng(seed).permutation(len(ex)) % 5
        out = np.zeros(len(ex))
        for k in range(5):
            tr, te = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            out[te] = Ridge(alpha=3.0).fit(x[tr], gap[tr]).predict(x[te])
        runs.append(out)
    bench.add("paxis cascade: MiniLM(question, answer) ridge (cross-fitted)", runs)
    bench.add("random", [np.zeros(len(ex))])
    bench.add("oracle (perfect router)", [bench.weak_q - bench.strong_q])
    return bench


# --- reporting ----------------------------------------------------------------------------------


def summary(benches: Sequence[Bench]) -> dict[str, Any]:  # Any: JSON values
    out: dict[str, Any] = {}  # Any: JSON values
    for b in benches:
        weak_usd, strong_usd = b.only_usd_per_1k()
        methods = {m.name: m.metrics() for m in b.methods}
        ours = b.methods[0].metrics()
        published = PUBLISHED[b.name]
        out[b.name] = {
            "n": len(b.examples),
            "router": "cascade" if b.cascade else "pre-router",
            "weak_quality": float(b.weak_q.mean()),
            "strong_quality": float(b.strong_q.mean()),
            "weak_usd_per_1k": weak_usd,
            "strong_usd_per_1k": strong_usd,
            "methods": methods,
            "published": published,
            "targets": TARGETS[b.name],
            "apgr_ratio_vs_published": (ours["apgr"] or 0.0) / (published["apgr"] or 1.0),
            "note": b.note,
        }
        if b.transfer:
            out[b.name]["transfer"] = b.transfer
    return out


def _pct(value: float | None) -> str:
    return "never" if value is None else f"{100 * value:.1f} %"


def _usd(value: float | None) -> str:
    return "–" if value is None else f"${value:.2f}"


def _targets_line(b: dict[str, Any]) -> str:  # Any: JSON values
    ours = next(iter(b["methods"].values()))
    parts = []
    for key, label, better in (
        ("apgr", "APGR", "≥"),
        ("cpt50", "CPT(50%)", "≤"),
        ("cpt80", "CPT(80%)", "≤"),
    ):
        target = b["targets"].get(key)
        if target is None:
            continue
        value = ours[key]
        met = value is not None and (value >= target if better == "≥" else value <= target)
        shown = f"{value:.3f}" if key == "apgr" else _pct(value)
        goal = f"{target:.3f}" if key == "apgr" else _pct(target)
        parts.append(f"{label} {better} {goal}: {shown}, {'met' if met else 'NOT met'}")
    return "Targets of issue 5: " + ("; ".join(parts) if parts else "none set") + "."


def markdown(  # Any: JSON values
    data: dict[str, Any], seeds: int, elapsed_s: float, mmlu_seeds: int = 5
) -> str:
    lines = [
        "# Routing economics on RouteLLM's published outcomes",
        "",
        "Written by `benchmarks/economics.py` (see its docstring for the method). Metrics as "
        "RouteLLM defines them (arXiv 2406.18665): PGR against strong-call share on a 1 % grid, "
        "APGR = trapezoid area, CPT(x) = the smallest strong-call share with PGR ≥ x. Every "
        f"score comes from a model that never saw that query's label (mean over {seeds} "
        f"fold seeds, {mmlu_seeds} for MMLU; ± is the SD of APGR over seeds). "
        "Dollars: Mixtral-8x7B as a local GPU worker (2 × H100 at $2.49/GPU-hour, "
        "3,000 tokens/s = $0.46 per million tokens, as in policies/demo.yaml), "
        "gpt-4-1106-preview at litellm's $10 / $30 per million input / output tokens; "
        "tokens counted offline with cl100k_base. A cascade pays the worker's call on every "
        "query; a pre-router pays one model per query.",
        "",
    ]
    for name, b in data.items():
        pub = b["published"]
        lines += [
            f"## {name} ({b['router']}, n = {b['n']})",
            "",
            f"Mixtral quality {b['weak_quality']:.4f} (${b['weak_usd_per_1k']:.2f} per 1,000 "
            f"queries alone), GPT-4 quality {b['strong_quality']:.4f} "
            f"(${b['strong_usd_per_1k']:.2f} per 1,000 alone).",
            "",
            "| router | APGR | CPT(50%) | CPT(80%) | $/1k at CPT(50%) | $/1k at CPT(80%) |",
            "|---|---|---|---|---|---|",
        ]
        for method, m in b["methods"].items():
            sd = f" ± {m['apgr_sd']:.3f}" if m["apgr_sd"] > 0 else ""
            lines.append(
                f"| {method} | {m['apgr']:.3f}{sd} | {_pct(m['cpt50'])} | {_pct(m['cpt80'])} "
                f"| {_usd(m['usd_per_1k_at_cpt50'])} | {_usd(m['usd_per_1k_at_cpt80'])} |"
            )
        lines.append(
            f"| RouteLLM published best (augmented) | {pub['apgr']:.3f} | {_pct(pub['cpt50'])} "
            f"| {_pct(pub['cpt80'])} | | |"
        )
        lines += ["", f"APGR ratio, ours / published best: {b['apgr_ratio_vs_published']:.2f}."]
        lines += [_targets_line(b), ""]
        if b.get("note"):
            lines += [b["note"], ""]
        if b.get("transfer"):
            from _economics_transfer import transfer_markdown

            lines += [*transfer_markdown(b["transfer"]), ""]
    lines += [f"Run time: {elapsed_s:.0f} s on this machine.", ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data" / "routellm")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--seeds", type=int, default=3, help="fold seeds to average over")
    parser.add_argument(
        "--mmlu-seeds", type=int, default=5, help="subject-fold seeds for MMLU (default 5)"
    )
    parser.add_argument("--only", choices=("gsm8k", "mmlu", "mt_bench"), default=None)
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    t0 = time.perf_counter()
    runners = {"gsm8k": run_gsm8k, "mmlu": run_mmlu, "mt_bench": run_mt_bench}
    benches = []
    for name, runner in runners.items():
        if args.only and name != args.only:
            continue
        t = time.perf_counter()
        benches.append(runner(args.data, args.mmlu_seeds if name == "mmlu" else args.seeds))
        logger.info("%s done in %.1f s", name, time.perf_counter() - t)
    data = summary(benches)
    elapsed = time.perf_counter() - t0
    if not args.only:
        args.out.mkdir(parents=True, exist_ok=True)
        text = markdown(data, args.seeds, elapsed, args.mmlu_seeds)
        (args.out / "economics.md").write_text(text, encoding="utf-8")
        (args.out / "economics.json").write_text(json.dumps(data, indent=1) + "\n", "utf-8")
        if not args.no_plots:
            from _economics_plots import write_plots

            write_plots(benches, data, args.out, text)
    if args.json:
        sys.stdout.write(json.dumps(data, indent=1) + "\n")
    else:
        sys.stdout.write(markdown(data, args.seeds, elapsed, args.mmlu_seeds) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
