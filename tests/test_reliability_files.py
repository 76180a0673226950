"""Issue 31's faults that need no TensorFlow: the guarded reader of state and result files, a training's checkpoints
(kept two deep, read back, falling back past a damaged newest one), the lock of a run directory against a real
second process, and unusable output paths. Nothing here imports TensorFlow or Keras (h5py writes the weights
files as Keras lays them out), so the file runs in a few seconds."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from nse_tf.train import checkpoints as ckpt
from nse_tf.train.config import CHECKPOINT_STATE_NAME, TrainError
from nse_tf.train.run_dir import read_result, read_run_config, trim_history
from nse_tf.utils import output_paths, run_lock, state_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- the guarded reader: one line naming the file, what is wrong and what to do ----

@pytest.mark.parametrize("text, problem", [
    ('{"top1": 0.9, "top', "not valid JSON"),
    ("", "the file is empty"),
    ("   \n", "the file is empty"),
    ("[]", "it holds an array, not an object"),
    ("5", "it holds a number, not an object"),
    ('"x"', "it holds a string, not an object"),
    ("null", "it holds null, not an object"),
    ("[" * 1000 + "]" * 1000, "nested deeper than"),
], ids=["truncated", "empty", "blank", "array", "number", "string", "null", "deep"])
def test_a_damaged_file_is_one_line_naming_it_and_the_fix(tmp_path, text, problem):
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(state_files.StateFileError) as info:
        state_files.read_json(path, "delete it and rerun")
    message = str(info.value)
    assert message.startswith(f"{path}: damaged (") and problem in message, message
    assert message.endswith("; delete it and rerun") and "\n" not in message


def test_bytes_that_are_not_utf8_are_named(tmp_path):
    path = tmp_path / "state.json"
    path.write_bytes(b'{"a": "\xff\xfe"}')
    with pytest.raises(state_files.StateFileError, match=r"state.json: damaged \(not UTF-8 text: invalid start byte"):
        state_files.read_json(path, "fix")


@pytest.mark.parametrize("data, problem", [
    ({"b": "x"}, "it has no 'a'"),
    ({"a": "1"}, "'a' is a string, not an integer"),
    ({"a": True}, "'a' is a boolean, not an integer"),
    ({"a": 1.5}, "'a' is a number, not an integer"),
    ({"a": 1, "h": [1]}, None),
    ({"a": 1, "h": {"x": 1}}, "'h' is an object, not an array"),
    ({"a": 1.0, "h": []}, None),  # an integral float is an integer
])
def test_fields_are_checked_by_json_type(tmp_path, data, problem):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    fields = {"a": int, **({"h": list} if "h" in data else {})}
    if problem is None:
        assert state_files.read_json(path, "fix", fields=fields) == data
        return
    with pytest.raises(state_files.StateFileError, match=rf"s.json: damaged \({problem}\); fix$"):
        state_files.read_json(path, "fix", fields=fields)


def test_the_callers_error_class_label_and_a_missing_file(tmp_path):
    path = tmp_path / "absent.json"
    with pytest.raises(FileNotFoundError):  # absence means something to callers that give no advice for it
        state_files.read_json(path, "fix")
    with pytest.raises(TrainError, match=r"absent.json: missing; run it first$"):
        state_files.read_json(path, "fix", error=TrainError, missing="run it first")
    path.write_text("[")
    with pytest.raises(TrainError, match=r"absent.json: corrupted \(not valid JSON"):
        state_files.read_json(path, "fix", error=TrainError, label="corrupted")
    with pytest.raises(TrainError, match="is a directory"):
        state_files.read_json(tmp_path, "fix", error=TrainError)


# ---- a retraining's run directory: train_config.json, result.json, history.csv ----

@pytest.mark.parametrize("text, problem", [
    ("[]", "holds an array"),
    ('{"network": {}, "train": {}, "dataset": "fashion_mnist"', "not valid JSON"),
    ('{"network": [], "train": {}, "dataset": "fashion_mnist"}', "'network' is an array, not an object"),
    ('{"train": {}, "dataset": "fashion_mnist"}', "it has no 'network'"),
])
def test_a_damaged_train_config_names_itself(tmp_path, text, problem):
    (tmp_path / "train_config.json").write_text(text)
    with pytest.raises(TrainError) as info:
        read_run_config(str(tmp_path))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'train_config.json'}: damaged") and problem in message, message
    assert "rerun the run's tools/train.py command" in message


def test_a_result_that_is_missing_truncated_or_mistyped_names_itself(tmp_path):
    with pytest.raises(TrainError, match=r"result.json: missing; the run has not finished: rerun its tools/train.py"):
        read_result(str(tmp_path))
    good = {"run_dir": "x", "top1": 0.9, "top5": 0.99, "epochs": 2, "seconds": 3.0, "backend": "tensorflow",
            "processes": [{"epochs": [1, 2]}]}
    (tmp_path / "result.json").write_text(json.dumps(good)[:30])
    with pytest.raises(TrainError, match=r"result.json: damaged \(not valid JSON.*; delete it and rerun the command"):
        read_result(str(tmp_path))
    (tmp_path / "result.json").write_text(json.dumps({**good, "top1": "high"}))
    with pytest.raises(TrainError, match=r"'top1' is a string, not a number"):
        read_result(str(tmp_path))
    (tmp_path / "result.json").write_text(json.dumps({**good, "processes": [1]}))
    with pytest.raises(TrainError, match=r"'processes' is not an array of objects"):
        read_result(str(tmp_path))
    (tmp_path / "result.json").write_text(json.dumps(good))
    assert read_result(str(tmp_path)) == good
    # a zoo entry reads only what it records (seconds and backend): older results lack the rest
    (tmp_path / "result.json").write_text(json.dumps({"top1": 0.5, "seconds": 1.0, "backend": "tensorflow"}))
    assert read_result(str(tmp_path), fields={"seconds": state_files.NUMBER, "backend": str})["top1"] == 0.5


def test_history_rows_after_the_resumed_epoch_are_dropped(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss\n0,2.0\n1,1.5\n2,1.2\n")
    trim_history(str(tmp_path), 3)
    assert history.read_text() == "epoch,loss\n0,2.0\n1,1.5\n2,1.2\n"
    trim_history(str(tmp_path), 2)  # resumed after epoch 2 (0-based rows 0 and 1): row 2 is trained again
    assert history.read_text() == "epoch,loss\n0,2.0\n1,1.5\n"
    trim_history(str(tmp_path / "none"), 0)  # no history: nothing to do


# ---- a training's checkpoints: two kept, each read back; a damaged newest one falls back ----

class FakeModel:
    """What save_checkpoint uses of a Keras model: save_weights (an HDF5 file laid out as Keras's, its values the
    epoch) and no dropout RNGs."""

    def __init__(self):
        self.epoch = 0

    def _flatten_layers(self):
        return []

    def save_weights(self, path, overwrite=True):
        import h5py

        with h5py.File(path, "w") as f:
            f.create_dataset("layers/dense/vars/0", data=np.full((64, 10), self.epoch, np.float32))
            f.create_dataset("optimizer/vars/0", data=np.array(self.epoch, np.int64))


def _save(run_dir, model, epochs):
    processes = [{"backend": "tensorflow", "device": "cpu", "epochs": [1, 0], "seconds": 0.0}]
    for epoch in epochs:
        model.epoch = epoch
        processes[-1]["epochs"][1] = epoch
        ckpt.save_checkpoint(model, str(run_dir), epoch, processes)


def _weights(run_dir) -> list[str]:
    return sorted(n for n in os.listdir(run_dir) if n.endswith(".weights.h5"))


@pytest.fixture
def three_epochs(tmp_path):
    _save(tmp_path, FakeModel(), (1, 2, 3))
    return tmp_path


def test_a_training_keeps_its_two_newest_checkpoints_each_read_back(three_epochs):
    assert _weights(three_epochs) == ["checkpoint-2.weights.h5", "checkpoint-3.weights.h5"]
    state = json.loads((three_epochs / CHECKPOINT_STATE_NAME).read_text())
    assert state["epochs_done"] == 3 and state["previous"]["epochs_done"] == 2
    assert state["groups"] == ["layers", "optimizer"] and len(state["sha256"]) == 64 and state["bytes"] > 0
    assert state["processes"][-1]["epochs"] == [1, 3] and state["previous"]["processes"][-1]["epochs"] == [1, 2]
    assert [c.epochs_done for c in ckpt.read_checkpoints(str(three_epochs))] == [3, 2]
    assert not [n for n in os.listdir(three_epochs) if n.startswith((".staging", ".tmp"))]


def _truncate(path, keep: float) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[:int(len(raw) * keep)])


def _garble(path) -> None:
    raw = bytearray(path.read_bytes())
    raw[-200:-100] = os.urandom(100)  # the values, not the structure: same size, opens as HDF5
    path.write_bytes(bytes(raw))


NEWEST_DAMAGE = {
    "truncated": (lambda p: _truncate(p, 0.5), "bytes, written with"),
    "emptied": (lambda p: _truncate(p, 0), "empty, written with"),
    "missing": (lambda p: p.unlink(), "missing"),
    "garbled": (_garble, "sha256 differs"),
}


@pytest.mark.parametrize("how", sorted(NEWEST_DAMAGE))
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before_with_one_line(three_epochs, how):
    damage, reason = NEWEST_DAMAGE[how]
    damage(three_epochs / "checkpoint-3.weights.h5")
    lines = []
    chosen = ckpt.usable_checkpoint(str(three_epochs), lines.append)
    assert chosen.epochs_done == 2 and chosen.weights == "checkpoint-2.weights.h5"
    assert chosen.processes[-1]["epochs"] == [1, 2]  # the records of that epoch, not the newer one's
    assert len(lines) == 1 and "checkpoint-3.weights.h5" in lines[0] and reason in lines[0], lines
    assert "resuming from checkpoint-2.weights.h5 (epoch 2)" in lines[0]


def test_no_intact_checkpoint_is_one_line_naming_the_files(three_epochs):
    _truncate(three_epochs / "checkpoint-3.weights.h5", 0.5)
    (three_epochs / "checkpoint-2.weights.h5").unlink()
    with pytest.raises(TrainError) as info:
        ckpt.usable_checkpoint(str(three_epochs), lambda line: None)
    message = str(info.value)
    assert "no intact checkpoint" in message and "checkpoint-3.weights.h5 (" in message
    assert "checkpoint-2.weights.h5 (missing)" in message and CHECKPOINT_STATE_NAME in message and "\n" not in message


@pytest.mark.parametrize("text", ['{"epochs_do', "[]", '{"epochs_done": 3, "weights": "../x.weights.h5", "seeds": []}',
                                  '{"epochs_done": "3", "weights": "checkpoint-3.weights.h5", "seeds": []}'])
def test_a_damaged_checkpoint_state_is_one_line(three_epochs, text):
    (three_epochs / CHECKPOINT_STATE_NAME).write_text(text)
    with pytest.raises(TrainError, match=rf"{CHECKPOINT_STATE_NAME}: unreadable checkpoint state .*delete the run"):
        ckpt.usable_checkpoint(str(three_epochs))


def test_a_checkpoint_state_from_before_the_read_back_records_still_resumes(tmp_path):
    """checkpoint.json as runs wrote it before: one checkpoint, no size, sha256 or groups; checked by opening it."""
    FakeModel().save_weights(str(tmp_path / "checkpoint-4.weights.h5"))
    (tmp_path / CHECKPOINT_STATE_NAME).write_text(json.dumps(
        {"epochs_done": 4, "weights": "checkpoint-4.weights.h5", "seeds": [], "processes": []}))
    assert ckpt.usable_checkpoint(str(tmp_path)).epochs_done == 4
    _truncate(tmp_path / "checkpoint-4.weights.h5", 0.5)
    with pytest.raises(TrainError, match=r"checkpoint-4.weights.h5 \(not a whole weights file"):
        ckpt.usable_checkpoint(str(tmp_path))


def test_after_a_fallback_the_intact_checkpoint_goes_only_once_a_newer_one_reads_back(three_epochs):
    _truncate(three_epochs / "checkpoint-3.weights.h5", 0.5)
    assert ckpt.usable_checkpoint(str(three_epochs), lambda line: None).epochs_done == 2
    model = FakeModel()
    model.epoch = 3
    original = model.save_weights
    model.save_weights = lambda path, overwrite=True: open(path, "wb").write(b"\x89HDF\r\n\x1a\n garbage")
    with pytest.raises(TrainError, match=r"the checkpoint of epoch 3 does not read back .*epoch 2's checkpoint is "
                                         r"intact: check the disk and rerun to resume"):
        ckpt.save_checkpoint(model, str(three_epochs), 3, [])
    assert _weights(three_epochs) == ["checkpoint-2.weights.h5", "checkpoint-3.weights.h5"]  # nothing deleted
    assert ckpt.usable_checkpoint(str(three_epochs), lambda line: None).epochs_done == 2
    model.save_weights = original
    ckpt.save_checkpoint(model, str(three_epochs), 3, [])  # the rerun: epoch 3 again, this time whole
    assert _weights(three_epochs) == ["checkpoint-2.weights.h5", "checkpoint-3.weights.h5"]
    assert ckpt.usable_checkpoint(str(three_epochs), lambda line: pytest.fail(line)).epochs_done == 3
    _save(three_epochs, model, (4,))
    assert _weights(three_epochs) == ["checkpoint-3.weights.h5", "checkpoint-4.weights.h5"]


def test_a_full_disk_during_a_checkpoint_leaves_the_previous_two_and_no_temporary_file(three_epochs):
    model = FakeModel()
    before = {n: (three_epochs / n).read_bytes() for n in os.listdir(three_epochs)}

    def disk_full(path, overwrite=True):
        with open(path, "wb") as f:
            f.write(b"\x89HDF\r\n")
        raise OSError(errno.ENOSPC, "No space left on device")

    model.save_weights = disk_full
    with pytest.raises(TrainError, match=r"cannot write the checkpoint of epoch 4 \(No space left on device\); "
                                         r"epoch 3's checkpoint is intact: free the space and rerun to resume"):
        ckpt.save_checkpoint(model, str(three_epochs), 4, [])
    assert {n: (three_epochs / n).read_bytes() for n in os.listdir(three_epochs)} == before


# ---- the lock of a run directory: a real second process ----

HOLDER = """
import sys, time
from nse_tf.utils.run_lock import run_lock
with run_lock(sys.argv[1], tool="holder.py"):
    print("locked", flush=True)
    time.sleep(60)
