"""Plots drawn from stored benchmark results (never from a live run), one PNG beside each JSON."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from index_builder.bench.ann import frontier

matplotlib.use("Agg")  # files only: no screen needed
import matplotlib.pyplot as plt  # noqa: E402


def plot_result(result_path: Path) -> Path | None:
    result = json.loads(Path(result_path).read_text())
    draw = {"ann": _ann, "scale": _scale, "e2e": _e2e, "exposure": _exposure}.get(result["benchmark"])
    if draw is None:
        return None
    out = Path(result_path).with_suffix(".png")
    figure = draw(result)
    figure.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(figure)
    return out


def _ann(result: dict[str, Any]) -> Figure:
    figure, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for axis, queries in zip(axes, ("strangers", "in_gallery"), strict=True):
        for factory in dict.fromkeys(run["factory"] for run in result["runs"]):
            runs = [run for run in result["runs"] if run["factory"] == factory]
            x = [run[queries]["latency_ms"]["p50"] for run in runs]
            y = [run[queries]["recall@10"] for run in runs]
            axis.plot(x, y, marker="o", label=factory)
        best = frontier(result["runs"], queries)
        axis.plot([run[queries]["latency_ms"]["p50"] for run in best], [run[queries]["recall@10"] for run in best],
                  color="black", linestyle="--", linewidth=1, label="Pareto frontier")
        axis.axhline(0.98, color="grey", linestyle=":", linewidth=1)
        axis.set_xscale("log")
        axis.set_xlabel("single-query latency p50 (ms, one thread)")
        axis.set_title(f"{queries.replace('_', ' ')} ({result['queries'][queries]} queries)")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("recall@10 against exact search")
    axes[1].legend(loc="lower right")
    figure.suptitle(f"{result['base_vectors']:,} gallery vectors, {result['dim']}-d: recall vs latency")
    return figure


def _scale(result: dict[str, Any]) -> Figure:
    rows = result["sizes"]
    n = [row["vectors"] for row in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    left.plot(n, [row["latency_ms"]["p50"] for row in rows], marker="o", label="chosen index p50")
    left.plot(n, [row["latency_ms"]["p99"] for row in rows], marker="o", label="chosen index p99")
    left.plot(n, [row["exact_latency_ms"]["p50"] for row in rows], marker="s", linestyle="--", label="exact p50")
    left.plot(n, [row["exact_latency_ms"]["p99"] for row in rows], marker="s", linestyle="--", label="exact p99")
    left.axhline(result["budget_ms"], color="grey", linestyle=":", label=f"budget {result['budget_ms']:g} ms")
    for row in rows:
        left.annotate(f"{row['factory']}\nrecall@5 {row['recall@5_strangers']:.3f}",
                      (row["vectors"], row["latency_ms"]["p99"]), fontsize=7, textcoords="offset points",
                      xytext=(4, 4))
    left.set(xscale="log", yscale="log", xlabel="gallery vectors", ylabel="single-query latency (ms)",
             title="search latency at the chosen operating point")
    left.legend()
    right.plot(n, [row["build_seconds"] for row in rows], marker="o", label="build (s)")
    right.plot(n, [row["index_bytes"] / 2**20 for row in rows], marker="s", label="index size (MiB)")
    right.plot(n, [row["peak_rss_mb"] for row in rows], marker="^", label="peak RSS (MiB)")
    right.plot(n, [row["open"]["open_seconds"] for row in rows], marker="v", label="gallery open (s)")
    right.set(xscale="log", yscale="log", xlabel="gallery vectors", title="build time, memory, open time")
    right.legend()
    for axis in (left, right):
        axis.grid(True, which="both", alpha=0.3)
    figure.suptitle(f"synthetic face-like {result['dim']}-d galleries fitted to {result['fit_vectors']:,} real faces")
    return figure


def _e2e(result: dict[str, Any]) -> Figure:
    stages = ["decode", "detect", "embed", "search", "total"]
    figure, axis = plt.subplots(figsize=(8, 4.5))
    p50 = [result["ms"][stage]["p50"] for stage in stages]
    p95 = [result["ms"][stage]["p95"] for stage in stages]
    positions = range(len(stages))
    axis.bar([p - 0.2 for p in positions], p50, width=0.4, label="p50")
    axis.bar([p + 0.2 for p in positions], p95, width=0.4, label="p95")
    axis.set_xticks(list(positions), stages)
    axis.set_ylabel("ms")
    axis.set_title(f"query path on {result['photo_count']} photos x repeats, "
                   f"gallery of {result['gallery_faces']:,} faces")
    axis.legend()
    axis.grid(True, axis="y", alpha=0.3)
    return figure


def _exposure(result: dict[str, Any]) -> Figure:
    figure, axis = plt.subplots(figsize=(8, 6))
    per_person = all("lorenz_per_person" in policy for policy in result["policies"].values())  # older results: faces
    for name, policy in result["policies"].items():
        curve = policy["lorenz_per_person" if per_person else "lorenz"]
        label = (f"{name}: Gini {policy['gini_per_person']:.3f} (faces {policy['gini']:.3f}), never shown "
                 f"{policy['share_never_shown_per_person']:.1%}" if per_person else
                 f"{name}: Gini {policy['gini']:.3f}, never shown {policy['share_never_shown']:.1%}")
        axis.plot([i / (len(curve) - 1) for i in range(len(curve))], curve, label=label)
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="equal attention")
    axis.set_xlabel(f"gallery {'people' if per_person else 'faces'}, least shown first")
    axis.set_ylabel("share of all showings")
    people = f" of {result['people']:,} people" if "people" in result else ""
    axis.set_title(f"exposure: top {result['k']} for {result['visitors']['strangers']:,} visitors, "
                   f"{result['vectors']:,} gallery faces{people}")
    axis.legend(fontsize=7, loc="upper left")
    axis.grid(True, alpha=0.3)
    return figure
