"""End-of-round evaluation levers, measured on a real round: BN recalibration batches and held-out size.

    python benchmarks/evaluation_levers.py --flagfile=configs/fashion_mnist_nse_latency.flags \
        --run_dir=runs/evaluation_levers --checkpoint=<copy of round_00/ckpt at its last step> \
        --pareto=results/fashion_mnist_nse_latency/round_00/pareto.json --round=1 --bn_batches_list=10,20,50,100

``--run_dir`` only takes this process's TensorBoard writer: nothing is written into the search's own.

Restores the round's final supernet checkpoint, then evaluates the round's architectures (its
``pareto.json``, in the order the search evaluated them) once per ``--bn_batches_list`` setting, each
setting starting again from the checkpoint, exactly as the search's end of round does (BN statistics
re-estimated by moving averages over augmented training batches, not reset; top-1 on the held-out split).
Prints per setting the median top-1, seconds per architecture and Kendall tau against the run's own
setting (whose accuracies must reproduce the committed ones), plus the tau of the first half of the
held-out split against the whole. The last line of stdout is JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from absl import app, flags  # noqa: E402

from nse_tf.search import schema  # noqa: E402  (the search's flags: the run is rebuilt from its own flagfile)
from nse_tf.search.from_flags import prepare_search  # noqa: E402
from nse_tf.utils.settings import SettingError, define_flags  # noqa: E402

F = flags.FLAGS
SEARCH_FLAGS = define_flags(schema.SETTINGS)
flags.DEFINE_string("checkpoint", None, "Directory holding the round's final checkpoint (ckpt-N + host JSON).")
flags.DEFINE_string("pareto", None, "The round's pareto.json (its evaluated architectures, in order).")
flags.DEFINE_integer("round", 1, "The round (1-based) the checkpoint and pareto.json belong to.")
flags.DEFINE_list("bn_batches_list", ["10", "20", "50", "100"], "BN recalibration batch counts to compare.")


def main(argv: list[str]) -> int:
    import keras
    import numpy as np
    import tensorflow as tf

    from nse_tf.search.checkpoints import RoundCheckpoint
    from nse_tf.search.evolution import ArchPoint
    from nse_tf.search.round_trainer import RoundState
    from nse_tf.search.run import SearchRun
    from nse_tf.utils.metrics import kendall_tau

    try:
        prepared = prepare_search({name: F[name].value for name in SEARCH_FLAGS},
                                  {name for name in SEARCH_FLAGS if F[name].present})
    except SettingError as err:
        print(f"evaluation_levers.py: error: {schema.flag_text(err.field, err.cost or F.cost)}: {err}", file=sys.stderr)
        return 2
    config = prepared.config
    run = SearchRun(config, cost_model=prepared.cost_model)
    round_index = F.round - 1
    latest = tf.train.latest_checkpoint(F.checkpoint)
    with open(latest + ".host.json", encoding="utf-8") as f:
        host = RoundState.from_json(json.load(f))
    with open(F.pareto, encoding="utf-8") as f:
        recorded = json.load(f)
    points = [ArchPoint.from_json(p) for p in recorded["evaluated"]]

    class Subspaces:  # what new_trainer reads of the evolution state
        subspaces = host.subspaces

    # The search sets this global seed before building a round's trainer and datasets; tf.data's shuffles
    # combine it with their own seeds, so without it the recalibration batches would be other images.
    keras.utils.set_random_seed(config.seed * 1000 + round_index)
    trainer = run.new_trainer(Subspaces)
    splits = run.round_splits(round_index)
    iterators = {"train_data": iter(splits.train), "heldout_data": iter(splits.heldout_repeat)}
    ckpt = RoundCheckpoint(F.checkpoint, trainer, iterators, writable=False)
    heldout = list(splits.heldout)
    half = heldout[: len(heldout) // 2]
    results = {}
    for batches in [int(b) for b in F.bn_batches_list]:
        ckpt.checkpoint.restore(latest).assert_existing_objects_matched()
        recal = list(run.round_splits(round_index).train.take(batches).map(lambda x, y: x))
        started = time.time()
        whole, first_half = [], []
        for point in points:
            masks = trainer.masks_for(point.cells)
            whole.append(trainer.evaluate(masks, recal, heldout))
            first_half.append(trainer.evaluate(masks, [], half))  # same statistics, half the images
        seconds = (time.time() - started) / len(points)
        results[batches] = {"median_top1": float(np.median(whole)), "seconds_per_arch": seconds,
                            "accuracies": whole, "half_heldout_tau": kendall_tau(whole, first_half)}
        print(f"bn_batches={batches}: median {np.median(whole):.4f}, {seconds:.2f} s per architecture "
              f"(including a second pass on half the held-out split), tau(half vs whole held-out) "
              f"{results[batches]['half_heldout_tau']:.3f}", flush=True)
    own = config.evolution.bn_batches
    reference = results.get(own, {}).get("accuracies")
    recorded_acc = [p.accuracy for p in points]
    for batches, r in results.items():
        r["tau_vs_own_setting"] = kendall_tau(r["accuracies"], reference) if reference else None
        r["tau_vs_recorded"] = kendall_tau(r["accuracies"], recorded_acc)
    if reference:
        print(f"own setting ({own} batches) reproduces the recorded accuracies: "
              f"max |diff| {max(abs(a - b) for a, b in zip(reference, recorded_acc)):.2e}")
    for batches, r in results.items():
        print(f"bn_batches={batches}: tau vs the run's own setting {r['tau_vs_own_setting']}, vs recorded "
              f"{r['tau_vs_recorded']:.3f}")
    print(json.dumps({"round": F.round, "archs": len(points), "heldout_examples": sum(int(y.shape[0]) for _, y in heldout),
                      "settings": {str(b): {k: v for k, v in r.items() if k != "accuracies"}
                                   for b, r in results.items()}}))
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
