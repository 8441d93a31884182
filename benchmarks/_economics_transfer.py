"""How far the MMLU held-out-subject APGR carries to other subjects: a check on economics.py.

The MMLU figure of ``economics.py`` is a 5-fold cross-validation over 47 subjects: each fold
holds out about 9 subjects and is scored by a model fitted on the other 38. Its mean hides how
much one set of ~10 unseen subjects can differ from another. From the same cross-fitted scores
(no refitting), this module measures, per router:

- ``apgr``: the figure of the table (mean over fold seeds);
- ``without_moral``: the same scores with moral_scenarios left out (8 % of the queries, 26 % of
  GPT-4's gain over Mixtral, and the subject the query-side signals place best);
- ``folds``: APGR of each held-out fold on its own (fold seeds x 5 folds; ~9 subjects each):
  minimum, median, maximum;
- ``ten``: APGR on random sets of 10 of the 47 subjects (2,000 draws, each on one fold seed's
  scores): 5th / 50th / 95th percentile, and the share of draws at or below 0.52 (about random
  routing's 0.50). Sets where GPT-4 is not at least 2 points better than Mixtral are skipped
  (PGR is undefined without a gap).

On 10 further MMLU subjects kept outside this repository (issue 17), the Router-loadable scorers
fitted on all 47 subjects scored APGR 0.497 (learned) and 0.502 (kNN); ``ten`` says how
surprising that is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from paxis_router.calibration.metrics import apgr, sweep

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from numpy.typing import NDArray

DRAWS = 2000
SUBSET = 10
MIN_GAP = 0.02
NEAR_RANDOM = 0.52


def _apgr(scores: NDArray[np.float64], w: NDArray[np.float64], s: NDArray[np.float64]) -> float:
    return apgr(sweep(scores.tolist(), w.tolist(), s.tolist()))


def transfer(
    runs: Sequence[Mapping[str, NDArray[np.float64]]],
    folds: Sequence[NDArray[np.int64]],
    groups: NDArray[np.str_],
    w: NDArray[np.float64],
    s: NDArray[np.float64],
    keys: Mapping[str, str],
    *,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:  # Any: JSON values
    """The figures of the module docstring for each ``keys`` entry (run key -> label)."""
    subjects = sorted(set(groups.tolist()))
    keep = groups != "moral_scenarios"
    rng = np.random.default_rng(seed)
    draws = [
        (int(rng.integers(len(runs))), rng.choice(len(subjects), SUBSET, replace=False))
        for _ in range(DRAWS)
    ]
    masks = [(r, np.isin(groups, [subjects[i] for i in picked])) for r, picked in draws]
    usable = [(r, m) for r, m in masks if float(s[m].mean() - w[m].mean()) >= MIN_GAP]
    out: dict[str, dict[str, Any]] = {}  # Any: JSON values
    for key, label in keys.items():
        per_fold = [
            _apgr(run[key][fold == f], w[fold == f], s[fold == f])
            for run, fold in zip(runs, folds, strict=True)
            for f in np.unique(fold).tolist()
            if float(s[fold == f].mean() - w[fold == f].mean()) >= MIN_GAP
        ]
        ten = np.array([_apgr(runs[r][key][m], w[m], s[m]) for r, m in usable])
        out[label] = {
            "apgr": float(np.mean([_apgr(run[key], w, s) for run in runs])),
            "without_moral": float(
                np.mean([_apgr(run[key][keep], w[keep], s[keep]) for run in runs])
            ),
            "folds": [float(min(per_fold)), float(np.median(per_fold)), float(max(per_fold))],
            "ten": [float(np.percentile(ten, q)) for q in (5, 50, 95)],
            "ten_near_random": float(np.mean(ten <= NEAR_RANDOM)),
            "ten_draws": len(ten),
        }
    return out


def transfer_markdown(data: Mapping[str, Mapping[str, Any]]) -> list[str]:  # Any: JSON values
    """A table of :func:`transfer`'s figures, with a heading, for economics.md."""
    f3: Callable[[float], str] = "{:.3f}".format
    lines = [
        "### How far the held-out-subject figure carries",
        "",
        "Same cross-fitted scores as the table above, cut differently (`_economics_transfer.py`): "
        "without moral_scenarios; each held-out fold of ~9 subjects on its own; random sets of "
        f"{SUBSET} of the 47 subjects. On 10 further MMLU subjects of the same RouteLLM release, "
        "kept outside this repository (issue 17), `paxis calibrate --scorer learned|knn` fitted "
        "on all 47 subjects got APGR 0.497 and 0.502 (random routing: 0.500; CPT(50%) 52-54 %).",
        "",
        f"| router | APGR (47 subjects, CV) | without moral_scenarios | one fold: min / median / "
        f"max | {SUBSET} random subjects: 5th / 50th / 95th pct | share of {SUBSET}-subject "
        f"sets at APGR ≤ {NEAR_RANDOM} |",
        "|---|---|---|---|---|---|",
    ]
    for label, d in data.items():
        lines.append(
            f"| {label} | {f3(d['apgr'])} | {f3(d['without_moral'])} | "
            f"{' / '.join(map(f3, d['folds']))} | {' / '.join(map(f3, d['ten']))} | "
            f"{d['ten_near_random']:.0%} |"
        )
    return lines
