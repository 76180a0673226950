"""The search run: rounds of supernet training and end-of-round evolution, resumable from its run directory.

Run directory layout (everything a run produces)::

    run_dir/
      config.json              the flags as given (a resumed run must match)
      evolution_state.json     the manager's state, written atomically after every change
      round_00/ckpt/           TF checkpoints (weights, gates, optimizers, data iterators) +
                               ckpt-N.host.json (branch-set RNG, active ops, step) beside each
      round_00/pareto.json     the round's evaluated architectures and front
      round_00/gates.png       gate probabilities per cell and operation
      pareto.png               accuracy vs cost (M MACs or ms), all rounds overlaid
      latency_table.json       a latency search's lookup table, unless its latency_table setting puts it elsewhere
      tb/                      TensorBoard events
      verify/                  the verification stage's stand-alone trainings and verification.json
      search_report.md, chosen/*.json   at the end
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from nse_tf.cost.model import CostModel, macs_model
from nse_tf.data.pipeline import DataSplits, load_splits
from nse_tf.search import evolution, gates
from nse_tf.search import report as reporting
from nse_tf.search import verification
from nse_tf.search.checkpoints import RoundCheckpoint, inherit_weights, newest_intact_checkpoint
from nse_tf.search.config import CONFIG_FILE, STATE_FILE, SearchConfig
from nse_tf.search.evolution import ArchPoint, EvolutionState, StateError
from nse_tf.search.pricing import build_cost_model, check_window
from nse_tf.search.round_trainer import RoundConfig, RoundState, RoundTrainer, new_round_state
from nse_tf.search.seed_archs import resolve_seed_archs
from nse_tf.search.saved_config import (ANY_TIME_SETTINGS, END_OF_ROUND_SETTINGS, flag_for, setting_diffs,
                                       upgrade_saved_config)
from nse_tf.search.schema import flag_text
from nse_tf.search.strategy import is_chief, is_multi_worker, make_strategy, sum_across_workers, worker_shard
from nse_tf.space.architecture import Architecture, NetworkSpec
from nse_tf.utils.atomic import atomic_write_json
from nse_tf.utils.state_files import read_json
from nse_tf.utils.settings import SettingError

log = logging.getLogger("nse_tf.search")

# What to do about a damaged evolution_state.json or config.json (the search's progress, and its settings).
STATE_FIX = f"it is never silently restarted: restore it or use a new {flag_text('run_dir')}"
CONFIG_FIX = ("delete it and rerun with the run's original flags (it is rewritten from them), or use a new "
              f"{flag_text('run_dir')}")


class SearchRun:
    """Drives rounds until the evolution state says done. Create, then ``run()``. ``cost_model``: the one
    ``search.from_flags.prepare_search`` built (else built here, once)."""

    def __init__(self, config: SearchConfig, strategy: tf.distribute.Strategy | None = None,
                 on_step: Callable[[Any], None] | None = None, cost_model: CostModel | None = None):
        self.config = config
        self.strategy = strategy or make_strategy(config.strategy)
        self.chief = is_chief(self.strategy)
        self.splits: DataSplits = load_splits(config.data)
        self.space = config.space
        self._check_space_matches_data()
        self.pool = self.space.get_pool()
        self.cells = self.space.cells()
        self.cost_model = cost_model or build_cost_model(config, multi_worker=is_multi_worker(self.strategy))
        self.steps_per_epoch = self.splits.steps_per_epoch
        self.steps_per_round = config.steps_per_round or max(1, int(round(config.epochs_per_round
                                                                            * self.steps_per_epoch)))
        self.on_step = on_step
        self.report_written = False  # set by run(): the report and chosen/ are written (verification done)
        self.writer = tf.summary.create_file_writer(os.path.join(config.run_dir, "tb")) if self.chief else None

    # ----------------------------------------------------------------- setup and state
    def _check_space_matches_data(self) -> None:
        shape = self.splits.input_shape
        if (self.space.input_size, self.space.input_size, self.space.input_channels) != tuple(shape):
            raise SettingError("space.input_size", f"the space expects {self.space.input_size}x"
                               f"{self.space.input_size}x{self.space.input_channels} inputs but "
                               f"{self.config.data.dataset} gives {shape[0]}x{shape[1]}x{shape[2]}; set "
                               f"{flag_text('space.input_size')}/{flag_text('data.image_size')} to match")
        if self.space.num_classes != self.splits.num_classes:
            raise SettingError("space.num_classes", f"{self.space.num_classes}, but {self.config.data.dataset} has "
                               f"{self.splits.num_classes} classes")

    def path(self, *parts: str) -> str:
        return os.path.join(self.config.run_dir, *parts)

    def load_or_create_state(self) -> EvolutionState:
        os.makedirs(self.config.run_dir, exist_ok=True)
        config_json = self.config.to_json()
        config_path, state_path = self.path(CONFIG_FILE), self.path(STATE_FILE)
        state = None
        if os.path.exists(state_path):
            data = read_json(state_path, STATE_FIX, error=StateError, label="corrupted")
            try:
                state = EvolutionState.from_json(data, state_path)
            except StateError as err:
                raise StateError(f"{err}; {STATE_FIX}") from None
        if os.path.exists(config_path):
            self.check_saved_config(config_path, config_json, state)
        elif self.chief:
            atomic_write_json(config_path, config_json)
        if state is not None:
            if state.pool != list(self.pool.names) or len(state.subspaces) != len(self.cells):
                raise StateError(f"{state_path}: the state's pool or cell count does not match the space")
            return state
        outputs = sorted(name for name in os.listdir(self.config.run_dir)
                         if name.startswith("round_") or name in ("chosen", "search_report.md"))
        if outputs:
            raise StateError(f"{state_path} is missing, but the run directory holds {', '.join(outputs[:3])}"
                             f"{', ...' if len(outputs) > 3 else ''}: a search is never silently restarted over "
                             f"its outputs; restore the file or use a new {flag_text('run_dir')}")
        if self.config.init_from:
            previous_path = os.path.join(self.config.init_from, STATE_FILE)
            try:
                previous = EvolutionState.from_json(
                    read_json(previous_path, f"{flag_text('init_from')} takes a search run directory", error=StateError,
                              label="corrupted"), previous_path)
            except OSError as err:
                raise SettingError("init_from", f"cannot read {previous_path} ({err.strerror})") from None
            state = evolution.continuation_state(previous, self.pool.names, self.config.evolution,
                                                 self.config.seed)
        else:
            seeds = resolve_seed_archs(self.config.seed_archs, self.space, self.config.evolution.excluded_ops)
            state = evolution.initial_state(self.pool.names, len(self.cells), self.config.evolution,
                                            self.config.seed, seeds)
        self.save_state(state)
        return state

    def check_saved_config(self, config_path: str, config_json: dict[str, Any], state: EvolutionState | None) -> None:
        """A resumed run must have the settings it was made with, except the end-of-round ones while its
        current round is not yet evaluated: those change (and the change is recorded in config.json's
        ``changes``), so a round whose evaluation failed on them is not stranded."""
        saved = upgrade_saved_config(read_json(config_path, CONFIG_FIX, error=StateError, label="corrupted"))
        changes = saved.pop("changes", [])
        # run_dir is where the file lives, not a setting: a moved run directory still resumes.
        diffs = [d for d in setting_diffs(saved, config_json) if d[0] != "run_dir"]
        if not diffs:
            return
        changeable = state is not None and state.phase in ("train", "evaluate")
        fixed = [d for d in diffs if not ((changeable and d[0] in END_OF_ROUND_SETTINGS)
                                          or (state is not None and d[0] in ANY_TIME_SETTINGS))]
        if fixed:
            shown = "; ".join(f"{flag_text(path, self.config.cost)} was {json.dumps(old)}, now {json.dumps(new)}"
                              for path, old, new in fixed[:4])
            more = f" (and {len(fixed) - 4} more)" if len(fixed) > 4 else ""
            hint = (" (end-of-round settings may change only before the round's evaluation ends)"
                    if any(d[0] in END_OF_ROUND_SETTINGS for d in fixed) else "")
            raise StateError(f"{config_path}: this run directory was made with other settings: {shown}{more}"
                             f"{hint}; use a new {flag_text('run_dir')} or the original flags")
        for path, old, new in diffs:
            log.warning("round %d: %s changes from %s to %s (recorded in %s)", state.round + 1,
                        flag_text(path, self.config.cost), json.dumps(old), json.dumps(new), config_path)
        changes = changes + [{"round": state.round + 1, "setting": path, "flag": flag_for(path, self.config.cost),
                              "was": old, "now": new} for path, old, new in diffs]
        if self.chief:
            atomic_write_json(config_path, {**config_json, "run_dir": saved.get("run_dir", config_json["run_dir"]),
                                            "changes": changes})

    def save_state(self, state: EvolutionState) -> None:
        if self.chief:
            atomic_write_json(self.path(STATE_FILE), state.to_json())

    # ----------------------------------------------------------------- rounds
    def new_trainer(self, state: EvolutionState) -> RoundTrainer:
        round_config = RoundConfig(self.steps_per_round, self.steps_per_epoch, self.config.data.batch_size,
                                   self.config.gate_every, self.config.prune_threshold,
                                   int(round(self.config.gate_warmup * self.steps_per_round)))
        return RoundTrainer(self.space, state.subspaces, self.config.optim, self.config.penalty, round_config,
                            self.strategy, cost_model=self.cost_model)

    def run(self) -> EvolutionState:
        state = self.load_or_create_state()
        if state.phase != "done" and not self.config.verify_shard.startswith("0/"):
            # two processes would train and save the same round: only shard 0 runs the search itself
            raise StateError(f"{flag_text('verify_shard')}={self.config.verify_shard}: the search in "
                             f"{self.config.run_dir} is not finished (round {state.round + 1}, {state.phase}); run "
                             "shard 0 first, and the other shards once it is verifying")
        while state.phase != "done":
            keras.utils.set_random_seed(self.config.seed * 1000 + state.round)
            trainer = self.new_trainer(state)
            round_dir = self.path(f"round_{state.round:02d}")
            splits = self.round_splits(state.round)
            iterators = {"train_data": iter(splits.train), "heldout_data": iter(splits.heldout_repeat)}
            ckpt = RoundCheckpoint(os.path.join(round_dir, "ckpt"), trainer, iterators, self.chief)
            host = ckpt.restore()
            if host is not None and state.phase == "evaluate" and host.step < self.steps_per_round:
                # the round's final checkpoint was damaged and an earlier one restored: train the rest
                # again (seeded, so the same weights) rather than evaluate an under-trained supernet
                log.warning("round %d: the restored checkpoint is at step %d of %d; training the rest again "
                            "before the evaluation", state.round + 1, host.step, self.steps_per_round)
                state.phase = "train"
                self.save_state(state)
            if host is None:
                inherited = 0
                if self.config.evolution.inherit_weights and state.round > 0:
                    inherited = inherit_weights(self.previous_round_checkpoint(state.round), trainer)
                protected = state.protected if self.config.evolution.preserve_prev else [[] for _ in self.cells]
                host = new_round_state(trainer, protected, np.random.default_rng([self.config.seed, state.round]))
                host.inherited = inherited
                ckpt.save(host)  # step 0: a resume never has to rebuild the round's starting point
            self.remove_checkpoints_before(state.round)
            train_seconds = None
            if state.phase == "train":
                self.check_window_reachable(state)
                if host.step < self.steps_per_round:  # else stopped (stop_after_steps) after the last step
                    train_seconds = self.train_round(state, trainer, host, ckpt, iterators)
                    if train_seconds is None:
                        return state
                state.phase = "evaluate"
                self.save_state(state)
            self.end_of_round(state, trainer, host, round_dir, splits, train_seconds)
        self.report_written = self.finish(state)
        return state

    def check_window_reachable(self, state: EvolutionState) -> None:
        """Before a round trains: its sub-spaces must hold architectures inside the end-of-round window, or
        the evaluation after hours of training could only fail (``pricing.check_window``)."""
        check_window(self.cost_model, self.cells, self.config.penalty.target, self.config.evolution,
                     state.subspaces, state.round)

    def previous_round_checkpoint(self, round_index: int) -> str:
        """The final training checkpoint of the round before ``round_index``, which a round that inherits
        weights starts from, whether this process trained that round or resumes after it. Read as a round
        restores its own: past a damaged newest checkpoint or ``checkpoint`` list to the newest intact one."""
        directory = self.path(f"round_{round_index - 1:02d}", "ckpt")
        try:
            latest = newest_intact_checkpoint(directory)
        except StateError as err:
            raise StateError(f"{err}; round {round_index + 1} cannot inherit its weights "
                             f"({flag_text('evolution.inherit_weights')}): restore the files") from None
        if latest is None:
            raise StateError(f"{directory}: no checkpoint to inherit round {round_index + 1}'s weights from "
                             f"({flag_text('evolution.inherit_weights')}); it is deleted only once the next round "
                             "has its own")
        return latest

    def remove_checkpoints_before(self, round_index: int) -> None:
        """Finished rounds' checkpoints are never read again once the next round has its own step-0 checkpoint
        (inherited weights included); only their small outputs stay."""
        if not self.chief:
            return
        for r in range(round_index):
            directory = self.path(f"round_{r:02d}", "ckpt")
            if os.path.isdir(directory):
                shutil.rmtree(directory)

    def round_splits(self, round_index: int) -> DataSplits:
        """Fresh dataset objects per round, seeded by the round: the data order never depends on how many
        iterators an earlier part of this process made, so a resumed run reads what an uninterrupted one would."""
        data = dataclasses.replace(self.config.data, seed=self.config.data.seed + 1000 * round_index)
        return load_splits(data)

    def train_round(self, state: EvolutionState, trainer: RoundTrainer, host: RoundState, ckpt: RoundCheckpoint,
                    iterators: dict[str, Any]) -> float | None:
        """Weight and gate steps up to the round's length; returns seconds, or None when stopped early."""
        total = self.steps_per_round
        expected = f"E[{self.cost_model.unit}]"
        progbar = keras.utils.Progbar(total, stateful_metrics=["loss", "acc", "gate_loss", expected, "ops"],
                                      verbose=1 if self.chief else 0)
        log.info("round %d/%d: %d steps, sub-space sizes %s, starting at step %d", state.round + 1,
                 state.num_rounds, total, [len(s) for s in state.subspaces], host.step)
        train_it, heldout_it = iterators["train_data"], iterators["heldout_data"]
        start = time.time()
        while host.step < total:
            stats = trainer.step(host, next(train_it), lambda: next(heldout_it))
            values = [("loss", stats.loss), ("acc", stats.accuracy), (expected, stats.expected_cost),
                      ("ops", stats.active_ops)]
            if stats.gate_loss is not None:
                values.append(("gate_loss", stats.gate_loss))
            progbar.update(host.step, values)
            self.write_summaries(state, trainer, host, stats)
            if self.on_step is not None:
                self.on_step(stats)
            saved = host.step % self.config.checkpoint_every == 0 or host.step == total
            if saved:
                ckpt.save(host)
            stop = self.config.stop_after_steps
            if stop is not None and host.step >= stop:  # at the round's length: trained, not yet evaluated
                if not saved:
                    ckpt.save(host)
                return None
        return time.time() - start

    def write_summaries(self, state: EvolutionState, trainer: RoundTrainer, host: RoundState, stats: Any) -> None:
        if self.writer is None or host.step % self.config.summary_every:
            return
        step = state.round * self.steps_per_round + host.step
        with self.writer.as_default(step=step):
            tf.summary.scalar("train/loss", stats.loss)
            tf.summary.scalar("train/accuracy", stats.accuracy)
            tf.summary.scalar("gates/expected_cost", stats.expected_cost)
            tf.summary.scalar("gates/active_ops", stats.active_ops)
            tf.summary.scalar("train/lr", float(trainer.weight_opt.learning_rate))
            if stats.gate_loss is not None:
                tf.summary.scalar("gates/loss", stats.gate_loss)
                tf.summary.scalar("gates/two_path_cost", stats.gate_cost)
            if host.step % (self.config.summary_every * 10) == 0 or host.step == self.steps_per_round:
                png = reporting.gate_heatmap_png(trainer.alpha(), host.active, trainer.net.subspaces,
                                                 self.pool.names, f"round {state.round + 1} step {host.step}")
                tf.summary.image("gates/probabilities", tf.image.decode_png(png)[None])

    def end_of_round(self, state: EvolutionState, trainer: RoundTrainer, host: RoundState, round_dir: str,
                     splits: DataSplits, train_seconds: float | None) -> None:
        """Sample, recalibrate and evaluate architectures, take the front, refill; all from the round's final
        checkpoint, so a run killed here repeats exactly this on resume."""
        cfg = self.config.evolution
        start = time.time()
        rng = np.random.default_rng([self.config.seed, state.round, 0xE7A1])
        sampled = evolution.sample_architectures(rng, trainer.alpha(), host.active, trainer.net.subspaces,
                                                 trainer.net.slots, cost=self.cost_model,
                                                 target=self.config.penalty.target, config=cfg, round_index=state.round)
        # Costs come from this run's model: points carried in by init_from may have been priced by another.
        previous = [ArchPoint(p.cells, self.cost_model.architecture_cost(p.cells), round=p.round, seed=p.seed)
                    for p in state.pareto]
        # The seed architectures are evaluated every round, as the front's points are.
        known = {p.key() for p in sampled + previous}
        for cells in state.seeds:
            seed = ArchPoint(cells, self.cost_model.architecture_cost(cells), round=state.round, seed=True)
            if seed.key() not in known:
                previous.append(seed)
                known.add(seed.key())
        points = sampled + previous
        # A fresh dataset object: the same augmented batches whether or not this process trained the round.
        recal = list(self.round_splits(state.round).train.take(cfg.bn_batches).map(lambda x, y: x))
        heldout = splits.heldout if cfg.eval_batch_size is None else splits.heldout.unbatch().batch(cfg.eval_batch_size)
        # An order-free evaluation is split across the workers (architecture i on worker i mod n), then gathered,
        # so every worker holds the same accuracies, front and next sub-spaces.
        shard, shards = worker_shard(self.strategy) if cfg.order_free else (0, 1)
        if shards == 1 and is_multi_worker(self.strategy):
            log.warning("round %d: every worker evaluates every architecture: %s=previous makes each result "
                        "depend on the one before; %s=trained splits the list", state.round + 1,
                        flag_text("evolution.bn_start"), flag_text("evolution.bn_start"))
        start_statistics = trainer.bn_statistics() if cfg.bn_mode == "ema" and cfg.bn_start == "trained" else None
        mine = range(shard, len(points), shards)
        log.info("round %d: evaluating %d architectures (%d extra, %d from the previous front or seeds)%s",
                 state.round + 1, len(points), sum(p.extra for p in sampled), len(previous),
                 f", {len(mine)} of them on this worker ({shard + 1} of {shards})" if shards > 1 else "")
        progbar = keras.utils.Progbar(len(mine), verbose=1 if self.chief else 0)
        accuracies = np.zeros(len(points))
        for done, i in enumerate(mine):
            accuracies[i] = trainer.evaluate(trainer.masks_for(points[i].cells), recal, heldout, cfg.bn_mode,
                                             cfg.bn_batch_size, start_statistics)
            progbar.update(done + 1)
        if shards > 1:
            accuracies = sum_across_workers(self.strategy, accuracies)
        for point, accuracy in zip(points, accuracies):
            point.accuracy = float(accuracy)
        in_window = [p for p in sampled if not p.extra]
        best = max(in_window, key=lambda p: p.accuracy)
        summary = {"train_seconds": train_seconds,
                   "eval_seconds": time.time() - start, "evaluated": len(points),
                   "best_accuracy": best.accuracy, "best_cost": best.cost,
                   # how well the supernet is trained: every architecture evaluated, extras and previous front too
                   "median_accuracy": float(np.median([p.accuracy for p in points])),
                   "active_ops_end": int(host.active.sum()), "inherited_variables": host.inherited}
        alpha, active, subspaces = trainer.alpha(), host.active.copy(), trainer.net.subspaces
        round_index = state.round
        front = evolution.end_round(state, sampled, previous, cfg, summary)
        if self.chief:
            atomic_write_json(os.path.join(round_dir, "pareto.json"), {
                "round": round_index, "target": self.config.penalty.target, "cost_unit": self.cost_model.unit,
                "front": [p.to_json() for p in front], "evaluated": [p.to_json() for p in points],
                "subspaces": [[self.pool.names[i] for i in s] for s in subspaces],
                "active": [[self.pool.names[i] for i, a in zip(s, row) if a] for s, row in zip(subspaces, active)],
                "gate_probability": [gates.gate_probability(alpha[c, :len(s)]).tolist()
                                     for c, s in enumerate(subspaces)]})
            with open(os.path.join(round_dir, "gates.png"), "wb") as f:
                f.write(reporting.gate_heatmap_png(alpha, active, subspaces, self.pool.names,
                                                   f"round {round_index + 1}: gate probabilities at the end"))
            reporting.write_pareto_plot(self.config.run_dir, self.path("pareto.png"), self.config.penalty.target,
                                        self.cost_model.unit)
        self.save_state(state)
        log.info("round %d done: front of %d, best held-out top-1 %.4f at %.3g %s", round_index + 1, len(front),
                 best.accuracy, best.cost, self.cost_model.unit)

    def finish(self, state: EvolutionState) -> bool:
        """The report and the chosen architectures, after the verification stage when it is on; whether they
        are written (False while other verification shards are still training)."""
        if not self.chief:
            return True
        self.remove_checkpoints_before(state.round + 1)
        budget = self.config.evolution.budget(self.config.penalty.target)
        chosen = reporting.choose_architectures(state.pareto, budget)
        verified = None
        if self.config.verify.enabled:
            verified = self.verify(state, budget)
            if verified is None:
                return False
            chosen["best"] = verified[1]
        os.makedirs(self.path("chosen"), exist_ok=True)
        for label, point in chosen.items():
            spec = NetworkSpec(self.space, Architecture(tuple(tuple(c) for c in point.cells)),
                               f"nse-{label}")
            spec.save(self.path("chosen", f"{label}.json"))
        reporting.write_report(self.path("search_report.md"), self.config, state, chosen, self.pool.names,
                               self.cost_model.unit, verified=verified[0] if verified else None)
        return True

    def verify(self, state: EvolutionState, budget: float) -> tuple[dict[str, Any], ArchPoint] | None:
        """Train the shortlist alone (this process's share of it); (verification.json, the pick) once every
        training has finished, else None."""
        from nse_tf.search import standalone

        cfg = self.config.verify
        last_round = self.last_round_points(state.round)
        seed_keys = {ArchPoint(cells, 0.0).key() for cells in state.seeds}
        given = [ArchPoint(cells, self.cost_model.architecture_cost(cells), round=state.round)
                 for cells in resolve_seed_archs(cfg.archs, self.space)]
        candidates = verification.shortlist(state.pareto, last_round,
                                            [p for p in last_round if p.key() in seed_keys], cfg.top, budget, given)
        heldout_seed = self.config.data.seed + 1000 * state.round  # the last round's split (round_splits)
        shard = standalone.Shard.parse(self.config.verify_shard)
        log.info("verification: %d shortlisted architectures x %d seeds, %d epochs each, shard %s",
                 len(candidates), cfg.seeds, cfg.epochs, self.config.verify_shard)

        def train(jobs: list[tuple[int, int, str]]) -> list[Any]:
            runs = [(NetworkSpec(self.space, Architecture(tuple(tuple(c) for c in candidates[i].point.cells)),
                                 os.path.basename(run_dir)),
                     dataclasses.replace(standalone.SHORT_RECIPE, epochs=cfg.epochs, seed=seed), run_dir)
                    for i, seed, run_dir in jobs]
            return standalone.run_share(runs, shard, self.config.data.heldout_examples, heldout_seed, log=log.info,
                                        dataset=self.config.data.dataset, data_dir=self.config.data.data_dir,
                                        image_size=self.config.data.image_size)

        if not verification.verify(candidates, cfg, train, self.pool.names, self.path(verification.VERIFY_DIR)):
            log.info("verification: shard %s is done; the shard that finishes the last training writes the pick",
                     self.config.verify_shard)
            return None
        chosen = verification.pick(candidates, budget)
        macs = macs_model(self.space)
        result = verification.summary(candidates, chosen, cfg, self.pool.names, macs.architecture_cost,
                                      {"examples": self.config.data.heldout_examples, "seed": heldout_seed,
                                       "round": state.round + 1})
        atomic_write_json(self.path(verification.VERIFY_DIR, verification.RESULT_FILE), result)
        return result, chosen.point

    def last_round_points(self, round_index: int) -> list[ArchPoint]:
        """Every architecture the last round evaluated, with its shared-weight top-1 (round_XX/pareto.json)."""
        path = self.path(f"round_{round_index:02d}", "pareto.json")
        try:
            with open(path, encoding="utf-8") as f:
                return [ArchPoint.from_json(p) for p in json.load(f)["evaluated"]]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise StateError(f"{path}: cannot read the last round's evaluated architectures for the verification "
                             f"({err})") from None
