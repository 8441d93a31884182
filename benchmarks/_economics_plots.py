"""Plots and the HTML report of benchmarks/economics.py (matplotlib, Agg backend)."""

from __future__ import annotations

import base64
import csv
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from economics import Bench

FRUGAL = Path(__file__).resolve().parent / "data" / "frugalgpt" / "summary"
_FRUGAL_FILES = ("AGNEWS_e8", "HEADLINES_e8", "SCIQ_e8", "OVERRULING_e5", "COQA_e2")


def frugalgpt_curves(folder: Path = FRUGAL) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """FrugalGPT's published 2024 test points per dataset: {dataset: {"frugalgpt": [(usd_per_1k,
    acc)], "models": [...]}} from summary_<DATASET>_full_2024.csv (Test_cost is $ per query)."""
    out: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for stem in _FRUGAL_FILES:
        path = folder / f"summary_{stem}_full_2024.csv"
        if not path.is_file():
            continue
        cascade: list[tuple[float, float]] = []
        models: list[tuple[float, float]] = []
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                point = (float(row["Test_cost"]) * 1000, float(row["Test_acc"]))
                (cascade if row["Method"] == "FrugalGPT" else models).append(point)
        out[stem.split("_")[0]] = {"frugalgpt": sorted(cascade), "models": models}
    return out


def _published_usd(bench: Bench, share: float) -> float:
    """A pre-router at strong-call share ``share`` (RouteLLM's routers are pre-routers)."""
    weak, strong = bench.only_usd_per_1k()
    return (1 - share) * weak + share * strong


def write_plots(
    benches: Sequence[Bench], data: dict[str, Any], out: Path, table_md: str
) -> None:  # Any: JSON
    """pgr.png, cost.png and economics.html into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = ["tab:blue", "tab:orange", "tab:gray", "tab:green", "tab:purple", "tab:brown"]
    colors += ["tab:pink", "tab:olive", "tab:cyan", "tab:red"]
    fig, axes = plt.subplots(1, len(benches), figsize=(5 * len(benches), 4.2), squeeze=False)
    for ax, bench in zip(axes[0], benches, strict=True):
        for i, method in enumerate(bench.methods):
            curve = method.curves[0]
            style = "--" if method.name.startswith(("random", "oracle")) else "-"
            ax.plot(curve.shares, curve.pgr, style, color=colors[i % 10], label=method.name, lw=1.4)
        pub = data[bench.name]["published"]
        xs = [pub["cpt50"], pub["cpt80"]]
        ys = [0.5, 0.8]
        pts = [(x, y) for x, y in zip(xs, ys, strict=True) if x is not None]
        ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            "r*",
            ms=12,
            label=f"RouteLLM best, published (APGR {pub['apgr']:.3f})",
        )
        ax.axhline(1.0, color="k", lw=0.5)
        ax.set_title(f"{bench.name}: PGR vs strong-call share")
        ax.set_xlabel("share of queries sent to GPT-4")
        ax.set_ylabel("performance gap recovered")
        ax.set_xlim(0, 1)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "pgr.png", dpi=80, bbox_inches="tight")
    plt.close(fig)

    frugal = frugalgpt_curves()
    fig, axes = plt.subplots(
        1, len(benches) + 1, figsize=(5 * (len(benches) + 1), 4.2), squeeze=False
    )
    for ax, bench in zip(axes[0], benches, strict=False):
        for i, method in enumerate(bench.methods):
            if method.name.startswith("oracle"):
                continue
            curve = method.curves[0]
            ax.plot(
                method.usd_curve, curve.quality, color=colors[i % 10], label=method.name, lw=1.4
            )
        weak, strong = bench.only_usd_per_1k()
        ax.plot([weak], [bench.weak_q.mean()], "ks", label="Mixtral alone")
        ax.plot([strong], [bench.strong_q.mean()], "k^", label="GPT-4 alone")
        pub = data[bench.name]["published"]
        gap = bench.strong_q.mean() - bench.weak_q.mean()
        for share, pgr in ((pub["cpt50"], 0.5), (pub["cpt80"], 0.8)):
            if share is not None:
                ax.plot(
                    [_published_usd(bench, share)],
                    [bench.weak_q.mean() + pgr * gap],
                    "r*",
                    ms=12,
                    label="RouteLLM best, published CPT points" if pgr == 0.5 else None,
                )
        ax.set_xscale("log")
        ax.set_title(f"{bench.name}: quality vs $ per 1,000 queries")
        ax.set_xlabel("$ per 1,000 queries (log)")
        ax.set_ylabel("accuracy" if bench.name != "mt_bench" else "mean judge score")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.28))
        ax.grid(alpha=0.3)
    ax = axes[0][-1]
    for i, (name, curves) in enumerate(sorted(frugal.items())):
        pts = curves["frugalgpt"]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", color=colors[i % 5], label=name)
        models = curves["models"]
        ax.plot([p[0] for p in models], [p[1] for p in models], ".", color=colors[i % 5], ms=4)
    ax.set_xscale("log")
    ax.set_title("FrugalGPT published curves (their datasets)")
    ax.set_xlabel("$ per 1,000 queries (log)")
    ax.set_ylabel("accuracy (dots: single models)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "cost.png", dpi=80, bbox_inches="tight")
    plt.close(fig)

    images = "".join(
        f'<p><img alt="{name}" src="data:image/png;base64,'
        f'{base64.b64encode((out / name).read_bytes()).decode()}"></p>'
        for name in ("pgr.png", "cost.png")
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>paxis routing economics</title>"
        "</head><body><h1>paxis routing economics</h1>"
        f"<pre>{html.escape(table_md)}</pre>{images}</body></html>\n"
    )
    (out / "economics.html").write_text(page, encoding="utf-8")