"""


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.fixture
def holder(tmp_path):
    """A second process holding tmp_path/run's lock (until killed)."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "run")], stdout=subprocess.PIPE,
                               text=True, env=_env())
    assert process.stdout.readline().strip() == "locked"
    yield process
    process.kill()
    process.wait()


def test_a_live_holder_refuses_a_second_process_with_one_line(tmp_path, holder):
    with pytest.raises(run_lock.RunLockError) as info:
        run_lock.acquire(str(tmp_path / "run"), what="--run_dir")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'run'} is in use by holder.py (pid {holder.pid} on "
                              f"{socket.gethostname()}, since "), message
    assert message.endswith("wait for it to finish, or use another --run_dir") and "\n" not in message
    assert os.path.exists(tmp_path / "run" / ".lock")  # the holder's lock stays


def test_the_lock_of_a_killed_process_is_taken_over_with_one_line(tmp_path, holder):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    lines = []
    with run_lock.run_lock(str(tmp_path / "run"), log=lines.append) as path:
        owner = json.loads(open(path).read())
        assert owner["pid"] == os.getpid() and owner["host"] == socket.gethostname()
    assert len(lines) == 1 and f"pid {holder.pid}" in lines[0] and "no longer running" in lines[0]
    assert not os.path.exists(tmp_path / "run" / ".lock")  # released at the end


