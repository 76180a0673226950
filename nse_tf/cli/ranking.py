"""Does the supernet rank architectures as training them alone does?

    python tools/ranking.py --flagfile=configs/ranking_fashion_mnist_nse_latency.flags

Takes ``--num_archs`` architectures from one finished round's window of ``--search_run``, spread evenly
over their shared-weight held-out top-1; retrains each alone with one short recipe (``--epochs``, the
shared Fashion-MNIST recipe's augmentation, no EMA) on the search's training images minus that round's
held-out split; scores it on that held-out split (never the test split); retrains ``--seed_archs`` of
them with a second seed, so the seed spread can be read beside the ranking. Writes to ``--out_dir``:
``ranking.json`` (``{"kendall_tau", "spearman", "n", ...}``), ``ranking.png`` (the scatter) and one
training run directory per retraining (resumable: rerun the same command).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from nse_tf.data.idx import DatasetError  # noqa: E402
from nse_tf.search.evolution import StateError  # noqa: E402
from nse_tf.train.config import TrainError  # noqa: E402
from nse_tf.utils.cli import FlagError, flags_parser  # noqa: E402
from nse_tf.utils.output_paths import OutputError  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("search_run", None, "A search run directory (config.json, round_XX/pareto.json).")
flags.DEFINE_integer("round", 0, "Round to rank (1-based); 0: the last finished round.")
flags.DEFINE_integer("num_archs", 12, "Architectures of the round's window to retrain.")
flags.DEFINE_integer("seed_archs", 2, "How many of them to retrain with --second_seed too.")
flags.DEFINE_integer("epochs", 3, "Epochs of the short stand-alone recipe.")
flags.DEFINE_integer("seed", 0, "Seed of the retrainings.")
flags.DEFINE_integer("second_seed", 1, "Seed of the repeated retrainings.")
flags.DEFINE_integer("threads", 0, "TensorFlow CPU threads (0: TensorFlow's default).")
flags.DEFINE_string("out_dir", None, "Output directory (default: <search_run>/ranking).")
flags.DEFINE_string("shard", "0/1", "i/n: run only retrainings i, i + n, ... (n processes or machines share the "
                    "list); whichever finishes the last one writes ranking.json.")


def run_name(index: int, seed: int) -> str:
    return f"arch_{index:02d}_seed{seed}"


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"ranking.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    import dataclasses

    from nse_tf.utils.memory import keep_freed_memory

    keep_freed_memory()
    try:
        if F.num_archs < 3:
            raise FlagError("num_archs", f"must be at least 3 for a rank correlation, got {F.num_archs}")
        if F.epochs < 1:
            raise FlagError("epochs", f"must be positive, got {F.epochs}")
        if not 0 <= F.seed_archs <= F.num_archs:
            raise FlagError("seed_archs", f"must be in [0, --num_archs={F.num_archs}], got {F.seed_archs}")
        if F.seed_archs and F.second_seed == F.seed:
            raise FlagError("second_seed", "must differ from --seed")
        from nse_tf.search import standalone

        try:
            shard = standalone.Shard.parse(F.shard)
        except ValueError as err:
            raise FlagError("shard", str(err)) from None
        info, round_index = standalone.open_round_for_tool(F.search_run, F.threads, F.round)
        points = standalone.window_points(standalone.round_points(F.search_run, round_index), info.window,
                                          round_index)
        if len(points) < F.num_archs:
            raise FlagError("num_archs", f"round {round_index + 1}'s window holds {len(points)} evaluated "
                                         f"architectures, fewer than {F.num_archs}")
        out_dir = F.out_dir or os.path.join(F.search_run, "ranking")
        recipe = dataclasses.replace(standalone.SHORT_RECIPE, epochs=F.epochs, seed=F.seed)
        result = rank(info, round_index, standalone.spread_over_accuracy(points, F.num_archs), recipe, out_dir,
                      shard)
    except FlagError as err:
        print(f"ranking.py: error: {err}", file=sys.stderr)
        return 2
    except DatasetError as err:  # the search's dataset or held-out split, as its config.json gives them
        print(f"ranking.py: error: --search_run: {err}", file=sys.stderr)
        return 2
    except TrainError as err:  # a run directory under --out_dir holds another network, recipe or split
        print(f"ranking.py: error: --out_dir: {err}", file=sys.stderr)
        return 2
    except OutputError as err:  # a retraining under --out_dir in use by another process, or not writable
        print(f"ranking.py: error: --out_dir: {err}", file=sys.stderr)
        return 2
    except StateError as err:  # a damaged file of --search_run (its round's pareto.json)
        print(f"ranking.py: error: --search_run: {err}", file=sys.stderr)
        return 2
    if result is None:
        print(f"shard {F.shard}: its retrainings are done; others are still training (the last to finish "
              f"writes {out_dir}/ranking.json)")
        return 0
    print(f"Kendall tau {result['kendall_tau']:.3f}, Spearman {result['spearman']:.3f} over {result['n']} "
          f"architectures; seed spread (mean |difference|) {result['seed_spread']['mean_abs_difference']:.4f} "
          f"-> {out_dir}/ranking.json")
    return 0


def rank(info, round_index: int, picks, recipe, out_dir: str, shard) -> dict | None:
    import dataclasses

    import numpy as np

    from nse_tf.cost import model as cost_model
    from nse_tf.search import standalone
    from nse_tf.utils.atomic import atomic_write_json
    from nse_tf.utils.metrics import kendall_tau, spearman

    seed = info.heldout_seed(round_index)
    macs = cost_model.macs_model(info.space)
    pool = info.space.get_pool().names
    # The repeated seeds: evenly spread over the picks, so they cover the accuracy range.
    repeat = sorted({int(round(x)) for x in np.linspace(0, len(picks) - 1, F.seed_archs + 2)[1:-1]})
    second = dataclasses.replace(recipe, seed=F.second_seed)
    runs = [(i, recipe) for i in range(len(picks))] + [(i, second) for i in repeat]
    jobs = [(info.spec(picks[i].cells, f"ranking-round{round_index + 1}-{i:02d}"), r,
             os.path.join(out_dir, run_name(i, r.seed))) for i, r in runs]
    done = standalone.run_share(jobs, shard, info.heldout_examples, seed, log=lambda line: print(line, flush=True))
    if any(result is None for result in done):
        return None
    rows = [{"index": i, "cells": [[pool[j] for j in c] for c in point.cells], "cost": point.cost,
             "macs": int(round(macs.architecture_cost(point.cells) * 1e6)), "shared_top1": point.accuracy,
             "standalone_top1": done[i]["top1"], "run": run_name(i, recipe.seed),
             "seconds": standalone.training_seconds(done[i])}
            for i, point in enumerate(picks)]
    spread = []
    for k, i in enumerate(repeat):
        top1 = done[len(picks) + k]["top1"]
        spread.append({"index": i, "top1": {str(recipe.seed): rows[i]["standalone_top1"], str(second.seed): top1},
                       "abs_difference": abs(top1 - rows[i]["standalone_top1"])})
    shared = [r["shared_top1"] for r in rows]
    alone = [r["standalone_top1"] for r in rows]
    result = {
        "kendall_tau": kendall_tau(shared, alone), "spearman": spearman(shared, alone),
        "n": len(rows), "search_run": info.run_dir, "round": round_index + 1, "window": list(info.window),
        "heldout": {"examples": info.heldout_examples, "seed": seed},
        "recipe": recipe.to_dict(), "standalone_range": [min(alone), max(alone)],
        "shared_range": [min(shared), max(shared)],
        "seed_spread": {"seeds": [recipe.seed, second.seed], "archs": spread,
                        "mean_abs_difference": float(np.mean([s["abs_difference"] for s in spread])) if spread
                        else None},
        "architectures": rows, "seconds": sum(standalone.training_seconds(r) for r in done),
        "command": " ".join(["python", "tools/ranking.py",
                             *(a for a in sys.argv[1:] if not a.startswith(("--shard", "--threads")))])}
    atomic_write_json(os.path.join(out_dir, "ranking.json"), result)
    write_scatter(os.path.join(out_dir, "ranking.png"), result)
    return result


def write_scatter(path: str, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    from nse_tf.utils.atomic import atomic_write_bytes

    rows = result["architectures"]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.scatter([r["shared_top1"] for r in rows], [r["standalone_top1"] for r in rows], s=18)
    for s in result["seed_spread"]["archs"]:
        x = rows[s["index"]]["shared_top1"]
        ax.plot([x, x], sorted(s["top1"].values()), color="grey", linewidth=3, alpha=0.6)
    ax.set_xlabel("shared-weight held-out top-1 (supernet)")
    ax.set_ylabel(f"stand-alone held-out top-1 ({result['recipe']['epochs']} epochs)")
    ax.set_title(f"round {result['round']}: Kendall tau {result['kendall_tau']:.2f}, "
                 f"Spearman {result['spearman']:.2f}, n = {result['n']} (grey: two seeds)", fontsize=9)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def run() -> None:
    """``python tools/ranking.py``."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("ranking.py"))
