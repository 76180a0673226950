"""Issue 31's faults through the tools themselves (TensorFlow): a truncated newest training checkpoint resumed from
the one before to the uninterrupted run's weights, damaged state and result files, a second process on a locked
run directory or zoo entry, and output paths that cannot be written. Each ends in a recovery that loses nothing or
in one line ``<tool>: error: ...`` with exit code 2. The TensorFlow-free halves are in test_reliability_files."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.test_search_cli import TINY as TINY_SEARCH
from tests.test_search_cli import needs_data, run_in_process
from tests.test_training import RECIPE, small_data, uninterrupted, weights_of  # noqa: F401  (fixtures)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINED = "mobilenetv2-style-fmnist"  # a committed entry with weights

# A process that holds one lock (TensorFlow-free: it starts in a fraction of a second) until it is killed.
HOLDER = """
import sys, time
from nse_tf.utils.run_lock import run_lock
with run_lock(sys.argv[1], sys.argv[2], tool="holder.py"):
    print("locked", flush=True)
    time.sleep(600)
"""


def start_holder(directory: str, name: str = ".lock") -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen([sys.executable, "-c", HOLDER, directory, name], stdout=subprocess.PIPE, text=True,
                               env=env)
    assert process.stdout.readline().strip() == "locked"
    return process


def stop(process: subprocess.Popen) -> None:
    process.kill()
    process.wait()


def held_by(process: subprocess.Popen) -> str:
    return f"is in use by holder.py (pid {process.pid} on {socket.gethostname()}, since "


# ---- the command-line tools: one line each, started side by side (each start is mostly TensorFlow's import) ----

def _tiny_inputs(root) -> dict[str, str]:
    """A tiny network file and npz dataset for tools/train.py, a valid finished-looking run configuration, and a
    file where directories are expected."""
    from nse_tf.train.config import TrainConfig
    from tests.helpers import TINY

    p = {"root": str(root)}
    TINY.save(root / "tiny.json")
    p["net"] = str(root / "tiny.json")
    rng = np.random.default_rng(0)
    np.savez(root / "data.npz", x_train=rng.integers(0, 256, (64, 28, 28, 1), dtype=np.uint8),
             y_train=np.arange(64) % 10, x_test=rng.integers(0, 256, (16, 28, 28, 1), dtype=np.uint8),
             y_test=np.arange(16) % 10)
    p["data"] = str(root / "data.npz")
    (root / "a_file").write_text("not a directory")
    p["file"] = str(root / "a_file")
    for name, config, result in (("no_result", None, None), ("cut_result", None, '{"top1": 0.9, "seco'),
                                 ("list_config", "[]", None)):
        run = root / name
        run.mkdir()
        (run / "train_config.json").write_text(config or json.dumps(
            {"network": TINY.to_dict(), "dataset": f"npz:{p['data']}", "train": TrainConfig().to_dict()}))
        if result is not None:
            (run / "result.json").write_text(result)
        p[name] = str(run)
    p["held_run"] = str(root / "held_run")
    p["zoo"] = str(root / "zoo")
    os.makedirs(p["zoo"])
    return p


# tool, arguments, the start of the error line (after "<tool>: error: "), whether stdout must stay empty
CASES = {
    "train: run directory in use": ("train.py", ["--arch={net}", "--run_dir={held_run}", "--dataset=npz:{data}",
                                                 "--epochs=1", "--warmup_epochs=0", "--batch_size=16", "--verbose=0"],
                                    "--run_dir: {held_run} {held}", False),
    "train: run directory is a file": ("train.py", ["--arch={net}", "--run_dir={file}", "--dataset=npz:{data}",
                                                    "--epochs=1", "--warmup_epochs=0", "--batch_size=16"],
                                       "--run_dir: {file}: exists and is not a directory", False),
    "train: train_config.json holds []": ("train.py", ["--arch={net}", "--run_dir={list_config}",
                                                       "--dataset=npz:{data}", "--epochs=1", "--warmup_epochs=0", "--batch_size=16"],
                                          "{list_config}/train_config.json: damaged (it holds an array, not an "
                                          "object); delete it and rerun", False),
    "make_zoo_entry: run without result.json": ("make_zoo_entry.py", ["--name=x", "--train_dir={no_result}"],
                                                "--train_dir: {no_result}/result.json: missing; the run has not "
                                                "finished", True),
    "make_zoo_entry: truncated result.json": ("make_zoo_entry.py", ["--name=x", "--train_dir={cut_result}"],
                                              "--train_dir: {cut_result}/result.json: damaged (not valid JSON", True),
    "make_zoo_entry: train_config.json holds []": ("make_zoo_entry.py", ["--name=x", "--train_dir={list_config}"],
                                                   "--train_dir: {list_config}/train_config.json: damaged (it holds "
                                                   "an array", True),
    "make_zoo_entry: entry being written": ("make_zoo_entry.py", ["--name=x", "--arch=NSENet-27"],
                                            "--name: zoo entry x ({zoo}/x) {held_entry}", True),
    "make_zoo_entry: zoo folder is a file": ("make_zoo_entry.py", ["--name=y", "--arch=NSENet-27", "--zoo_dir={file}"],
                                             "--zoo_dir: {file}: exists and is not a directory", True),
    "export: output directory is a file": ("export.py", ["--arch=NSENet-27", "--out_dir={file}"],
                                           "--out_dir: {file}: exists and is not a directory", True),
    "evaluate: output under a file": ("evaluate.py", [f"--model={TRAINED}", "--output={file}/report.json"],
                                      "--output: {file}: exists and is not a directory", True),  # before measuring
    "evaluate: output is a directory": ("evaluate.py", [f"--model={TRAINED}", "--output={root}"],
                                        "--output: {root}: is a directory; name a file", True),
}


@pytest.fixture(scope="module")
def cli_results(tmp_path_factory):
    """Every case's tool run once, at most 4 at a time, while holders keep the run directory and the zoo entry
    locked; the inputs and holders for the expected lines."""
    from concurrent.futures import ThreadPoolExecutor

    p = _tiny_inputs(tmp_path_factory.mktemp("faults"))
    holders = [start_holder(p["held_run"]), start_holder(p["zoo"], ".lock-x")]
    p["held"], p["held_entry"] = held_by(holders[0]), held_by(holders[1])
    def run(case: str) -> subprocess.CompletedProcess:
        tool, args, _, _ = CASES[case]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",  # make_zoo_entry writes only under the test's own zoo
                   **({"NSE_TF_ZOO": p["zoo"]} if tool == "make_zoo_entry.py" else {}))
        return subprocess.run([sys.executable, os.path.join(ROOT, "tools", tool), *(a.format(**p) for a in args)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(len(os.sched_getaffinity(0)), 4))) as pool:
            results = dict(zip(CASES, pool.map(run, CASES)))
    finally:
        for holder in holders:
            stop(holder)
    return results, p


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_fault_of_a_tool_is_one_line(cli_results, case):
    results, p = cli_results
    tool, _, expected, quiet = CASES[case]
    result = results[case]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"{tool}: error:")]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith(f"{tool}: error: {expected.format(**p)}"), lines[0]
    if quiet:  # refused before the work: nothing measured or written
        assert result.stdout.strip() == "", result.stdout
    assert not os.path.exists(os.path.join(p["zoo"], "x")) and not os.path.exists(os.path.join(p["zoo"], "y"))


def test_a_refused_training_writes_nothing(cli_results):
    results, p = cli_results
    assert not os.path.exists(os.path.join(p["held_run"], "train_config.json"))  # the refused run wrote nothing


# ---- training: a truncated newest checkpoint, a damaged result ----

def test_a_truncated_newest_checkpoint_resumes_from_the_one_before_to_the_same_weights(tmp_path, uninterrupted,
                                                                                     small_data, monkeypatch):
    """Stopped once the last epoch's checkpoint is written (before the final weights), that checkpoint then cut in
    half: the rerun says so in one line, trains the last epoch again from the one before, and ends with the
    uninterrupted run's weights and history."""
    from nse_tf.train import loop
    from nse_tf.train.config import WEIGHTS_NAME
    from nse_tf.train.run_dir import read_history
    from tests.helpers import TINY

    full_dir, _ = uninterrupted
    run_dir = str(tmp_path / "run")
    original = loop.epoch_checkpoint_callback

    def stop_after_the_last_checkpoint(directory, processes):
        callback = original(directory, processes)
        save = callback.on_epoch_end

        def on_epoch_end(epoch, logs=None):
            save(epoch, logs)
            if epoch + 1 == RECIPE.epochs:
                raise KeyboardInterrupt

        callback.on_epoch_end = on_epoch_end
        return callback

    monkeypatch.setattr(loop, "epoch_checkpoint_callback", stop_after_the_last_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        loop.train(TINY, RECIPE, run_dir, small_data, verbose=0)
    monkeypatch.setattr(loop, "epoch_checkpoint_callback", original)
    assert sorted(n for n in os.listdir(run_dir) if n.endswith(".weights.h5")) == [
        "checkpoint-1.weights.h5", "checkpoint-2.weights.h5"]
    assert not os.path.exists(os.path.join(run_dir, ".lock"))  # released by the interruption
    newest = os.path.join(run_dir, "checkpoint-2.weights.h5")
    with open(newest, "r+b") as f:
        f.truncate(os.path.getsize(newest) // 2)

    lines: list[str] = []
    resumed = loop.train(TINY, RECIPE, run_dir, small_data, verbose=0, log=lines.append)
    damaged = [line for line in lines if "damaged" in line]
    assert len(damaged) == 1 and "checkpoint-2.weights.h5 (" in damaged[0], lines
    assert "resuming from checkpoint-1.weights.h5 (epoch 1)" in damaged[0]
    assert [p["epochs"] for p in resumed.processes] == [[1, 1], [2, 2]]  # epoch 2 is the second process's now
    assert [row["epoch"] for row in read_history(run_dir)] == ["0", "1"]  # each epoch once
    for a, b in zip(weights_of(os.path.join(full_dir, WEIGHTS_NAME)), weights_of(os.path.join(run_dir, WEIGHTS_NAME))):
        np.testing.assert_allclose(a, b, atol=2e-5)
    assert not [n for n in os.listdir(run_dir) if "checkpoint" in n or n.startswith(".")]


def test_a_damaged_result_of_a_finished_run_is_one_line(tmp_path, small_data):
    from nse_tf.train import loop
    from nse_tf.train.config import TrainError
    from nse_tf.train.run_dir import check_run_dir
    from tests.helpers import TINY

    run_dir = str(tmp_path / "run")
    check_run_dir(run_dir, TINY, RECIPE, small_data.name)
    for text, problem in (('{"top1": 0.8, "to', "not valid JSON"), ("[]", "it holds an array, not an object"),
                          ('{"top1": "0.8"}', "'top1' is a string, not a number")):
        with open(os.path.join(run_dir, "result.json"), "w") as f:
            f.write(text)
        with pytest.raises(TrainError, match=rf"result.json: damaged \({re.escape(problem)}.*; delete it and rerun"):
            loop.train(TINY, RECIPE, run_dir, small_data, verbose=0)


def test_a_damaged_qat_state_or_checkpoint_is_one_line(tmp_path):
    import tf_keras

    from nse_tf.data.arrays import ImageArrays
    from nse_tf.train import qat
    from nse_tf.train.config import TrainConfig, TrainError

    model = tf_keras.Sequential([tf_keras.layers.Input((28, 28, 1)), tf_keras.layers.Flatten(),
                                 tf_keras.layers.Dense(10)])
    rng = np.random.default_rng(0)
    data = ImageArrays(rng.integers(0, 256, (64, 28, 28, 1), dtype=np.uint8), np.arange(64) % 10,
                       rng.integers(0, 256, (16, 28, 28, 1), dtype=np.uint8), np.arange(16) % 10, "tiny")
    config = qat.QatConfig(epochs=1, batch_size=32)
    state = tmp_path / qat.STATE_NAME
    for text, problem in (('{"config": {"epo', "not valid JSON"), ("[]", "it holds an array, not an object"),
                          ('{"config": {}, "epochs_done": "1", "checkpoint": "qat_ckpt-1"}',
                           "'epochs_done' is a string, not an integer")):
        state.write_text(text)
        with pytest.raises(TrainError, match=rf"{qat.STATE_NAME}: damaged \({re.escape(problem)}.*\); delete "
                                             rf"{qat.STATE_NAME} to fine-tune again from the start"):
            qat.fine_tune(model, data, TrainConfig(), config, str(tmp_path))
    state.write_text(json.dumps({"config": dataclasses.asdict(config), "source": None, "epochs_done": 1,
                                 "checkpoint": "qat_ckpt-1"}))  # the checkpoint it names is gone
    with pytest.raises(TrainError, match=r"qat_ckpt-1: the checkpoint of epoch 1 does not read back .*; delete "):
        qat.fine_tune(model, data, TrainConfig(), config, str(tmp_path))


# ---- the search: a locked run directory, verification shards, damaged state ----

def test_a_second_search_on_a_run_directory_is_one_line(tmp_path, capsys):
    holder = start_holder(str(tmp_path / "run"))
    try:
        code, err = run_in_process(f"--run_dir={tmp_path / 'run'}", *TINY_SEARCH, capsys=capsys)
    finally:
        stop(holder)
    lines = [line for line in err.splitlines() if line.startswith("search.py: error:")]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"search.py: error: --run_dir: {tmp_path / 'run'} {held_by(holder)}"), lines[0]
    assert sorted(os.listdir(tmp_path / "run")) == [".lock"]  # the holder's lock, nothing of the refused search


@needs_data
def test_verification_shards_lock_apart(tmp_path, capsys):
    """Shard 1 of a run directory whose shard 0 holds the lock is not refused by that lock (here it is refused
    because the search has not finished), but a second process of shard 1 is."""
    run = tmp_path / "run"
    holder = start_holder(str(run))
    try:
        code, err = run_in_process(f"--run_dir={run}", *TINY_SEARCH, "--verify_top=1", "--verify_shard=1/2",
                                   capsys=capsys)
    finally:
        stop(holder)
    assert code == 2 and "--verify_shard=1/2: the search" in err and "in use" not in err, err
    holder = start_holder(str(run), ".lock-verify-1")
    try:
        code, err = run_in_process(f"--run_dir={run}", *TINY_SEARCH, "--verify_top=1", "--verify_shard=1/2",
                                   capsys=capsys)
    finally:
        stop(holder)
    lines = [line for line in err.splitlines() if line.startswith("search.py: error:")]
    assert code == 2 and len(lines) == 1 and held_by(holder) in lines[0], err


def _search_state(**change) -> dict:
    from nse_tf.search import evolution

    state = evolution.initial_state(["mb_k3_t1", "mb_k5_t1", "mb_k3_t3"], 6, evolution.EvolutionConfig(ops_per_cell=2),
                                    0).to_json()
    return {**state, **change}


@needs_data
@pytest.mark.parametrize("name, content, expected", [
    ("evolution_state.json", _search_state(history=[1]),
     "corrupted state (TypeError: history holds something other than objects); it is never silently restarted"),
    ("evolution_state.json", [], "corrupted (it holds an array, not an object); it is never silently restarted"),
    ("config.json", 5, "corrupted (it holds a number, not an object); delete it and rerun with the run's original"),
], ids=["history [1]", "state []", "config 5"])
def test_a_damaged_search_file_is_one_line(tmp_path, capsys, name, content, expected):
    run = tmp_path / "run"
    run.mkdir()
    (run / name).write_text(json.dumps(content))
    code, err = run_in_process(f"--run_dir={run}", *TINY_SEARCH, capsys=capsys)
    lines = [line for line in err.splitlines() if line.startswith("search.py: error:")]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"search.py: error: {run / name}: {expected}"), lines[0]
    assert json.loads((run / name).read_text()) == content  # nothing already written is replaced