def test_a_second_process_is_refused_at_the_command_line(tmp_path, holder):
    """The same refusal as a tool's second process meets: a process of its own, exit 2, one line."""
    code = ("import sys\nfrom nse_tf.utils.run_lock import RunLockError, run_lock\ntry:\n"
            "    with run_lock(sys.argv[1]):\n        pass\nexcept RunLockError as err:\n"
            "    print(f'tool.py: error: --run_dir: {err}', file=sys.stderr)\n    sys.exit(2)\n")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True,
                            env=_env(), timeout=60)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert f"is in use by holder.py (pid {holder.pid}" in result.stderr


def _plant(directory, **owner) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, ".lock")
    with open(path, "w") as f:
        f.write(json.dumps(owner) if owner else "")
    return path


def test_a_lock_of_another_host_is_refused_with_the_file_to_delete(tmp_path):
    path = _plant(tmp_path / "run", pid=os.getpid(), host="elsewhere.example", tool="train.py")
    with pytest.raises(run_lock.RunLockError, match=rf"in use by train.py \(pid {os.getpid()} on elsewhere.example\); "
                                                     rf"if it is no longer running there, delete {path}"):
        run_lock.acquire(str(tmp_path / "run"))


def test_a_reused_pid_and_an_own_leftover_are_stale(tmp_path):
    """A lock naming a live pid that started at another time (a reboot, a container restart) or this very process
    (which holds no such lock) is a leftover, not a live holder."""
    _plant(tmp_path / "a", pid=os.getppid(), host=socket.gethostname(), start="-1")
    _plant(tmp_path / "b", pid=os.getpid(), host=socket.gethostname())
    for name in ("a", "b"):
        with run_lock.run_lock(str(tmp_path / name), log=lambda line: None):
            pass


