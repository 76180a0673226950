"""Benchmarks of the search machinery, each measured in one process on synthetic data.

    python tools/benchmark.py supernet [--json] [--steps=200] [--batch_size=64] [--warmup=5] [--repeats=20]
        [--space=small] [--counts=1,1,1,1,1,1] [--channels=8,16,24,32,48,64,128] [--ops_per_cell=5] [--seed=0]

``supernet`` measures, on one random sub-space of ``--ops_per_cell`` ops per cell:
  step_ratio  supernet weight step / standalone child step, both on the same sampled path
              (the child is built from exactly the ops the mask switches on);
  gate_ratio  gate step (two paths S, U) / weight step;
  traces      tf.function traces of the weight and gate steps after ``--steps`` RoundTrainer.step()
              iterations, each on a freshly sampled path (must not grow with the steps).
Timings are medians over ``--repeats`` interleaved rounds (child, weight, gate, child, ...), so machine
noise hits all of them alike. Targets are printed beside the figures; the exit status is 0 regardless.
With ``--json`` the last line of stdout is ``{"step_ratio": ..., "gate_ratio": ..., "traces": ...}``.

    python tools/benchmark.py evaluation [--json] [--train_steps=1200] [--archs=24] [--eval_batch_size=500]
        [--bn_batch_size=640] [--bn_images=640] [--heldout_images=1500] [--reference_bn_batches=40] [--blocks=3]
        [--seed=0]

``evaluation`` trains the quick space's supernet (configs/fashion_mnist_quick.flags: 9 cells, mac27, K = 4) on
Fashion-MNIST for ``--train_steps`` steps, then evaluates the same uniformly sampled architectures with
today's end-of-round procedure (BN re-estimated by EMA over 20 batches of 64, 2000 held-out images in
batches of 64) and with the shortcut (``--bn_mode=exact``: the statistics of the first ``--bn_images`` of those
1280 images in passes of ``--bn_batch_size``; the first ``--heldout_images`` held-out images,
``--eval_batch_size`` per batch), in alternating whole blocks; then, once and untimed, with the reference both
approximate (exact statistics of ``--reference_bn_batches`` batches of 64, all held-out images). It prints
seconds per architecture of both, Kendall tau between their accuracies and each one's tau against the
reference; with ``--json`` the last line is ``{"seconds_per_arch": <shortcut>, "archs": n, "heldout_examples": m,
"today_seconds_per_arch": ..., "kendall_tau_vs_today": ..., "today_repeat_tau": ..., "today_tau_vs_reference":
..., "shortcut_tau_vs_reference": ...}`` (``today_repeat_tau``: today's procedure against itself one block
later, on the same images: the order's effect only).

    python tools/benchmark.py latency [--json] [--latency_archs=60] [--fit_archs=20] [--latency_rounds=200]
        [--latency_runs=10] [--latency_formats=float32,int8] [--seed=0] [--latency_out=DIR]

``latency`` checks the latency model that predicts (``nse_tf.cost.latency_prediction``): on the quick latency
space, per TFLite form, it exports the table's pieces and random whole networks, times them all together in
short interleaved rounds (so the table and the networks see the same states of the machine), fits the
correction on some networks and scores it on the others: share within +-10%, RMSE, Kendall tau, and the same
scores of the timing against itself (odd rounds against even ones: what the measurement lets a target ask);
with ``--json``
the last line is ``{"within_10pct": ..., "rmse_ms": ..., "kendall_tau": ..., "n": ...}`` (the worse form),
then each form's figures. It refuses to run on a busy machine.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from nse_tf.utils.cli import FlagError, flags_parser  # noqa: E402
from nse_tf.search.step_timing import (StepBench, bench_space, child_train_step, random_subspaces,  # noqa: E402,F401
                                       synthetic_batch, timed)
from nse_tf.utils.settings import define_flags, settings_of  # noqa: E402

JSON = flags.DEFINE_bool("json", False, "Make the last line of stdout a JSON object of the headline figures.")
STEP_FLAGS = define_flags(settings_of(StepBench))  # the supernet benchmark's (benchmarks/step_breakdown.py's too)
STEPS, BATCH_SIZE, WARMUP, REPEATS = (STEP_FLAGS[n] for n in ("steps", "batch_size", "warmup", "repeats"))
SPACE, COUNTS, CHANNELS = (STEP_FLAGS[n] for n in ("space", "counts", "channels"))
OPS_PER_CELL, SEED = STEP_FLAGS["ops_per_cell"], STEP_FLAGS["seed"]

TRAIN_STEPS = flags.DEFINE_integer("train_steps", 1200, "evaluation: weight steps of the supernet before evaluating.")
ARCHS = flags.DEFINE_integer("archs", 24, "evaluation: uniformly sampled architectures evaluated.")
EVAL_BATCH_SIZE = flags.DEFINE_integer("eval_batch_size", 500, "evaluation: the shortcut's held-out batch size.")
BN_BATCH_SIZE = flags.DEFINE_integer("bn_batch_size", 640, "evaluation: the shortcut's images per BN statistics pass.")
BN_IMAGES = flags.DEFINE_integer("bn_images", 640, "evaluation: the shortcut's BN statistics images (the first of "
                                 "today's 1280; exact statistics keep nothing of the previous path, so fewer serve).")
HELDOUT_IMAGES = flags.DEFINE_integer("heldout_images", 1500, "evaluation: the shortcut's held-out images (the first "
                                      "of today's 2000).")
REFERENCE_BN_BATCHES = flags.DEFINE_integer("reference_bn_batches", 40, "evaluation: batches of 64 whose exact BN "
                                            "statistics the reference uses (today's 20 and the next ones), beside "
                                            "all held-out images: the high-fidelity ranking both are scored against.")
BLOCKS = flags.DEFINE_integer("blocks", 3, "evaluation: alternating blocks per procedure (each evaluates every "
                              "architecture; seconds are the blocks' median).")

LATENCY_ARCHS = flags.DEFINE_integer("latency_archs", 60, "latency: random architectures exported and timed.")
FIT_ARCHS = flags.DEFINE_integer("fit_archs", 20, "latency: of those, how many fit the correction (the rest "
                                 "validate it).")
LATENCY_ROUNDS = flags.DEFINE_integer("latency_rounds", 200, "latency: short interleaved timing rounds over all files "
                                      "(the table's pieces and the networks together).")
LATENCY_RUNS = flags.DEFINE_integer("latency_runs", 10, "latency: invokes per file and round.")
LATENCY_FORMATS = flags.DEFINE_list("latency_formats", ["float32", "int8"], "latency: TFLite forms to check.")
LATENCY_OUT = flags.DEFINE_string("latency_out", "", "latency: a folder to keep each form's table "
                                  "(<form>_table.json), networks (<form>_networks/) and their timings "
                                  "(<form>_networks.json) in, so that a predictor can be refitted on them, or the "
                                  "files re-timed, without exporting again (empty: keep nothing).")

TARGETS = {"step_ratio": 1.10, "gate_ratio": 1.8}  # issue 15: the weight step at most 1.10x the child


def build_space() -> Any:
    return bench_space(SPACE.value, COUNTS.value, CHANNELS.value)


def require_positive(*holders: Any) -> None:
    for flag in holders:
        if flag.value < 1:
            raise FlagError(flag.name, f"must be >= 1, got {flag.value}")


def check_supernet() -> None:
    require_positive(STEPS, BATCH_SIZE, REPEATS, OPS_PER_CELL)
    if WARMUP.value < 1:
        raise FlagError("warmup", f"must be >= 1 (the first call traces), got {WARMUP.value}")


def check_evaluation() -> None:
    require_positive(TRAIN_STEPS, ARCHS, EVAL_BATCH_SIZE, BN_BATCH_SIZE, BN_IMAGES, HELDOUT_IMAGES, BLOCKS,
                     REFERENCE_BN_BATCHES)
    if ARCHS.value < 2:
        raise FlagError("archs", f"must be >= 2 for a rank correlation, got {ARCHS.value}")


def check_latency() -> None:
    from nse_tf.cost import latency_prediction, latency_table  # TensorFlow-free: checked before any import of it

    require_positive(LATENCY_ARCHS, FIT_ARCHS, LATENCY_ROUNDS, LATENCY_RUNS)
    if not len(latency_prediction.FEATURES) <= FIT_ARCHS.value < LATENCY_ARCHS.value:
        raise FlagError("fit_archs", f"must be in [{len(latency_prediction.FEATURES)}, --latency_archs), got "
                                     f"{FIT_ARCHS.value}")
    for fmt in LATENCY_FORMATS.value:
        if fmt not in latency_table.TFLITE_FORMATS:
            raise FlagError("latency_formats", f"{fmt!r} is not one of {', '.join(latency_table.TFLITE_FORMATS)}")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def run_supernet() -> dict[str, Any]:
    import numpy as np
    import tensorflow as tf

    from nse_tf.nets.child import build_child
    from nse_tf.nets.layers import Namespace
    from nse_tf.search import gates
    from nse_tf.search.round_trainer import OptimConfig, PenaltyConfig, RoundConfig, RoundTrainer, new_round_state
    from nse_tf.space.architecture import Architecture, NetworkSpec

    t_all = time.perf_counter()
    rng = np.random.default_rng(SEED.value)
    space = build_space()
    subspaces = random_subspaces(space, OPS_PER_CELL.value, rng)
    batch = BATCH_SIZE.value
    images, labels = synthetic_batch(space, batch, rng)
    phases: dict[str, float] = {}

    t0 = time.perf_counter()
    config = RoundConfig(steps=STEPS.value, steps_per_epoch=STEPS.value, batch_size=batch)
    trainer = RoundTrainer(space, subspaces, OptimConfig(), PenaltyConfig(), config)
    net = trainer.net
    all_on = net.all_on()

    # One sampled path, and the child network of exactly that path.
    mask = gates.sample_uniform(rng, all_on, net.slots)
    arch = Architecture(tuple(tuple(sub[j] for j in range(len(sub)) if mask[c, j])
                              for c, sub in enumerate(net.subspaces)))
    # The same layer implementations as the supernet (fused BN), so the ratio measures the supernet alone.
    child = build_child(NetworkSpec(space, arch, name="benchmark_child"), Namespace.supernet())
    child_step = child_train_step(child, trainer)
    s_masks, u_masks, choice = gates.sample_two_paths(rng, trainer.alpha(), all_on, net.slots)
    mask_t = tf.constant(mask)
    gate_args = (images, labels, tf.constant(s_masks), tf.constant(u_masks), tf.constant(choice),
                 tf.constant(all_on))
    phases["build (supernet + child)"] = time.perf_counter() - t0

    calls: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]] = {
        "child": (child_step, (images, labels)),
        "weight": (trainer.weight_step, (images, labels, mask_t)),
        "gate": (trainer.gate_step, gate_args),
    }
    for key, (fn, args) in calls.items():
        t0 = time.perf_counter()
        timed(fn, *args)
        phases[f"first {key} step (trace)"] = time.perf_counter() - t0
        for _ in range(WARMUP.value - 1):
            timed(fn, *args)

    t0 = time.perf_counter()
    samples: dict[str, list[float]] = {key: [] for key in calls}
    for _ in range(REPEATS.value):
        for key, (fn, args) in calls.items():
            samples[key].append(timed(fn, *args))
    phases["interleaved timing"] = time.perf_counter() - t0
    med = {key: statistics.median(v) for key, v in samples.items()}
    step_ratio = med["weight"] / med["child"]
    gate_ratio = med["gate"] / med["weight"]
    # Cross-check, less sensitive to slow drifts of the machine's load: median of the per-round ratios.
    paired_step = statistics.median(w / c for w, c in zip(samples["weight"], samples["child"]))
    paired_gate = statistics.median(g / w for g, w in zip(samples["gate"], samples["weight"]))

    # Tracing over many freshly sampled paths.
    t0 = time.perf_counter()
    state = new_round_state(trainer, [[] for _ in net.subspaces], SEED.value + 1)
    batches = [synthetic_batch(space, batch, rng) for _ in range(4)]
    heldout = iter(range(10**9))
    before = sum(trainer.tracing_counts())
    after_10 = None
    for i in range(STEPS.value):
        trainer.step(state, batches[i % 2], lambda: batches[2 + next(heldout) % 2])
        if i == 9:
            after_10 = sum(trainer.tracing_counts())
    traces = sum(trainer.tracing_counts())
    if after_10 is None:
        after_10 = traces
    phases[f"{STEPS.value} RoundTrainer.step()"] = time.perf_counter() - t0
    total = time.perf_counter() - t_all

    n_cells = len(space.cells())
    ops_on = int(mask.sum())
    print("supernet benchmark (synthetic data: random 0-255 float images, random labels; one process, one run)")
    print(f"  TF {tf.__version__}, {os.cpu_count()} CPU cores, devices: "
          f"{', '.join(d.device_type for d in tf.config.list_logical_devices())}")
    print(f"  space {SPACE.value!r}: layout {space.layout}, counts {','.join(map(str, space.counts))}, "
          f"channels {','.join(map(str, space.channels))}, pool {space.get_pool().name} "
          f"({len(space.get_pool())} ops), {space.input_size}x{space.input_size}x{space.input_channels}")
    print(f"  {n_cells} cells x {OPS_PER_CELL.value} ops per cell (seed {SEED.value}), batch {batch}")
    print(f"  timed path: {ops_on} of {int(all_on.sum())} ops on; child MACs per image "
          f"{_child_macs(child) / 1e6:.2f}M; gate step S|U: {int((s_masks | u_masks).sum())} ops run")
    print(f"  warm-up {WARMUP.value} calls each, then {REPEATS.value} interleaved rounds (child, weight, gate)")
    print()
    print(f"  {'figure':<34} {'median':>10} {'min':>10} {'max':>10}")
    labels_ = {"child": "child train step (ms)", "weight": "supernet weight step (ms)",
               "gate": "supernet gate step (ms)"}
    for key, label in labels_.items():
        v = samples[key]
        print(f"  {label:<34} {1e3 * med[key]:>10.2f} {1e3 * min(v):>10.2f} {1e3 * max(v):>10.2f}")
    print()
    print(f"  {'ratio / count':<34} {'measured':>10} {'target':>10} {'':>6}")
    print(f"  {'step_ratio (weight / child)':<34} {step_ratio:>10.3f} {'<= %.2f' % TARGETS['step_ratio']:>10} "
          f"{verdict(step_ratio <= TARGETS['step_ratio']):>6}")
    print(f"  {'  (median of per-round ratios)':<34} {paired_step:>10.3f}")
    print(f"  {'gate_ratio (gate / weight)':<34} {gate_ratio:>10.3f} {'<= %.2f' % TARGETS['gate_ratio']:>10} "
          f"{verdict(gate_ratio <= TARGETS['gate_ratio']):>6}")
    print(f"  {'  (median of per-round ratios)':<34} {paired_gate:>10.3f}")
    print(f"  {'traces before the steps':<34} {before:>10d}")
    print(f"  {'traces after 10 steps':<34} {after_10:>10d}")
    print(f"  {'traces after %d steps' % STEPS.value:<34} {traces:>10d} {'no growth':>10} "
          f"{verdict(traces == after_10):>6}")
    print(f"  (traces = weight + gate step tracing counts; {STEPS.value} steps, gate step every "
          f"{config.gate_every}, a new path each step)")
    print()
    print("  wall time (s)")
    for name, seconds in phases.items():
        print(f"    {name:<32} {seconds:>8.1f}")
    print(f"    {'total':<32} {total:>8.1f}")
    return {"step_ratio": round(step_ratio, 4), "gate_ratio": round(gate_ratio, 4), "traces": int(traces)}


def _child_macs(model: Any) -> int:
    from nse_tf.nets.counting import count_macs

    return count_macs(model)


QUICK = {"space": "small", "pool": "mac27", "counts": (0, 1, 1, 1, 0, 0), "channels": (8, 16, 24, 32, 48, 64, 128),
         "ops_per_cell": 4, "batch_size": 64, "heldout_examples": 2000, "bn_batches": 20}  # fashion_mnist_quick.flags


def run_evaluation() -> dict[str, Any]:
    """The end-of-round evaluation of the quick space's supernet on Fashion-MNIST: today's procedure (the
    quick flags: 20 batches of 64 re-estimating BN by EMA, then 2000 held-out images in batches of 64) against
    the shortcut (exact statistics of --bn_images of those images, --heldout_images held-out images in batches
    of --eval_batch_size), on the same architectures of a supernet trained --train_steps steps."""
    import numpy as np
    import tensorflow as tf

    from nse_tf.data.pipeline import DataConfig, load_splits
    from nse_tf.search import gates
    from nse_tf.search.round_trainer import OptimConfig, PenaltyConfig, RoundConfig, RoundTrainer, new_round_state
    from nse_tf.utils.metrics import kendall_tau
    from nse_tf.space.macro import get_space

    t_all = time.perf_counter()
    rng = np.random.default_rng(SEED.value)
    space = get_space(QUICK["space"], pool=QUICK["pool"], counts=QUICK["counts"], channels=QUICK["channels"])
    subspaces = random_subspaces(space, QUICK["ops_per_cell"], rng)
    splits = load_splits(DataConfig("fashion_mnist", heldout_examples=QUICK["heldout_examples"],
                                    batch_size=QUICK["batch_size"], seed=SEED.value))
    steps = TRAIN_STEPS.value
    trainer = RoundTrainer(space, subspaces, OptimConfig(weight_lr=0.1, warmup_lr=0.02, warmup_epochs=0.03),
                           PenaltyConfig(target=6.0, a=0.0),
                           RoundConfig(steps, splits.steps_per_epoch, QUICK["batch_size"]))
    host = new_round_state(trainer, [[] for _ in subspaces], SEED.value)
    train_it, heldout_it = iter(splits.train), iter(splits.heldout_repeat)
    t_train = time.perf_counter()
    while host.step < steps:
        trainer.step(host, next(train_it), lambda: next(heldout_it))
    train_seconds = time.perf_counter() - t_train
    archs = [gates.sample_uniform(rng, host.active, trainer.net.slots) for _ in range(ARCHS.value)]
    reference_recal = list(splits.train.take(max(REFERENCE_BN_BATCHES.value, QUICK["bn_batches"]))
                           .map(lambda x, y: x))
    recal = reference_recal[:QUICK["bn_batches"]]
    recal_short = [tf.concat(recal, 0)[:BN_IMAGES.value]]
    heldout_today = splits.heldout
    heldout_big = splits.heldout.unbatch().take(HELDOUT_IMAGES.value).batch(EVAL_BATCH_SIZE.value).cache()
    heldout_all = splits.heldout.unbatch().batch(EVAL_BATCH_SIZE.value).cache()

    def today(masks):
        return trainer.evaluate(masks, recal, heldout_today)

    def shortcut(masks):
        return trainer.evaluate(masks, recal_short, heldout_big, "exact", BN_BATCH_SIZE.value)

    today(archs[0]), shortcut(archs[0])  # traces, untimed
    seconds: dict[str, list[float]] = {"today": [], "shortcut": []}
    accuracies: dict[str, list[list[float]]] = {"today": [], "shortcut": []}
    for _ in range(BLOCKS.value):  # whole blocks in the search's order, alternating, so load hits both alike
        for name, procedure in (("today", today), ("shortcut", shortcut)):
            start = time.perf_counter()
            accuracies[name].append([procedure(m) for m in archs])
            seconds[name].append((time.perf_counter() - start) / len(archs))
    today_acc, short_acc = accuracies["today"][0], accuracies["shortcut"][0]
    per_arch = {k: statistics.median(v) for k, v in seconds.items()}
    tau = kendall_tau(today_acc, short_acc)
    # The ranking both approximate: exact statistics of many images (today's included), every held-out image.
    # Untimed, once: it only scores the two procedures' fidelity.
    start = time.perf_counter()
    reference_acc = [trainer.evaluate(m, reference_recal, heldout_all, "exact", BN_BATCH_SIZE.value) for m in archs]
    reference_seconds = (time.perf_counter() - start) / len(archs)
    today_vs_reference = kendall_tau(today_acc, reference_acc)
    short_vs_reference = kendall_tau(short_acc, reference_acc)
    repeat_tau = kendall_tau(accuracies["today"][0], accuracies["today"][-1]) if BLOCKS.value > 1 else None
    print(f"evaluation of the quick space's supernet after {steps} steps ({train_seconds:.0f} s of training), "
          f"{len(archs)} uniformly sampled architectures, {splits.num_heldout} held-out images, "
          f"{BLOCKS.value} alternating blocks per procedure:")
    print(f"  today    {per_arch['today']:.3f} s per architecture (EMA over {QUICK['bn_batches']} batches of "
          f"{QUICK['batch_size']}, held-out batches of {QUICK['batch_size']}), median top-1 "
          f"{statistics.median(today_acc):.4f}")
    print(f"  shortcut {per_arch['shortcut']:.3f} s per architecture (exact statistics of the first "
          f"{min(BN_IMAGES.value, 1280)} of those images in passes of {BN_BATCH_SIZE.value}, the first "
          f"{min(HELDOUT_IMAGES.value, splits.num_heldout)} held-out images in batches of {EVAL_BATCH_SIZE.value}), "
          f"median top-1 {statistics.median(short_acc):.4f}")
    print(f"  speed-up {per_arch['today'] / per_arch['shortcut']:.2f}x; Kendall tau shortcut vs today {tau:.3f}"
          + (f" (today vs itself a block later: {repeat_tau:.3f})" if repeat_tau is not None else "")
          + f"; target <= 1.5 s per architecture: {verdict(per_arch['shortcut'] <= 1.5)}")
    print(f"  reference {reference_seconds:.3f} s per architecture (exact statistics of "
          f"{len(reference_recal) * QUICK['batch_size']} images, all {splits.num_heldout} held-out images), median "
          f"top-1 {statistics.median(reference_acc):.4f}; Kendall tau against it: today {today_vs_reference:.3f}, "
          f"shortcut {short_vs_reference:.3f}")
    print(f"  total {time.perf_counter() - t_all:.0f} s")
    return {"seconds_per_arch": round(per_arch["shortcut"], 4), "archs": len(archs),
            "heldout_examples": min(HELDOUT_IMAGES.value, int(splits.num_heldout)), "today_seconds_per_arch": round(per_arch["today"], 4),
            "kendall_tau_vs_today": round(tau, 4),
            "today_repeat_tau": None if repeat_tau is None else round(repeat_tau, 4),
            "today_tau_vs_reference": round(today_vs_reference, 4),
            "shortcut_tau_vs_reference": round(short_vs_reference, 4)}


def random_architectures(space: Any, n: int, rng: Any) -> list[list[list[int]]]:
    """``n`` distinct architectures: per cell 0-3 operations (at least 1 in R/E cells), drawn uniformly."""
    n_pool, found = len(space.get_pool()), {}
    while len(found) < n:
        cells = [sorted(int(i) for i in rng.choice(n_pool, size=int(rng.integers(0 if c.may_be_empty else 1, 4)),
                                                    replace=False)) for c in space.cells()]
        found.setdefault(tuple(map(tuple, cells)), cells)
    return list(found.values())


def run_latency() -> dict[str, Any]:
    """Whole networks' LiteRT times against the table's prediction, on the quick latency space
    (configs/fashion_mnist_latency_quick.flags): per TFLite form, the table's pieces and --latency_archs random
    architectures exported, then all timed back to back (--latency_rounds interleaved rounds of --latency_runs
    invokes, 1 thread, XNNPACK) and the table assembled from the pieces' times; the correction
    (nse_tf.cost.latency_prediction) is fitted on the first --fit_archs and scored on the others, beside the
    table's plain sum."""
    import contextlib
    import tempfile

    import keras
    import numpy as np

    from nse_tf.cost import conversion, latency_prediction, latency_table, measurement
    from nse_tf.cost.model import latency_model
    from nse_tf.export.timing import interleaved_latency_ms, require_quiet_machine
    from nse_tf.nets.child import build_child
    from nse_tf.space.architecture import Architecture, NetworkSpec
    from nse_tf.space.macro import get_space
    from nse_tf.utils.atomic import atomic_write_json

    require_quiet_machine(0.3)
    t_all = time.perf_counter()
    space = get_space(QUICK["space"], pool=QUICK["pool"], counts=QUICK["counts"], channels=QUICK["channels"])
    archs = random_architectures(space, LATENCY_ARCHS.value, np.random.default_rng(SEED.value))
    fit_part, check_part = slice(0, FIT_ARCHS.value), slice(FIT_ARCHS.value, None)
    results: dict[str, Any] = {}
    for fmt in LATENCY_FORMATS.value:
        with contextlib.ExitStack() as stack:
            if LATENCY_OUT.value:
                workdir = LATENCY_OUT.value
            else:
                workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="nse-latency-bench-"))
            for sub in ("pieces", "networks"):
                os.makedirs(os.path.join(workdir, f"{fmt}_{sub}"), exist_ok=True)
            pieces = measurement.write_pieces(space, fmt, os.path.join(workdir, f"{fmt}_pieces"))
            paths = []
            for i, cells in enumerate(archs):
                spec = NetworkSpec(space, Architecture.from_cells(cells, space.get_pool()), f"arch{i}")
                path = os.path.join(workdir, f"{fmt}_networks", f"arch{i:03d}.tflite")
                with open(path, "wb") as f:
                    f.write(conversion.convert_network(build_child(spec), fmt))
                keras.backend.clear_session(free_memory=False)
                paths.append(path)
            # the table's pieces and the networks in the same rounds: both see the same states of the machine
            timed = interleaved_latency_ms(list(pieces.values()) + paths, LATENCY_ROUNDS.value, LATENCY_RUNS.value)
        medians = {path: t["median_ms"] for path, t in timed.items()}
        table = measurement.assemble_timed(space, pieces, medians, tflite_format=fmt, num_threads=1,
                                           runs=LATENCY_RUNS.value, rounds=LATENCY_ROUNDS.value)
        measured = [medians[p] for p in paths]
        if LATENCY_OUT.value:
            latency_table.save(table, os.path.join(LATENCY_OUT.value, f"{fmt}_table.json"))
            atomic_write_json(os.path.join(LATENCY_OUT.value, f"{fmt}_networks.json"), {
                "format": "nse_tf.latency_benchmark_networks", "version": 1, "tflite_format": fmt,
                "quick_space": QUICK, "seed": SEED.value, "fit_archs": FIT_ARCHS.value,
                "rounds": LATENCY_ROUNDS.value, "runs": LATENCY_RUNS.value,
                "pieces": {name: timed[path]["round_medians_ms"] for name, path in pieces.items()},
                "networks": [{"cells": [list(map(int, c)) for c in cells], "median_ms": timed[p]["median_ms"],
                              "round_medians_ms": timed[p]["round_medians_ms"]} for cells, p in zip(archs, paths)]})
        correction = latency_prediction.fit(table, space, archs[fit_part], measured[fit_part])
        predicted = [correction.predict(table, space, cells) for cells in archs]
        table_model = latency_model(table, space)
        plain = [table_model.architecture_cost(cells) for cells in archs]
        scores = latency_prediction.accuracy(predicted[check_part], measured[check_part])
        raw = latency_prediction.accuracy(plain[check_part], measured[check_part])
        repeat = latency_prediction.repeat_agreement([timed[p]["round_medians_ms"] for p in paths[check_part]])
        results[fmt] = {**{k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()},
                        "table_sum": {k: round(v, 4) if isinstance(v, float) else v for k, v in raw.items()},
                        "repeat": repeat and {k: round(v, 4) if isinstance(v, float) else v for k, v in repeat.items()},
                        "weights": [round(w, 5) for w in correction.weights],
                        "measured_ms_range": [round(min(measured), 4), round(max(measured), 4)]}
        print(f"{fmt}: {len(archs)} networks ({min(measured):.3f}-{max(measured):.3f} ms), correction fitted on "
              f"{FIT_ARCHS.value}, scored on {scores['n']}: within +-10% {scores['within_10pct']:.2f} "
              f"(the table's sum alone {raw['within_10pct']:.2f}), RMSE {scores['rmse_ms']:.4f} ms, Kendall tau "
              f"{scores['kendall_tau']:.3f}; target >= 0.9 within +-10%: {verdict(scores['within_10pct'] >= 0.9)}")
        if repeat:
            print(f"  the measurement against itself (odd rounds' median against even rounds'): within +-10% "
                  f"{repeat['within_10pct']:.2f}, RMSE {repeat['rmse_ms']:.4f} ms, "
                  f"Kendall tau {repeat['kendall_tau']:.3f}")
    print(f"  total {time.perf_counter() - t_all:.0f} s")
    worst = min(results.values(), key=lambda r: r["within_10pct"])
    return {"within_10pct": worst["within_10pct"], "rmse_ms": worst["rmse_ms"], "kendall_tau": worst["kendall_tau"],
            "n": worst["n"], **results}


BENCHMARKS: dict[str, Callable[[], dict[str, Any]]] = {"supernet": run_supernet, "evaluation": run_evaluation,
                                                       "latency": run_latency}
CHECKS: dict[str, Callable[[], None]] = {"supernet": check_supernet, "evaluation": check_evaluation,
                                         "latency": check_latency}  # each benchmark's flags, before its work


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in BENCHMARKS:
        print(f"benchmark.py: error: give one benchmark: {' | '.join(BENCHMARKS)} (got {argv[1:]})", file=sys.stderr)
        return 2
    try:
        CHECKS[argv[1]]()
    except FlagError as err:
        print(f"benchmark.py: error: {err}", file=sys.stderr)
        return 2
    result = BENCHMARKS[argv[1]]()
    if JSON.value:
        sys.stdout.flush()
        print(json.dumps(result))
    return 0


def run() -> None:
    """``python tools/benchmark.py``: a bad flag or benchmark name is one line and exit code 2, as in every tool."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("benchmark.py"))
