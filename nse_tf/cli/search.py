"""Run an NSE search: ``python tools/search.py --flagfile=configs/fashion_mnist_quick.flags``.

Rerunning with the same --run_dir resumes where the run stopped. Bad flags end with one line
naming the flag and exit code 2.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from nse_tf.utils.cli import FlagError, flags_parser  # noqa: E402

F = flags.FLAGS
# Run
flags.DEFINE_string("run_dir", None, "Directory for flags, state, checkpoints, events and results (resumes).")
flags.DEFINE_integer("seed", 0, "Seed of the op shuffles, branch-set sampling, weight init and data order.")
flags.DEFINE_enum("strategy", "mirrored", ["mirrored", "multi_worker", "default"],
                  "tf.distribute strategy: mirrored (local devices), multi_worker (TF_CONFIG), default.")
flags.DEFINE_integer("logical_cpus", 0, "Split the CPU into this many logical devices (tests MirroredStrategy).")
flags.DEFINE_string("init_from", None, "Run directory of a finished search to continue into a larger --pool.")
flags.DEFINE_integer("threads", 0, "TensorFlow CPU threads (0: TensorFlow's default); two verification shards "
                     "(--verify_shard) with one thread each train faster in total on 2 cores.")
flags.DEFINE_integer("stop_after_steps", None, "Stop (checkpointed) after this many steps of the current round "
                     "(the round's length or more: trained, before its evaluation).")
# Space
flags.DEFINE_string("space", "small", "Preset macro space: small, imagenet_mac, imagenet_latency.")
flags.DEFINE_string("pool", None, "Operation pool: mb19, mac27, mac72, or comma-separated op names.")
flags.DEFINE_string("layout", None, "NR, NER, or a transition string such as RRRERE.")
flags.DEFINE_list("counts", None, "N-cell counts per stage, e.g. 1,3,3,3,3,3.")
flags.DEFINE_list("channels", None, "Stem channels, then one per R/E cell.")
flags.DEFINE_float("scale", None, "Width multiplier (all channels but the stem's).")
flags.DEFINE_integer("input_size", None, "Input resolution.")
flags.DEFINE_integer("num_classes", None, "Number of classes.")
flags.DEFINE_integer("stem_stride", None, "Stem stride (1 for 28/32-pixel inputs).")
flags.DEFINE_list("r_strides", None, "Stride (1 or 2) of each R cell.")
flags.DEFINE_integer("head_channels", None, "Channels of the 1x1 head conv.")
# Data
flags.DEFINE_string("dataset", "fashion_mnist", "fashion_mnist, tfds:<name> or folder:<path>.")
flags.DEFINE_string("data_dir", None, "IDX directory, tfds data_dir, or imagenet2012 manual_dir.")
flags.DEFINE_integer("image_size", None, "Resize images to this size (default: native).")
flags.DEFINE_integer("heldout_examples", 5000, "Held-out examples carved from the training split.")
flags.DEFINE_integer("batch_size", 128, "Global batch size (split across replicas).")
flags.DEFINE_boolean("augment", True, "Standard augmentation of training batches.")
# Training of a round
flags.DEFINE_float("epochs_per_round", 100.0, "Supernet training epochs per round.")
flags.DEFINE_integer("steps_per_round", None, "Steps per round (overrides --epochs_per_round).")
flags.DEFINE_float("weight_lr", 0.4, "Peak SGD learning rate (cosine to 0 each round).")
flags.DEFINE_float("warmup_lr", 0.1, "Learning rate at the start of warm-up.")
flags.DEFINE_float("warmup_epochs", 2.0, "Warm-up epochs per round.")
flags.DEFINE_float("weight_decay", 4e-5, "L2 on conv/dense kernels (not BN, not biases).")
flags.DEFINE_float("momentum", 0.9, "Nesterov momentum.")
flags.DEFINE_float("gate_lr", 0.005, "Adam learning rate of the gate logits (beta1 0, beta2 0.999).")
flags.DEFINE_integer("gate_every", 2, "Gate step every this many iterations (Aiter).")
flags.DEFINE_float("gate_warmup", 0.0, "The share of each round's first steps that train weights only, no gate "
                   "steps (ours; TuNAS freezes its controller for the first 0.25).")
flags.DEFINE_float("prune_threshold", -2.0, "Self-simplification: ops whose logit falls below leave.")
flags.DEFINE_enum("cost", "macs", ["macs", "latency"],
                  "What the penalty and the end-of-round window measure: M MACs (FLOPs search) or LiteRT ms "
                  "from a latency lookup table (latency search).")
flags.DEFINE_float("target_macs", 300.0, "Resource target in M MACs (multiply-accumulates), with --cost=macs.")
flags.DEFINE_float("target_ms", None, "Resource target in ms of the latency table, with --cost=latency.")
flags.DEFINE_string("latency_table", None, "Latency lookup table (JSON) of --cost=latency; measured with LiteRT on "
                    "this CPU and written there when absent (default: <run_dir>/latency_table.json).")
flags.DEFINE_enum("latency_format", "float32", ["float32", "int8"],
                  "The TFLite form the latency table times (--cost=latency): float32, or int8 as phones run it.")
flags.DEFINE_float("penalty_a", 1e-5, "Penalty a * |E[cost] - target|^b: a (per M MACs, or per ms).")
flags.DEFINE_float("penalty_b", 2.0, "Penalty exponent b.")
flags.DEFINE_integer("checkpoint_every", 200, "Checkpoint every this many steps.")
flags.DEFINE_integer("summary_every", 10, "TensorBoard scalars every this many steps.")
# Evolution
flags.DEFINE_integer("ops_per_cell", 5, "K: operations per cell sub-space.")
flags.DEFINE_integer("max_rounds", None, "Cap on rounds (default (pool size - 1) // (K - 1)).")
flags.DEFINE_integer("num_archs", 2000, "Architectures sampled and evaluated at the end of a round.")
flags.DEFINE_integer("num_extra", 100, "Extra architectures just below the window (dominance only).")
flags.DEFINE_float("mac_drift", 10.0, "Half-width of the end-of-round MACs window, in M MACs (--cost=macs).")
flags.DEFINE_float("extra_margin", 10.0, "Width of the extras' window below it, in M MACs (--cost=macs).")
flags.DEFINE_float("drift_ms", None, "Half-width of the end-of-round latency window, in ms (--cost=latency; "
                   "default 10% of --target_ms).")
flags.DEFINE_float("extra_margin_ms", None, "Width of the extras' window below it, in ms (--cost=latency; "
                   "default 10% of --target_ms).")
flags.DEFINE_list("window", None, "End-of-round window low,high in the cost unit, instead of the target +- the "
                  "drift (the paper's latency search: target 66, window 66,78; extras below low by the margin).")
flags.DEFINE_integer("max_sample_draws", 200_000, "Draws from the learned gates to find --num_archs unique "
                     "architectures in the window (and --num_extra below it) at the end of a round.")
flags.DEFINE_integer("bn_batches", 50, "BN recalibration batches before each evaluation.")
flags.DEFINE_enum("bn_mode", "ema", ["ema", "exact"], "How the BN statistics of an evaluated path are re-estimated "
                  "from those batches: ema (batch by batch at BN momentum, the method's) or exact (their mean and "
                  "variance over all the images, in passes of --bn_batch_size).")
flags.DEFINE_integer("bn_batch_size", 512, "Images per forward pass of --bn_mode=exact.")
flags.DEFINE_enum("bn_start", "previous", ["previous", "trained"], "Where --bn_mode=ema starts each architecture: "
                  "previous (what the one before left, the released code's) or trained (the supernet's statistics "
                  "restored first: results independent of the order, so a multi-worker search splits the list).")
flags.DEFINE_integer("eval_batch_size", None, "Held-out images per inference batch of the end-of-round evaluation "
                     "(default: --batch_size).")
flags.DEFINE_boolean("inherit_weights", False, "Keep weights of ops that stay between rounds (ours).")
flags.DEFINE_boolean("preserve_prev", True, "Protect the previous optimized subset from pruning.")
# Levers of ours (issue 30): where candidates come from, and the verification stage
flags.DEFINE_float("uniform_fraction", 0.0, "The share of --num_archs end-of-round candidates drawn uniformly over "
                   "the window's architectures of the round's active operations, the rest from the gates.")
flags.DEFINE_multi_string("exclude_ops", [], "CELLS:OP,OP,...: operations these cells never hold; CELLS is a cell "
                          "index, a range 1-8, or all (repeat the flag for several groups; cells count from 0).")
flags.DEFINE_list("seed_archs", [], "Network JSONs of this space (e.g. the hand-designed network at the budget and "
                  "its one-change neighbours): their operations stay in every round's sub-spaces and they are "
                  "evaluated every round beside the front, so the search compares its pick with them.")
flags.DEFINE_integer("verify_top", 0, "After the last round, train alone a shortlist (the final front, this many "
                     "best of the last round by shared weights, the seed architectures) and pick the best mean "
                     "held-out top-1; 0: no verification, the pick by shared weights (the method's).")
flags.DEFINE_list("verify_archs", [], "Further network JSONs of this space trained beside the verification's "
                  "shortlist with the same recipe (e.g. the hand-designed network at the budget); they may be picked.")
flags.DEFINE_integer("verify_seeds", 2, "Seeds of each shortlisted architecture's stand-alone training.")
flags.DEFINE_integer("verify_epochs", 3, "Epochs of the verification's stand-alone recipe (standalone.SHORT_RECIPE).")
flags.DEFINE_string("verify_shard", "0/1", "i/n: this process trains verification jobs i, i + n, ... (n processes "
                    "or machines share the shortlist); the one finishing the last job writes the pick.")


def _ints(values: list[str] | None, flag: str) -> tuple[int, ...] | None:
    if values is None:
        return None
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise FlagError(flag, f"expected comma-separated integers, got {','.join(values)}") from None


def cost_flags() -> tuple[str, float, float, float]:
    """(target flag, target, drift, extra margin) of --cost; flags of the other cost are refused by name."""
    unit_flags = {"macs": ("target_macs", "mac_drift", "extra_margin"),
                  "latency": ("target_ms", "drift_ms", "extra_margin_ms")}
    other = unit_flags["latency" if F.cost == "macs" else "macs"]
    for flag in other:
        if F[flag].present:
            raise FlagError(flag, f"does not apply to --cost={F.cost}; use "
                                  f"--{unit_flags[F.cost][other.index(flag)]}")
    if F.cost == "macs":
        if F["latency_format"].present:
            raise FlagError("latency_format", "applies to --cost=latency only (the TFLite form its table times)")
        return "target_macs", F.target_macs, F.mac_drift, F.extra_margin
    if F.target_ms is None:
        raise FlagError("target_ms", "is required with --cost=latency")
    tenth = 0.1 * F.target_ms
    return ("target_ms", F.target_ms, tenth if F.drift_ms is None else F.drift_ms,
            tenth if F.extra_margin_ms is None else F.extra_margin_ms)


def parse_exclusions(values: list[str], n_cells: int, pool_names: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """--exclude_ops groups as a tuple of excluded op names per cell (empty: nothing excluded anywhere)."""
    if not values:
        return ()
    excluded: list[set[str]] = [set() for _ in range(n_cells)]
    for value in values:
        cells_text, _, ops_text = value.partition(":")
        ops = [op.strip() for op in ops_text.split(",") if op.strip()]
        if not ops:
            raise FlagError("exclude_ops", f"expected CELLS:OP,OP,..., got {value!r}")
        unknown = [op for op in ops if op not in pool_names]
        if unknown:
            raise FlagError("exclude_ops", f"{unknown[0]} is not in the pool")
        try:
            if cells_text == "all":
                cells = range(n_cells)
            elif "-" in cells_text:
                first, last = (int(v) for v in cells_text.split("-"))
                cells = range(first, last + 1)
            else:
                cells = range(int(cells_text), int(cells_text) + 1)
        except ValueError:
            raise FlagError("exclude_ops", f"cells must be an index, a range such as 1-8, or all; got "
                                           f"{cells_text!r}") from None
        if not cells or cells[0] < 0 or cells[-1] >= n_cells:
            raise FlagError("exclude_ops", f"cells {cells_text} are outside the space's cells 0-{n_cells - 1}")
        for c in cells:
            excluded[c].update(ops)
    for c, ops in enumerate(excluded):
        if len(ops) >= len(pool_names):
            raise FlagError("exclude_ops", f"cell {c}: every operation of the pool is excluded")
    return tuple(tuple(op for op in pool_names if op in ops) for ops in excluded)


def build_config():  # -> SearchConfig (imports deferred until TF is configured)
    from nse_tf.cost.latency_table import LatencyTableError
    from nse_tf.data.pipeline import DataConfig
    from nse_tf.search.config import SearchConfig
    from nse_tf.search.evolution import EvolutionConfig, StateError
    from nse_tf.search.round_trainer import OptimConfig, PenaltyConfig
    from nse_tf.data.names import ARRAY_KINDS
    from nse_tf.search.seed_archs import SeedArchError, resolve_seed_archs
    from nse_tf.search.standalone import Shard
    from nse_tf.search.strategy import require_shared_latency_table
    from nse_tf.search.verification import VerifyConfig
    from nse_tf.space.macro import get_space

    if not F.run_dir:
        raise FlagError("run_dir", "is required")
    overrides = {k: v for k, v in {
        "pool": F.pool, "layout": F.layout, "counts": _ints(F.counts, "counts"),
        "channels": _ints(F.channels, "channels"), "scale": F.scale, "input_size": F.input_size,
        "num_classes": F.num_classes, "stem_stride": F.stem_stride, "r_strides": _ints(F.r_strides, "r_strides"),
        "head_channels": F.head_channels}.items() if v is not None}
    if F.pool is not None:
        from nse_tf.space.ops import get_pool

        try:
            get_pool(F.pool)
        except ValueError as err:
            raise FlagError("pool", str(err)) from None
    try:
        space = get_space(F.space, **overrides)
    except ValueError as err:
        flag = next((k for k in overrides if str(err).startswith(k)), None) or next(
            (k for k in overrides if f" {k}" in str(err)), "space")
        raise FlagError(flag, str(err)) from None

    def make(cls, flag_of: dict[str, str], **kwargs):
        try:
            return cls(**kwargs)
        except ValueError as err:
            # the field the message starts with, else the first one it names as a word
            field = next((k for k in kwargs if str(err).startswith(k)), None) or next(
                (k for k in kwargs if re.search(rf"\b{k}\b", str(err))), None)
            raise FlagError(flag_of.get(field, field or "flagfile"), str(err)) from None

    data = make(DataConfig, {}, dataset=F.dataset, data_dir=F.data_dir, image_size=F.image_size,
                heldout_examples=F.heldout_examples, batch_size=F.batch_size, augment=F.augment, seed=F.seed)
    optim = make(OptimConfig, {}, weight_lr=F.weight_lr, warmup_lr=F.warmup_lr, warmup_epochs=F.warmup_epochs,
                 weight_decay=F.weight_decay, momentum=F.momentum, gate_lr=F.gate_lr)
    target_flag, target, drift, extra_margin = cost_flags()
    drift_flag, margin_flag = ("mac_drift", "extra_margin") if F.cost == "macs" else ("drift_ms", "extra_margin_ms")
    penalty = make(PenaltyConfig, {"target": target_flag, "a": "penalty_a", "b": "penalty_b"},
                   target=target, a=F.penalty_a, b=F.penalty_b)
    window = None
    if F.window is not None:
        if F[drift_flag].present:
            raise FlagError(drift_flag, "sets the window's half-width; --window gives its bounds: use one of them")
        try:
            window = tuple(float(v) for v in F.window)
        except ValueError:
            raise FlagError("window", f"expected two numbers low,high, got {','.join(F.window)!r}") from None
    evolution = make(EvolutionConfig, {"drift": drift_flag, "extra_margin": margin_flag, "window": "window",
                                       "excluded_ops": "exclude_ops"},
                     window=window,
                     ops_per_cell=F.ops_per_cell, max_rounds=F.max_rounds,
                     num_archs=F.num_archs, num_extra=F.num_extra, drift=drift,
                     extra_margin=extra_margin, bn_batches=F.bn_batches, bn_mode=F.bn_mode,
                     bn_batch_size=F.bn_batch_size, bn_start=F.bn_start, eval_batch_size=F.eval_batch_size,
                     max_sample_draws=F.max_sample_draws,
                     inherit_weights=F.inherit_weights,
                     preserve_prev=F.preserve_prev, uniform_fraction=F.uniform_fraction,
                     excluded_ops=parse_exclusions(F.exclude_ops, len(space.cells()), space.get_pool().names))
    if F.init_from and (F.exclude_ops or F.seed_archs):
        raise FlagError("exclude_ops" if F.exclude_ops else "seed_archs", "does not apply to a continued search "
                        "(--init_from): it shapes a search's first round")
    try:
        resolve_seed_archs(F.seed_archs, space, evolution.excluded_ops)
    except SeedArchError as err:
        raise FlagError("seed_archs", str(err)) from None
    verify = make(VerifyConfig, {"top": "verify_top", "seeds": "verify_seeds", "epochs": "verify_epochs"},
                  top=F.verify_top, seeds=F.verify_seeds, epochs=F.verify_epochs, archs=tuple(F.verify_archs))
    try:
        resolve_seed_archs(verify.archs, space)
    except SeedArchError as err:
        raise FlagError("verify_archs", str(err)) from None
    if verify.enabled and F.dataset.split(":")[0] not in ARRAY_KINDS:
        raise FlagError("verify_top", f"the verification trains on {'/'.join(ARRAY_KINDS)} datasets; "
                                      f"--dataset={F.dataset} is not one")
    try:
        Shard.parse(F.verify_shard)
    except ValueError as err:
        raise FlagError("verify_shard", str(err)) from None
    if not 0 <= F.gate_warmup <= 1:
        raise FlagError("gate_warmup", f"must be in [0, 1], got {F.gate_warmup}")
    for flag in ("epochs_per_round", "gate_every", "checkpoint_every", "summary_every"):
        if getattr(F, flag) <= 0:
            raise FlagError(flag, f"must be positive, got {getattr(F, flag)}")
    if F.steps_per_round is not None and F.steps_per_round <= 0:
        raise FlagError("steps_per_round", f"must be positive, got {F.steps_per_round}")
    config = SearchConfig(run_dir=F.run_dir, space=space, data=data, optim=optim, penalty=penalty, evolution=evolution,
                          cost=F.cost, latency_table=F.latency_table, latency_format=F.latency_format,
                          epochs_per_round=F.epochs_per_round, steps_per_round=F.steps_per_round,
                          gate_every=F.gate_every, gate_warmup=F.gate_warmup, prune_threshold=F.prune_threshold,
                          checkpoint_every=F.checkpoint_every, summary_every=F.summary_every, seed=F.seed,
                          strategy=F.strategy, init_from=F.init_from, seed_archs=tuple(F.seed_archs), verify=verify,
                          stop_after_steps=F.stop_after_steps, verify_shard=F.verify_shard)
    try:
        if F.strategy == "multi_worker":
            require_shared_latency_table(config)
        model = config.build_cost_model()
    except (LatencyTableError, StateError) as err:
        raise FlagError("latency_table", str(err).removeprefix("--latency_table: ")) from None
    cheapest, largest = model.bounds(space)
    if not cheapest < target < largest:
        raise FlagError(target_flag, f"{target:g} {model.unit} is impossible in this space: its networks range "
                                     f"from {cheapest:.3g} to {largest:.3g} {model.unit}")
    if window is not None and not (window[0] < largest and window[1] > cheapest):
        raise FlagError("window", f"({window[0]:g}, {window[1]:g}) {model.unit} holds no network of this space: "
                                  f"they range from {cheapest:.3g} to {largest:.3g} {model.unit}")
    return config


def configure_devices(logical_cpus: int) -> None:
    import tensorflow as tf

    if logical_cpus > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"search.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    from nse_tf.data.idx import DataFileError, DataNotFoundError, DatasetError
    from nse_tf.search.round_trainer import SettingError
    from nse_tf.search.evolution import SamplingError, StateError
    from nse_tf.train.config import TrainError
    from nse_tf.utils.memory import keep_freed_memory
    from nse_tf.utils.output_paths import OutputError

    keep_freed_memory()  # CPU steps otherwise re-fault their activations (2x slower for retraining here)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger().setLevel(logging.INFO)
    for noisy in ("tensorflow", "absl"):  # checkpoint-sharding and strategy chatter
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if F.logical_cpus < 0:
            raise FlagError("logical_cpus", f"must be >= 0, got {F.logical_cpus}")
        from nse_tf.train.config import TrainError
        from nse_tf.train.device import set_cpu_threads

        try:
            set_cpu_threads(F.threads)
        except TrainError as err:
            raise FlagError("threads", str(err)) from None
        configure_devices(F.logical_cpus)
        config = build_config()
        from nse_tf.search.run import SearchRun
        from nse_tf.utils.run_lock import run_lock, search_lock_name

        lock = search_lock_name(config.verify_shard, os.environ.get("TF_CONFIG"))  # one process per run directory
        with run_lock(config.run_dir, lock, what="--run_dir"):
            run = SearchRun(config)
            state = run.run()
    except FlagError as err:
        print(f"search.py: error: {err}", file=sys.stderr)
        return 2
    except OutputError as err:  # the run directory is in use by another process, or cannot be written
        print(f"search.py: error: --run_dir: {err}", file=sys.stderr)
        return 2
    except DataNotFoundError as err:
        print(f"search.py: error: --data_dir: {err}", file=sys.stderr)
        return 2
    except DataFileError as err:  # a file of the dataset: --data_dir's for Fashion-MNIST, else --dataset's
        print(f"search.py: error: --{'data_dir' if F.dataset == 'fashion_mnist' else 'dataset'}: {err}",
              file=sys.stderr)
        return 2
    except (StateError, SamplingError) as err:
        print(f"search.py: error: {err}", file=sys.stderr)
        return 2
    except DatasetError as err:  # the message names its setting where one is at fault, else it is --dataset's
        text = str(err)
        print(f"search.py: error: {text if text.startswith('--') else '--dataset: ' + text}", file=sys.stderr)
        return 2
    except SettingError as err:
        print(f"search.py: error: --{str(err).split()[0]}: {err}", file=sys.stderr)
        return 2
    except TrainError as err:  # a verification run directory made with another recipe (say, --verify_epochs)
        print(f"search.py: error: --verify_epochs: {err}; to verify with another recipe, remove "
              f"{os.path.join(F.run_dir, 'verify')} first", file=sys.stderr)
        return 2
    if state.phase == "done" and not run.report_written:
        print(f"verification shard {config.verify_shard} finished its trainings; others are still training (rerun "
              "the same command once they are done, or let the last one write the pick)")
    elif state.phase == "done":
        print(f"search finished: {os.path.join(config.run_dir, 'search_report.md')}")
    else:
        print(f"search stopped at round {state.round + 1}, phase {state.phase}; rerun the same command to resume")
    return 0


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """What a search returns to Python: the pick and the final front as buildable networks, with their cost (in
    ``unit``) and shared-weight held-out top-1, and the verification's figures when it ran."""

    run_dir: str
    finished: bool  # False while verification shards of other processes are still training
    best: Any  # NetworkSpec, chosen/best.json (None until finished)
    front: list[tuple[Any, float, float]]  # (NetworkSpec, cost, held-out top-1), cheapest first
    unit: str
    report: str | None
    verification: dict | None