def test_an_empty_lock_is_waited_for_then_taken_over_once_old(tmp_path, monkeypatch):
    path = _plant(tmp_path / "run")  # a process killed between creating and writing it
    old = time.time() - 60
    os.utime(path, (old, old))
    with run_lock.run_lock(str(tmp_path / "run")):
        pass
    path = _plant(tmp_path / "fresh")
    monkeypatch.setattr(run_lock, "_ATTEMPTS", 3)
    with pytest.raises(run_lock.RunLockError, match="could not take its lock"):  # being written: not stolen
        run_lock.acquire(str(tmp_path / "fresh"))


def test_the_lock_is_released_whatever_ends_the_work_and_not_taken_twice(tmp_path):
    with pytest.raises(KeyError):
        with run_lock.run_lock(str(tmp_path / "run")):
            with pytest.raises(run_lock.RunLockError, match="this process already holds its lock"):
                run_lock.acquire(str(tmp_path / "run"))
            raise KeyError("the work failed")
    assert not os.path.exists(tmp_path / "run")  # the lock made it, and nothing else was written there
    (tmp_path / "kept").mkdir()
    with run_lock.run_lock(str(tmp_path / "kept")):
        pass
    assert os.listdir(tmp_path / "kept") == []  # a directory that was there stays
    with run_lock.run_lock(str(tmp_path / "written")):
        (tmp_path / "written" / "config.json").write_text("{}")
    assert os.listdir(tmp_path / "written") == ["config.json"]


