"""Plots and the final report of a search: gate heatmaps, Pareto scatter, search_report.md."""

from __future__ import annotations

import glob
import io
import os
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # isort: skip (before pyplot: no display here)
import matplotlib.pyplot as plt  # noqa: E402  # isort: skip
import numpy as np  # noqa: E402

from nse_tf.cost.model import macs_model  # noqa: E402
from nse_tf.search.evolution import ArchPoint, EvolutionState, StateError  # noqa: E402
from nse_tf.search.gates import gate_probability  # noqa: E402
from nse_tf.utils import state_files  # noqa: E402
from nse_tf.search.schema import flag_text  # noqa: E402
from nse_tf.utils.atomic import atomic_write_bytes, atomic_write_text  # noqa: E402


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def gate_heatmap_png(alpha: np.ndarray, active: np.ndarray, subspaces: Sequence[Sequence[int]],
                     pool_names: Sequence[str], title: str) -> bytes:
    """Cells x pool operations; colour = gate probability, blank = not in the sub-space, x = pruned."""
    used = sorted({i for s in subspaces for i in s})
    grid = np.full((len(subspaces), len(used)), np.nan)
    pruned = []
    for c, sub in enumerate(subspaces):
        for j, op in enumerate(sub):
            grid[c, used.index(op)] = gate_probability(alpha[c, j])
            if not active[c, j]:
                pruned.append((used.index(op), c))
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(used) + 2), max(3, 0.3 * len(subspaces) + 1.5)))
    image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for x, y in pruned:
        ax.text(x, y, "x", ha="center", va="center", color="white", fontsize=8)
    ax.set_xticks(range(len(used)), [pool_names[i] for i in used], rotation=90, fontsize=7)
    ax.set_yticks(range(len(subspaces)), [f"cell {c}" for c in range(len(subspaces))], fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="gate probability p")
    return _png(fig)


def _cost(point: dict[str, Any]) -> float:
    return point["cost"] if "cost" in point else point["macs"]  # "macs": files from before latency searches


def format_cost(value: float, unit: str) -> str:
    return f"{value:.2f}" if unit == "M MACs" else f"{value:.3f}"


