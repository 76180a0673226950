"""Random search, the control a weight-sharing search must beat (Yu et al., 2019).

    python tools/random_search.py --flagfile=configs/random_search_fashion_mnist_nse_latency.flags

Draws ``--num_archs`` distinct architectures uniformly from the whole space of ``--search_run`` (every
cell any set of the full pool's operations), priced by the same cost model, inside the part of that
search's window its own pick may take (up to the target); trains each alone with the short stand-alone
recipe (``nse_tf.search.standalone.SHORT_RECIPE``) on the search's training images minus its last round's
held-out split; picks the best by that held-out top-1 (the test split is never read). Writes
``--out_dir``/random_search.json (every candidate), ``chosen/best.json`` (the pick, for tools/train.py)
and one resumable training run per candidate.
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
flags.DEFINE_string("search_run", None, "The search run whose space, cost model and window to draw from.")
flags.DEFINE_integer("num_archs", 12, "Distinct architectures to draw and train.")
flags.DEFINE_integer("seed", 0, "Seed of the draws and of the retrainings.")
flags.DEFINE_integer("epochs", 3, "Epochs of the short stand-alone recipe.")
flags.DEFINE_integer("threads", 0, "TensorFlow CPU threads (0: TensorFlow's default).")
flags.DEFINE_string("out_dir", None, "Output directory (required).")
flags.DEFINE_string("shard", "0/1", "i/n: train only candidates i, i + n, ... (n processes or machines share the "
                    "list); whichever finishes the last candidate writes the pick.")


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"random_search.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    from nse_tf.utils.memory import keep_freed_memory

    keep_freed_memory()
    try:
        if not F.out_dir:
            raise FlagError("out_dir", "is required")
        if F.num_archs < 1:
            raise FlagError("num_archs", f"must be positive, got {F.num_archs}")
        if F.epochs < 1:
            raise FlagError("epochs", f"must be positive, got {F.epochs}")
        from nse_tf.search import standalone

        try:
            shard = standalone.Shard.parse(F.shard)
        except ValueError as err:
            raise FlagError("shard", str(err)) from None

        info, rounds = standalone.open_for_tool(F.search_run, F.threads)
        result = search(info, rounds[-1] if rounds else 0, shard)
    except FlagError as err:
        print(f"random_search.py: error: {err}", file=sys.stderr)
        return 2
    except DatasetError as err:  # the search's dataset or held-out split, as its config.json gives them
        print(f"random_search.py: error: --search_run: {err}", file=sys.stderr)
        return 2
    except TrainError as err:  # a run directory under --out_dir holds another network, recipe or split
        print(f"random_search.py: error: --out_dir: {err}", file=sys.stderr)
        return 2
    except OutputError as err:  # a retraining under --out_dir in use by another process, or not writable
        print(f"random_search.py: error: --out_dir: {err}", file=sys.stderr)
        return 2
    except StateError as err:  # a damaged file of --search_run (its round's pareto.json)
        print(f"random_search.py: error: --search_run: {err}", file=sys.stderr)
        return 2
    if result is None:
        print(f"shard {F.shard}: its candidates are trained; others are still training (the last to finish "
              f"writes {F.out_dir}/random_search.json)")
        return 0
    best = result["best"]
    print(f"best of {len(result['candidates'])}: held-out top-1 {best['standalone_top1']:.4f} at "
          f"{best['cost']:.4g} {result['cost_unit']} -> {F.out_dir}/chosen/best.json")
    return 0


def search(info, round_index: int, shard) -> dict | None:
    import dataclasses

    import numpy as np

    from nse_tf.cost import model as cost_model
    from nse_tf.search import standalone
    from nse_tf.search.uniform_sampling import UniformWindowSampler
    from nse_tf.utils.atomic import atomic_write_json

    model = info.cost_model()
    cells = info.space.cells()
    # The search's pick costs at most its budget, so the control draws from the same part of the window.
    sampler = UniformWindowSampler(model.op_costs, model.fixed, [c.may_be_empty for c in cells],
                                   *info.selection_window)
    architectures = sampler.draw_unique(np.random.default_rng([F.seed, 0x7A4D]), F.num_archs)
    recipe = dataclasses.replace(standalone.SHORT_RECIPE, epochs=F.epochs, seed=F.seed)
    macs = cost_model.macs_model(info.space)
    pool = info.space.get_pool().names
    seed = info.heldout_seed(round_index)
    jobs = [(info.spec(arch, f"random-{i:02d}"), recipe, os.path.join(F.out_dir, f"arch_{i:02d}"))
            for i, arch in enumerate(architectures)]
    done = standalone.run_share(jobs, shard, info.heldout_examples, seed, log=lambda line: print(line, flush=True))
    if any(result is None for result in done):
        return None
    rows = [{"index": i, "cells": [[pool[j] for j in c] for c in arch], "cost": model.architecture_cost(arch),
             "macs": int(round(macs.architecture_cost(arch) * 1e6)), "standalone_top1": result["top1"],
             "seconds": standalone.training_seconds(result)}
            for i, (arch, result) in enumerate(zip(architectures, done))]
    best = max(rows, key=lambda r: r["standalone_top1"])
    info.spec(architectures[best["index"]], "random-search-best").save(os.path.join(F.out_dir, "chosen", "best.json"))
    result = {"search_run": info.run_dir, "window": list(info.selection_window), "cost_unit": model.unit,
              "rule": "the best held-out top-1 after the short stand-alone recipe",
              "heldout": {"examples": info.heldout_examples, "seed": seed},
              # the sampler's binned count: an upper bound of the architectures in the window
              "architectures_in_window_at_most": sampler.candidates, "recipe": recipe.to_dict(), "candidates": rows,
              "best": best, "seconds": sum(r["seconds"] for r in rows),
              "command": " ".join(["python", "tools/random_search.py",
                                   *(a for a in sys.argv[1:] if not a.startswith(("--shard", "--threads")))])}
    atomic_write_json(os.path.join(F.out_dir, "random_search.json"), result)
    return result


def run() -> None:
    """``python tools/random_search.py``."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("random_search.py"))