RACER = """
import sys, time
from nse_tf.utils.run_lock import RunLockError, run_lock
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
try:
    with run_lock(sys.argv[1], log=lambda line: None):
        print("won", flush=True)
        time.sleep(3)  # held while the others try
except RunLockError:
    print("refused", flush=True)
"""


def test_processes_racing_for_a_stale_lock_let_exactly_one_in(tmp_path):
    """Four processes start at one instant on a run directory whose lock a dead process left: one takes it over,
    the others are refused by it (never two holders, never a takeover of the new owner's lock)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _plant(tmp_path / "run", pid=dead.pid, host=socket.gethostname(), tool="killed.py")
    start = str(time.time() + 1.5)
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path / "run"), start], stdout=subprocess.PIPE,
                               text=True, env=_env()) for _ in range(4)]
    outcomes = sorted(r.communicate(timeout=60)[0].strip() for r in racers)
    assert outcomes == ["refused", "refused", "refused", "won"], outcomes
    assert not os.path.exists(tmp_path / "run" / ".lock") and not os.path.exists(tmp_path / "run" / ".lock.takeover")


def test_a_full_disk_while_locking_leaves_nothing(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(run_lock.os, "fsync", full)
    with pytest.raises(output_paths.OutputError, match=r"run: cannot write there \(No space left on device\)"):
        run_lock.acquire(str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


def test_lock_names_of_shards_workers_and_zoo_entries():
    assert run_lock.shard_lock_name("0/1") == run_lock.shard_lock_name("0/3") == ".lock"
    assert run_lock.shard_lock_name("2/3") == ".lock-verify-2"
    assert run_lock.entry_lock_name("mobilenetv2-style-fmnist") == ".lock-mobilenetv2-style-fmnist"

    def tf_config(kind, index, chief=False):
        cluster = {"worker": ["a:1", "b:1"], **({"chief": ["c:1"]} if chief else {})}
        return json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})

    # the workers of one multi-worker search share its run directory: the chief takes its lock, the others theirs
    assert run_lock.search_lock_name("0/1", tf_config("worker", 0)) == ".lock"
    assert run_lock.search_lock_name("0/1", tf_config("worker", 1)) == ".lock-worker-1"
    assert run_lock.search_lock_name("0/1", tf_config("chief", 0, chief=True)) == ".lock"
    assert run_lock.search_lock_name("0/1", tf_config("worker", 0, chief=True)) == ".lock-worker-0"
    assert run_lock.search_lock_name("1/2", tf_config("worker", 1)) == ".lock-verify-1-worker-1"
    assert run_lock.search_lock_name("1/2", None) == run_lock.search_lock_name("1/2", "not json") == ".lock-verify-1"


def test_two_shards_lock_one_run_directory_side_by_side(tmp_path):
    with run_lock.run_lock(str(tmp_path), run_lock.shard_lock_name("0/2")):
        with run_lock.run_lock(str(tmp_path), run_lock.shard_lock_name("1/2")):
            assert sorted(os.listdir(tmp_path)) == [".lock", ".lock-verify-1"]


# ---- unusable output paths: one line naming the path, before any work ----

def test_an_output_directory_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(output_paths.OutputError, match=r"file: exists and is not a directory"):
        output_paths.check_dir(str(tmp_path / "file"))
    with pytest.raises(output_paths.OutputError, match=r"cannot write there \(Not a directory\); a part of the path"):
        output_paths.check_dir(str(tmp_path / "file" / "run"))
    with pytest.raises(output_paths.OutputError, match=r"file: exists and is not a directory"):
        run_lock.acquire(str(tmp_path / "file"))
    with pytest.raises(output_paths.OutputError, match="is a directory; name a file"):
        output_paths.check_file(str(tmp_path))
    assert output_paths.check_file(str(tmp_path / "new" / "report.json"))
    assert output_paths.check_dir(str(tmp_path / "a" / "b"), create=False)
    assert not os.path.exists(tmp_path / "new") and not os.path.exists(tmp_path / "a")  # a check leaves nothing
    with pytest.raises(output_paths.OutputError, match=r"file: exists and is not a directory"):
        output_paths.check_file(str(tmp_path / "file" / "report.json"))
    with pytest.raises(output_paths.OutputError, match=r"cannot write there \(Not a directory\)"):
        output_paths.check_dir(str(tmp_path / "file" / "a" / "b"), create=False)


@pytest.mark.parametrize("code, advice", [(errno.EROFS, "read-only file system"), (errno.EACCES, "may not write"),
                                          (errno.ENOSPC, "free some space")])
def test_a_directory_that_refuses_writes_is_one_line(tmp_path, monkeypatch, code, advice):
    """A read-only mount, another user's directory, a full disk: injected, since root writes anywhere."""
    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(output_paths.tempfile, "mkstemp", refuse)
    with pytest.raises(output_paths.OutputError) as info:
        output_paths.check_dir(str(tmp_path / "out"))
    assert str(info.value).startswith(f"{tmp_path / 'out'}: cannot write there ({os.strerror(code)}); ")
    assert advice in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory_is_refused(tmp_path):
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o555)
    try:
        with pytest.raises(output_paths.OutputError, match="Permission denied"):
            run_lock.acquire(str(tmp_path / "ro"))
    finally:
        os.chmod(tmp_path / "ro", 0o755)