@needs_data
@pytest.mark.parametrize("name, code, advice", [
    ("evolution_state.json", 28, "free some space and rerun"),  # ENOSPC
    ("config.json", 30, "it is on a read-only file system: choose a writable path"),  # EROFS
], ids=["state: disk full", "config: read-only"])
def test_a_search_write_the_disk_refuses_is_one_line(tmp_path, capsys, monkeypatch, name, code, advice):
    """Outside the round checkpoints (which say so themselves): the run's state, config, report and chosen/
    written through the ordinary file calls; an OSError the disk raises is one line naming --run_dir."""
    import errno

    from nse_tf.search import run as search_run

    assert (errno.ENOSPC, errno.EROFS) == (28, 30)
    real = search_run.atomic_write_json

    def refusing(path, *args, **kwargs):
        if os.path.basename(path) == name:
            raise OSError(code, os.strerror(code), path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(search_run, "atomic_write_json", refusing)
    run = tmp_path / "run"
    exit_code, err = run_in_process(f"--run_dir={run}", *TINY_SEARCH, capsys=capsys)
    lines = [line for line in err.splitlines() if line.startswith("search.py: error:")]
    assert exit_code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0] == f"search.py: error: --run_dir: {run}: cannot write there ({os.strerror(code)}); {advice}"
    assert not (run / name).exists()