def search(flagfile: str | None = None, run_dir: str | None = None, **settings: Any) -> SearchResult:
    """The same resumable search as ``tools/search.py``, from Python: ``flagfile`` and ``settings`` are its
    flags (``search(flagfile="configs/fashion_mnist_quick.flags", run_dir="runs/q", steps_per_round=100)``;
    lists as Python lists, booleans as True/False). Bad settings raise ``FlagError`` naming the flag. Process
    settings (``threads``, ``logical_cpus``) are the command line's: set TensorFlow's up before calling this."""
    import json

    from nse_tf.search.run import SearchRun
    from nse_tf.search.verification import RESULT_FILE, VERIFY_DIR
    from nse_tf.space.architecture import Architecture, NetworkSpec

    argv = ["search.py"] + ([f"--flagfile={flagfile}"] if flagfile else []) + ([f"--run_dir={run_dir}"] if run_dir
                                                                             else [])
    for key, value in settings.items():
        if isinstance(value, bool):
            argv.append(f"--{key}" if value else f"--no{key}")
        elif isinstance(value, (list, tuple)) and key in F and isinstance(F[key], flags.MultiFlag):
            argv.extend(f"--{key}={v}" for v in value)  # a repeated flag (--exclude_ops): once per item
        elif isinstance(value, (list, tuple)):
            argv.append(f"--{key}={','.join(str(v) for v in value)}")
        else:
            argv.append(f"--{key}={value}")
    F.unparse_flags()
    try:
        F(argv)
    except flags.Error as err:
        raise FlagError(getattr(err, "flagname", None) or "flagfile", str(err)) from None
    config = build_config()
    from nse_tf.utils.run_lock import run_lock, search_lock_name

    with run_lock(config.run_dir, search_lock_name(config.verify_shard, os.environ.get("TF_CONFIG")), what="run_dir"):
        run = SearchRun(config)
        state = run.run()
    unit = run.cost_model.unit
    space = config.space
    front = [(NetworkSpec(space, Architecture(tuple(tuple(c) for c in p.cells)), f"nse-front_{i}"), p.cost, p.accuracy)
             for i, p in enumerate(sorted(state.pareto, key=lambda p: p.cost))]
    finished = state.phase == "done" and run.report_written
    best = NetworkSpec.load(os.path.join(config.run_dir, "chosen", "best.json")) if finished else None
    verified_path = os.path.join(config.run_dir, VERIFY_DIR, RESULT_FILE)
    verification = None
    if finished and config.verify.enabled:
        with open(verified_path, encoding="utf-8") as f:
            verification = json.load(f)
    report = os.path.join(config.run_dir, "search_report.md")
    return SearchResult(config.run_dir, finished, best, front, unit, report if finished else None, verification)


def run() -> None:
    """The console script ``nse-search`` and ``python tools/search.py``."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("search.py"))