def test_disk_errors_are_told_from_other_errors():
    class ResourceExhaustedError(Exception):  # TensorFlow's, by name and message
        pass

    full = ResourceExhaustedError("/x/saved_model.pb; No space left on device")
    assert output_paths.disk_error(full).errno == errno.ENOSPC
    assert output_paths.disk_error(ResourceExhaustedError("OOM when allocating tensor")) is None
    assert output_paths.disk_error(OSError(errno.EROFS, "Read-only file system")).errno == errno.EROFS
    assert output_paths.disk_error(OSError(errno.EIO, "Input/output error")) is None
    assert output_paths.disk_error(ValueError("No space left on device")) is None
    failure = output_paths.write_failure("exports/x", full)
    assert str(failure) == "exports/x: cannot write there (No space left on device); free some space and rerun"


def test_a_tool_turns_output_errors_into_its_line_and_keeps_other_errors():
    held = run_lock.RunLockError("runs/x is in use by train.py (pid 1 on h)")
    assert output_paths.output_error_line(held, "run_dir", "runs/x") == f"--run_dir: {held}"
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert output_paths.output_error_line(full, "out_dir", "exports/x") == (
        "--out_dir: exports/x: cannot write there (No space left on device); free some space and rerun")
    assert output_paths.output_error_line(KeyError("bug"), "out_dir", "exports/x") is None
    assert output_paths.output_error(ValueError("bug"), "exports/x") is None