def write_pareto_plot(run_dir: str, out_path: str, target: float, unit: str = "M MACs") -> None:
    """Held-out accuracy vs cost of every round's evaluated architectures, fronts drawn as lines."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for path in sorted(glob.glob(os.path.join(run_dir, "round_*", "pareto.json"))):
        data = state_files.read_json(path, "restore it from a copy of the run directory", error=StateError,
                                     label="corrupted", fields={"round": int, "evaluated": list, "front": list})
        r = data["round"]
        points = [p for p in data["evaluated"] if p["round"] == r]
        line = ax.scatter([_cost(p) for p in points], [p["accuracy"] for p in points], s=8, alpha=0.35,
                          label=f"round {r + 1} evaluated")
        front = sorted(data["front"], key=_cost)
        ax.plot([_cost(p) for p in front], [p["accuracy"] for p in front], "o-", color=line.get_facecolor()[0],
                markersize=4, label=f"round {r + 1} front")
    ax.axvline(target, color="grey", linestyle=":", label="target")
    ax.set_xlabel("M MACs (multiply-accumulates)" if unit == "M MACs" else f"latency ({unit}, lookup table)")
    ax.set_ylabel("held-out top-1 (shared weights)")
    ax.legend(fontsize=7)
    atomic_write_bytes(out_path, _png(fig))


def choose_architectures(front: Sequence[ArchPoint], target: float) -> dict[str, ArchPoint]:
    """``best``: the most accurate front point at or under ``target`` (the budget: the penalty's target, or
    the top of an explicit window; else the cheapest); plus every front point as ``front_<i>``, cheapest
    first. The paper does not say how one model is picked: this is ours."""
    ordered = sorted(front, key=lambda p: p.cost)
    under = [p for p in ordered if p.cost <= target]
    best = max(under, key=lambda p: p.accuracy) if under else ordered[0]
    chosen = {"best": best}
    chosen.update({f"front_{i}": p for i, p in enumerate(ordered)})
    return chosen


def window_text(evolution: Any) -> str:
    if evolution.window is None:
        return f"window +-{evolution.drift:g}"
    return f"window ({evolution.window[0]:g}, {evolution.window[1]:g})"


def format_median(value: float | None) -> str:
    """Rounds evaluated before the median was recorded show a dash (their pareto.json has the points)."""
    return "-" if value is None else f"{value:.4f}"


def write_report(path: str, config: Any, state: EvolutionState, chosen: dict[str, ArchPoint],
                 pool_names: Sequence[str], unit: str = "M MACs", *, verified: dict[str, Any] | None = None) -> None:
    lines = [
        "# NSE search report", "",
        f"Run directory: `{config.run_dir}`; pool `{config.space.pool if isinstance(config.space.pool, str) else 'custom'}` "
        f"({len(pool_names)} ops), K = {state.ops_per_cell}, {state.num_rounds} rounds, target "
        f"{config.penalty.target:g} {unit} ({window_text(config.evolution)}), dataset `{config.data.dataset}`.",
        ("MACs are multiply-accumulates" if unit == "M MACs" else
         "Latency is the sum of the run's LiteRT lookup table (latency_table.json)") +
        "; accuracy is top-1 on the held-out split (carved from the training data) "
        "with shared supernet weights after BN recalibration, not the accuracy of a retrained model.", "",
        "| round | sub-space size (min/mean/max) | ops left at end | evaluated | median top-1 of evaluated | "
        f"front size | best top-1 in window | its {unit} | train s | eval s | eval s per architecture |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for h in state.history:
        sizes = h["subspace_sizes"]
        train = "-" if h.get("train_seconds") is None else f"{h['train_seconds']:.0f}"
        lines.append(f"| {h['round'] + 1} | {min(sizes)}/{np.mean(sizes):.1f}/{max(sizes)} | {h['active_ops_end']} | "
                     f"{h['evaluated']} | {format_median(h.get('median_accuracy'))} | {h['front_size']} | "
                     f"{h['best_accuracy']:.4f} | "
                     f"{format_cost(h['best_cost'], unit)} | "
                     f"{train} | {h['eval_seconds']:.0f} | {h['eval_seconds'] / max(h['evaluated'], 1):.2f} |")
    best = chosen["best"]
    how = ("the best mean stand-alone top-1 of the verified shortlist below" if verified else
           "the most accurate front point within the budget, by shared weights")
    lines += ["", f"## Chosen architecture (`chosen/best.json`): {format_cost(best.cost, unit)} {unit}, held-out top-1 "
              f"{best.accuracy:.4f} (shared weights); {how}", ""]
    for c, cell in enumerate(best.cells):
        lines.append(f"- cell {c}: {', '.join(pool_names[i] for i in cell) or '(skipped)'}")
    # A latency search's front also shows MACs: what the FLOPs search and the zoo table compare by.
    macs = None if unit == "M MACs" else macs_model(config.space)
    extra_column = "" if macs is None else " M MACs |"
    lines += ["", "## Final front", "", f"| file | {unit} |{extra_column} held-out top-1 |",
              "|---|---|---|" + ("---|" if macs else "")]
    for label, point in chosen.items():
        if label != "best":
            extra = "" if macs is None else f" {macs.architecture_cost(point.cells):.2f} |"
            lines.append(f"| chosen/{label}.json | {format_cost(point.cost, unit)} |{extra} {point.accuracy:.4f} |")
    if verified:
        lines += verification_lines(verified, unit)
    lines += ["", "## Optimized subsets at the end", ""]
    for c, subset in enumerate(state.subspaces):
        lines.append(f"- cell {c}: {', '.join(pool_names[i] for i in subset) or '(none)'}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def verification_lines(verified: dict[str, Any], unit: str) -> list[str]:
    """The verification stage's shortlist table: shared-weight and stand-alone top-1 side by side."""
    settings, heldout = verified["settings"], verified["heldout"]
    seeds = sorted({s for c in verified["candidates"] for s in c["proxy_top1"]}, key=int)
    tau = "-" if verified["kendall_tau"] is None else f"{verified['kendall_tau']:.3f}"
    macs_column = unit != "M MACs"  # a latency search's table shows MACs too
    lines = ["", "## Verification (`verify/verification.json`)", "",
             f"{verified['n']} shortlisted architectures (the final front, the top {settings['top']} of the last round "
             "by shared weights and the seed architectures, all within the budget; the given ones, "
             f"`{flag_text('verify.archs')}`, at any cost), each trained alone for {settings['epochs']} epochs "
             f"(`standalone.SHORT_RECIPE`) with seeds {', '.join(seeds)} on the training images minus round {heldout['round']}'s held-out split "
             f"({heldout['examples']} images, seed {heldout['seed']}) and scored on that split. Kendall tau of "
             f"shared-weight against mean stand-alone top-1 over the shortlist's {verified['n_ranked']} searched "
             f"architectures: {tau}.", "",
             f"| architecture | why | {unit} |{' M MACs |' if macs_column else ''} shared-weight top-1 | "
             + " | ".join(f"stand-alone seed {s}" for s in seeds) + " | mean |",
             "|---|---|---|---|" + "---|" * (len(seeds) + macs_column) + "---|"]
    for c in sorted(verified["candidates"], key=lambda c: -c["proxy_mean"]):
        mark = " **(chosen)**" if c["label"] == verified["chosen"] else ""
        shared = "-" if c["shared_top1"] is None else f"{c['shared_top1']:.4f}"
        macs = f" {c['macs'] / 1e6:.2f} |" if macs_column else ""
        lines.append(f"| `{c['label']}`{mark} | {', '.join(c['reasons'])} | {format_cost(c['cost'], unit)} |{macs} "
                     f"{shared} | "
                     + " | ".join(f"{c['proxy_top1'][s]:.4f}" for s in seeds) + f" | {c['proxy_mean']:.4f} |")
    return lines