# ---- two real training processes ----

@pytest.mark.slow  # two tools/train.py processes, one training while the other starts (run with -m slow)
def test_a_second_training_process_is_refused_and_a_killed_ones_lock_is_taken_over(tmp_path):
    from nse_tf.utils import run_lock

    p = _tiny_inputs(tmp_path)
    args = [f"--arch={p['net']}", f"--run_dir={tmp_path / 'run'}", f"--dataset=npz:{p['data']}", "--epochs=500",
            "--batch_size=16", "--verbose=0"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    first = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "train.py"), *args], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not os.path.exists(tmp_path / "run" / "checkpoint.json"):  # training: past the lock, one epoch done
            assert first.poll() is None and time.time() < deadline
            time.sleep(0.5)
        second = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), *args], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=600)
        lines = [line for line in second.stderr.splitlines() if line.startswith("train.py: error:")]
        assert second.returncode == 2 and len(lines) == 1, second.stderr[-3000:]
        assert f"--run_dir: {tmp_path / 'run'} is in use by train.py (pid {first.pid} on " in lines[0]
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    with open(tmp_path / "run" / "history.csv") as f:
        assert f.read().count("epoch") == 1  # one header: the second process wrote nothing
    lines = []
    with run_lock.run_lock(str(tmp_path / "run"), log=lines.append):  # the killed process's lock is stale
        pass
    assert len(lines) == 1 and f"pid {first.pid}" in lines[0] and "no longer running" in lines[0]


