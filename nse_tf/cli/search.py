"""Run an NSE search: ``python tools/search.py --flagfile=configs/fashion_mnist_quick.flags``.

Rerunning with the same --run_dir resumes where the run stopped. Bad flags end with one line
naming the flag and exit code 2.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from nse_tf.search import schema  # noqa: E402  (the search's settings: TensorFlow-free, as is what follows)
from nse_tf.search.from_flags import PreparedSearch, prepare_search  # noqa: E402
from nse_tf.utils.cli import FlagError, flags_parser  # noqa: E402
from nse_tf.utils.settings import SettingError, define_flags  # noqa: E402

F = flags.FLAGS
FLAGS = define_flags(schema.SETTINGS)  # every flag of tools/search.py, from the settings schema


def flag_error(err: SettingError) -> FlagError:
    """A library's refusal of a setting, as the flag that sets it (under this search's cost mode, unless the
    fault is a flag of the other one)."""
    return FlagError(schema.flag_for(err.field, err.cost or F.cost), err.message)


def prepare() -> PreparedSearch:
    """The search's settings from the parsed flags, checked, and its cost model; a bad one is a FlagError."""
    values = {name: F[name].value for name in FLAGS}
    try:
        return prepare_search(values, {name for name in FLAGS if F[name].present})
    except SettingError as err:
        raise flag_error(err) from None


def build_config():  # -> SearchConfig
    return prepare().config


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
    from nse_tf.search.evolution import SamplingError, StateError
    from nse_tf.train.config import RunMismatchError, TrainError
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
        prepared = prepare()
        config = prepared.config
        from nse_tf.search.run import SearchRun
        from nse_tf.utils.run_lock import run_lock, search_lock_name

        lock = search_lock_name(config.verify_shard, os.environ.get("TF_CONFIG"))  # one process per run directory
        with run_lock(config.run_dir, lock, what="--run_dir"):
            run = SearchRun(config, cost_model=prepared.cost_model)
            state = run.run()
    except FlagError as err:
        print(f"search.py: error: {err}", file=sys.stderr)
        return 2
    except SettingError as err:  # a setting the run refused once under way (the data's classes, a batch split)
        print(f"search.py: error: {flag_error(err)}", file=sys.stderr)
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
    except DatasetError as err:  # the dataset's own content (settings at fault are SettingErrors)
        print(f"search.py: error: --dataset: {err}", file=sys.stderr)
        return 2
    except RunMismatchError as err:  # a verification run directory made with another recipe (--verify_epochs)
        print(f"search.py: error: --verify_epochs: {err}; to verify with another recipe, remove "
              f"{os.path.join(F.run_dir, 'verify')} first", file=sys.stderr)
        return 2
    except TrainError as err:  # a verification training's own files (damaged, or no intact checkpoint)
        print(f"search.py: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # a write the disk refused (evolution_state.json, a round's files, the report,
        # chosen/): full, read-only, not permitted. The state written before it stands, so a rerun resumes.
        from nse_tf.utils.output_paths import output_error_line

        if (line := output_error_line(err, "run_dir", F.run_dir)) is None:
            raise
        print(f"search.py: error: {line}", file=sys.stderr)
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
    prepared = prepare()
    config = prepared.config
    from nse_tf.utils.run_lock import run_lock, search_lock_name

    with run_lock(config.run_dir, search_lock_name(config.verify_shard, os.environ.get("TF_CONFIG")), what="run_dir"):
        run = SearchRun(config, cost_model=prepared.cost_model)
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