# ---- tools that parse their flags as the others do: a bad one is one line and exit code 2 ----

@pytest.mark.parametrize("tool, args, line", [
    ("list_models.py", ["--no_such=1"], "--no_such: unknown flag"),
    ("list_models.py", ["--input_size=abc"], "--input_size: invalid literal"),
    ("list_models.py", ["--input_size=0"], "--input_size: input_size must be >= 8, got 0"),
    ("list_models.py", ["--input_size=100000"], "--input_size: input_size: 100,000 pixels is beyond the limit"),
    ("list_models.py", ["--num_classes=1"], "--num_classes: num_classes must be >= 2, got 1"),
    ("list_models.py", ["stray"], "unexpected arguments ['stray']"),
    ("benchmark.py", ["--no_such=1"], "--no_such: unknown flag"),
    ("benchmark.py", [], "give one benchmark: supernet | evaluation | latency (got [])"),
    ("benchmark.py", ["nope"], "give one benchmark"),
    ("benchmark.py", ["supernet", "--steps=0"], "--steps: must be >= 1, got 0"),
    ("benchmark.py", ["evaluation", "--archs=1"], "--archs: must be >= 2"),
    ("benchmark.py", ["latency", "--latency_formats=int4"], "--latency_formats: 'int4' is not one of"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_list_models_and_benchmark_refuse_a_bad_flag_in_one_line(tool, args, line):
    """Checked before TensorFlow is imported, so each row is an interpreter start and no more."""
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", tool), *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    lines = [x for x in result.stderr.splitlines() if x.startswith(f"{tool}: error:")]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert lines[0].startswith(f"{tool}: error: {line}"), lines[0]


# ---- sizes beyond the limits: --allow_large overrides on the command line, check_size=False in Python ----

def _huge_network(tmp_path, **space) -> str:
    with open(os.path.join(ROOT, "zoo", "mobilenetv2-style-fmnist", "network.json"), encoding="utf-8") as f:
        data = json.load(f)
    data["space"].update(space or {"channels": [10**9] * 7})
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_a_size_refusal_is_its_own_class_with_the_callers_advice(tmp_path):
    import pickle

    from nse_tf.space import limits
    from nse_tf.space.architecture import ArchitectureError, ArchitectureSizeError, NetworkSpec

    with pytest.raises(ArchitectureError) as info:
        NetworkSpec.load(_huge_network(tmp_path))
    err = info.value
    assert isinstance(err, ArchitectureSizeError) and isinstance(err, limits.SizeLimitError)
    assert err.quantity == "channels"
    assert str(err).endswith(f"(nse_tf.space.limits; {limits.OVERRIDE})")  # the library's advice stays
    line = limits.error_line(err)
    assert line == str(err).replace(limits.OVERRIDE, "pass --allow_large to build it anyway") and "\n" not in line
    assert limits.error_line(ValueError("other")) == "other"  # any other error reads as it is
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is ArchitectureSizeError and str(again) == str(err) and again.quantity == "channels"


def test_resolve_spec_takes_check_size(tmp_path):
    import nse_tf
    from nse_tf.space.limits import SizeLimitError

    path = _huge_network(tmp_path)
    with pytest.raises(SizeLimitError, match="channels: 1,000,000,000 is beyond the limit"):
        nse_tf.resolve_spec(path)
    assert nse_tf.resolve_spec(path, check_size=False).space.channels[1] == 10**9
    with pytest.raises(SizeLimitError, match="input_size: 1,000,000 pixels"):  # overrides are checked too
        nse_tf.resolve_spec("NSENet-27", input_size=10**6)
    assert nse_tf.resolve_spec("NSENet-27", input_size=10**6, check_size=False).space.input_size == 10**6
    with pytest.raises(TypeError, match="check_size must be True or False"):
        nse_tf.resolve_spec("NSENet-27", check_size="no")


def test_the_zoo_loader_takes_check_size():
    from nse_tf.zoo import registry

    entry = registry.get_entry("mobilenetv2-style-fmnist")
    assert entry.network_spec(check_size=False) == entry.network_spec()


def _tool(tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", tool), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def _one_line(result: subprocess.CompletedProcess, tool: str) -> str:
    lines = [x for x in result.stderr.splitlines() if x.startswith(f"{tool}: error:")]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize("tool, flag", [("export.py", "--arch"), ("make_zoo_entry.py", "--arch"),
                                        ("make_baseline.py", "--like")])
def test_a_tool_refuses_a_huge_network_saying_allow_large(tmp_path, tool, flag):
    """Refused before TensorFlow is imported: each row is an interpreter start."""
    path = _huge_network(tmp_path)
    others = {"export.py": [f"--out_dir={tmp_path / 'out'}"],
              "make_zoo_entry.py": ["--name=huge", f"--zoo_dir={tmp_path / 'zoo'}"],
              "make_baseline.py": [f"--out={tmp_path / 'b.json'}"]}[tool]
    line = _one_line(_tool(tool, f"{flag}={path}", *others), tool)
    assert line == (f"{tool}: error: {flag}: {path}: channels: 1,000,000,000 is beyond the limit of 16,384 "
                    "(nse_tf.space.limits; pass --allow_large to build it anyway)"), line


def test_list_models_says_allow_large():
    line = _one_line(_tool("list_models.py", "--input_size=100000"), "list_models.py")
    assert line.endswith("(nse_tf.space.limits; pass --allow_large to build it anyway)"), line


def test_allow_large_overrides_the_limit(tmp_path):
    path = _huge_network(tmp_path, input_size=4000)  # 113 G MACs: over MAX_MACS; make_baseline builds nothing
    refused = _one_line(_tool("make_baseline.py", f"--like={path}", f"--out={tmp_path / 'b.json'}"), "make_baseline.py")
    assert "MACs: " in refused and "--allow_large" in refused
    result = _tool("make_baseline.py", f"--like={path}", f"--out={tmp_path / 'b.json'}", "--allow_large")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "b.json").read_text())["space"]["input_size"] == 4000


# ---- outputs written at the end: checked up front, one line and exit code 2 ----

@pytest.mark.parametrize("case", ["make_baseline dir", "make_baseline under a file", "latency import dir",
                                  "latency import under a file", "plane file", "compare file"])
def test_a_tool_checks_its_output_before_the_work(tmp_path, case):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    network = os.path.join(ROOT, "zoo", "mobilenetv2-style-fmnist", "network.json")
    trained = "mobilenetv2-style-fmnist"
    tool, args, expected = {
        "make_baseline dir": ("make_baseline.py", [f"--like={network}", f"--out={tmp_path}"],
                              f"--out: {tmp_path}: is a directory; name a file"),
        "make_baseline under a file": ("make_baseline.py", [f"--like={network}", f"--out={blocker}/b.json"],
                                       f"--out: {blocker}: exists and is not a directory"),
        "latency import dir": ("latency_table.py", ["import", str(tmp_path), f"--out={tmp_path}"],
                               f"--out: {tmp_path}: is a directory; name a file"),
        "latency import under a file": ("latency_table.py", ["import", str(tmp_path), f"--out={blocker}/t.json"],
                                        f"--out: {blocker}: exists and is not a directory"),
        "plane file": ("plane.py", [f"--row=family:300:1.0:{trained}:0", f"--out_dir={blocker}"],
                       f"--out_dir: {blocker}: exists and is not a directory"),
        "compare file": ("compare.py", [f"--row=baseline:{trained}:0", f"--out_dir={blocker}"],
                         f"--out_dir: {blocker}: exists and is not a directory"),
    }[case]
    line = _one_line(_tool(tool, *args), tool)
    assert line.startswith(f"{tool}: error: {expected}"), line
    assert blocker.read_text() == "x"