# ---- sizes beyond the limits (issue 31, deliver 5): --allow_large on the command line, check_size in Python ----

def _over_limit_network(tmp_path, **space) -> str:
    with open(os.path.join(ROOT, "zoo", TRAINED, "network.json"), encoding="utf-8") as f:
        data = json.load(f)
    data["space"].update(space)
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("case", ["network file", "scale"])
def test_train_refuses_a_network_beyond_the_limits_saying_allow_large(tmp_path, case):
    args = ([f"--arch={_over_limit_network(tmp_path, channels=[10**9] * 7)}"] if case == "network file"
            else [f"--arch={TRAINED}", "--scale=2000"])
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "train.py"), *args,
                             f"--run_dir={tmp_path / 'run'}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = [x for x in result.stderr.splitlines() if x.startswith("train.py: error:")]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    expected = ("--arch: " if case == "network file" else "--scale: scale: 2,000.0 is beyond the limit")
    assert lines[0].startswith(f"train.py: error: {expected}"), lines[0]
    assert lines[0].endswith("(nse_tf.space.limits; pass --allow_large to build it anyway)"), lines[0]
    assert not os.path.exists(tmp_path / "run")


def test_create_model_and_the_zoo_loader_take_check_size(tmp_path):
    import nse_tf
    from nse_tf.space.limits import SizeLimitError
    from nse_tf.zoo import registry

    path = _over_limit_network(tmp_path, input_size=4000)  # 113 G MACs, its weights as small as the entry's
    with pytest.raises(SizeLimitError, match="MACs: "):
        nse_tf.create_model(path)
    with pytest.raises(SizeLimitError, match="MACs: "):
        nse_tf.build_model(path)
    model = nse_tf.create_model(path, check_size=False)  # built, nothing run
    assert model.input_shape == (None, 4000, 4000, 1)
    with pytest.raises(registry.ZooError) as info:  # the entry retargeted beyond the limits, before building
        registry.load(TRAINED, weights=None, input_shape=(5000, 5000, 1))
    assert isinstance(info.value, SizeLimitError) and str(info.value).startswith(f"{TRAINED}: input_size: 5,000")
    with pytest.raises(SizeLimitError):
        nse_tf.create_model(TRAINED, input_shape=(5000, 5000, 1))
    assert registry.load(TRAINED, weights=None, input_shape=(5000, 5000, 1),
                         check_size=False).input_shape == (None, 5000, 5000, 1)
