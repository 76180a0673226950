"""Issue 31's faults, a fixture each: damaged search checkpoints, sizes beyond sense, hostile zoo entries and
flagfiles that are not UTF-8. Each ends in a recovery that loses nothing or in one line naming the input."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---- search checkpoints: a round keeps two; damage falls back to the newest intact one ----

@pytest.fixture(scope="module")
def tiny_trainer():
    """test_supernet's two-cell supernet: a round checkpoint of it saves and restores in well under a second."""
    from nse_tf.search import round_trainer as search
    from tests.test_supernet import SPACE, SUBSPACES

    return search.RoundTrainer(SPACE, SUBSPACES, search.OptimConfig(), search.PenaltyConfig(target=1.0, a=0.0),
                               search.RoundConfig(steps=4, steps_per_epoch=4, batch_size=8))


def _round_checkpoint(directory, trainer):
    from nse_tf.search.checkpoints import RoundCheckpoint

    return RoundCheckpoint(str(directory), trainer, {}, writable=True)


@pytest.fixture
def saved_steps(tmp_path, tiny_trainer):
    """A round checkpointed at steps 0, 2 and 4 (so it keeps ckpt-2 and ckpt-4), each with its own alpha."""
    from nse_tf.search import round_trainer as search

    ckpt = _round_checkpoint(tmp_path / "ckpt", tiny_trainer)
    state = search.new_round_state(tiny_trainer, [[], []], seed=0)
    for step in (0, 2, 4):
        state.step = step
        tiny_trainer.net.alpha.assign(tiny_trainer.net.alpha.numpy() * 0 + step)
        ckpt.save(state)
    return tmp_path / "ckpt"


def _restored(directory, trainer, caplog) -> tuple[int, float]:
    """Restore as a rerun would (a new RoundCheckpoint): the step, and the alpha that came with it."""
    trainer.net.alpha.assign(trainer.net.alpha.numpy() * 0 - 1)
    with caplog.at_level(logging.WARNING, logger="nse_tf.search"):
        host = _round_checkpoint(directory, trainer).restore()
    return host.step, float(trainer.net.alpha.numpy().flat[0])


def _files(directory) -> set[str]:
    return {p.name for p in directory.iterdir()}


def test_a_round_keeps_its_two_newest_checkpoints(saved_steps, tiny_trainer, caplog):
    assert {n.split(".")[0] for n in _files(saved_steps) if n != "checkpoint"} == {"ckpt-2", "ckpt-4"}
    assert _restored(saved_steps, tiny_trainer, caplog) == (4, 4.0)
    assert "damaged" not in caplog.text


def _truncate(path, keep: float) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[:int(len(raw) * keep)])


NEWEST_DAMAGE = {
    "truncated data": lambda d: _truncate(next(d.glob("ckpt-4.data-*")), 0.5),
    "emptied data": lambda d: _truncate(next(d.glob("ckpt-4.data-*")), 0),
    "truncated index": lambda d: _truncate(d / "ckpt-4.index", 0.5),
    "missing data": lambda d: next(d.glob("ckpt-4.data-*")).unlink(),
    "truncated host state": lambda d: _truncate(d / "ckpt-4.host.json", 0.5),
}


@pytest.mark.parametrize("how", sorted(NEWEST_DAMAGE))
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(saved_steps, tiny_trainer, caplog, how):
    NEWEST_DAMAGE[how](saved_steps)
    assert _restored(saved_steps, tiny_trainer, caplog) == (2, 2.0)
    assert "ckpt-4 is damaged" in caplog.text and "resuming from" in caplog.text
    assert (saved_steps / "ckpt-2.index").exists()


@pytest.mark.parametrize("garbage", [b"\x00garbage" * 10, b"", b"\xff\xfe not utf-8", b'model_checkpoint_path: "../x"'],
                         ids=["binary", "empty", "not utf-8", "outside path"])
def test_a_garbled_checkpoint_list_resumes_from_the_files_on_disk(saved_steps, tiny_trainer, caplog, garbage):
    """The list TF keeps (``checkpoint``) garbled: no silent restart at step 0; the newest checkpoint on disk
    is restored, the list is rewritten, and the intact checkpoints stay."""
    (saved_steps / "checkpoint").write_bytes(garbage)
    assert _restored(saved_steps, tiny_trainer, caplog) == (4, 4.0)
    assert "checkpoint is damaged" in caplog.text
    import tensorflow as tf

    assert tf.train.latest_checkpoint(str(saved_steps)) == str(saved_steps / "ckpt-4")
    assert {"ckpt-2.index", "ckpt-4.index", "ckpt-2.host.json", "ckpt-4.host.json"} <= _files(saved_steps)


def test_a_round_inherits_from_the_newest_intact_checkpoint_of_the_round_before(saved_steps, caplog):
    """``SearchRun.previous_round_checkpoint`` reads the round before as a round restores its own:
    ``tf.train.latest_checkpoint`` gave the damaged newest checkpoint, or nothing under a garbled list. It only
    reads: the list stays as it was."""
    import types

    from nse_tf.search.checkpoints import newest_intact_checkpoint
    from nse_tf.search.evolution import StateError
    from nse_tf.search.run import SearchRun

    run = types.SimpleNamespace(path=lambda *parts: str(saved_steps))  # round_00/ckpt of a run directory
    assert SearchRun.previous_round_checkpoint(run, 1) == str(saved_steps / "ckpt-4")
    (saved_steps / "checkpoint").write_bytes(b"\x00garbage" * 10)
    with caplog.at_level(logging.WARNING, logger="nse_tf.search"):
        assert SearchRun.previous_round_checkpoint(run, 1) == str(saved_steps / "ckpt-4")
    assert "checkpoint is damaged" in caplog.text
    NEWEST_DAMAGE["truncated data"](saved_steps)
    with caplog.at_level(logging.WARNING, logger="nse_tf.search"):
        assert SearchRun.previous_round_checkpoint(run, 1) == str(saved_steps / "ckpt-2")
    assert "ckpt-4 is damaged" in caplog.text and "using " in caplog.text
    assert (saved_steps / "checkpoint").read_bytes() == b"\x00garbage" * 10
    _truncate(next(saved_steps.glob("ckpt-2.data-*")), 0.5)
    with pytest.raises(StateError, match=r"no intact checkpoint: ckpt-4 \(.*\); ckpt-2 \(.*\); round 2 cannot "
                                         r"inherit its weights"):
        SearchRun.previous_round_checkpoint(run, 1)
    assert newest_intact_checkpoint(str(saved_steps.parent / "absent")) is None


def test_after_a_fallback_nothing_intact_is_deleted_before_a_newer_checkpoint_reads_back(saved_steps, tiny_trainer,
                                                                                          caplog):
    """ckpt-4 damaged, resumed from ckpt-2: the save of step 4 replaces the damaged one, and ckpt-2 goes only
    with the save of step 6, once 4 and 6 read back; a save that does not read back deletes nothing."""
    from nse_tf.search.evolution import StateError

    NEWEST_DAMAGE["truncated data"](saved_steps)
    ckpt = _round_checkpoint(saved_steps, tiny_trainer)
    state = ckpt.restore()
    assert state.step == 2
    state.step = 4
    ckpt.save(state)
    assert {"ckpt-2.index", "ckpt-4.index"} <= _files(saved_steps)

    def unreadable(step: int) -> None:
        raise ValueError("Read less bytes than requested")

    ckpt._verify, state.step = unreadable, 6
    with pytest.raises(StateError, match="step 6 does not read back .*the previous checkpoint is intact"):
        ckpt.save(state)
    assert {"ckpt-2.index", "ckpt-4.index"} <= _files(saved_steps)
    del ckpt._verify
    ckpt.save(state)
    assert not any(n.startswith("ckpt-2") for n in _files(saved_steps))
    assert _restored(saved_steps, tiny_trainer, caplog)[0] == 6


def test_a_save_that_failed_part_way_leaves_the_previous_checkpoint_and_is_cleaned_up(saved_steps, tiny_trainer,
                                                                                    caplog):
    """A full disk stopped the save of step 6 after its host state and part of TF's ``ckpt-6_temp`` folder: the
    next run resumes from step 4 and removes what the failed save left."""
    (saved_steps / "ckpt-6_temp").mkdir()
    (saved_steps / "ckpt-6_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\x00" * 100)
    (saved_steps / "ckpt-6.host.json").write_text((saved_steps / "ckpt-4.host.json").read_text())
    (saved_steps / ".tmp-abc123ckpt-6.host.json").write_text("{")
    assert _restored(saved_steps, tiny_trainer, caplog) == (4, 4.0)
    assert "damaged" not in caplog.text
    assert "ckpt-6_temp" not in _files(saved_steps) and ".tmp-abc123ckpt-6.host.json" not in _files(saved_steps)


def test_a_full_disk_during_a_save_removes_what_it_wrote(saved_steps, tiny_trainer, monkeypatch):
    import errno

    from nse_tf.search.evolution import StateError

    ckpt = _round_checkpoint(saved_steps, tiny_trainer)
    state = ckpt.restore()
    state.step = 6

    def disk_full(*args, **kwargs):
        (saved_steps / "ckpt-6_temp").mkdir()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt._open(), "save", disk_full)
    with pytest.raises(StateError, match=r"step 6 \(No space left on device\); the previous checkpoint is intact"):
        ckpt.save(state)
    assert not any(n.startswith("ckpt-6") for n in _files(saved_steps))
    assert {"ckpt-2.index", "ckpt-4.index"} <= _files(saved_steps)


# ---- sizes beyond sense: refused with one line before anything is built ----

TRAINED_NETWORK = os.path.join(ROOT, "zoo", "mobilenetv2-style-fmnist", "network.json")


def _network(**space) -> dict:
    with open(TRAINED_NETWORK, encoding="utf-8") as f:
        data = json.load(f)
    data["space"].update(space)
    return data


@pytest.mark.parametrize("change, field", [
    ({"channels": [10**9] * 7}, "channels"),
    ({"head_channels": 10**12}, "head_channels"),
    ({"scale": 1e9}, "scale"),
    ({"input_size": 10**7}, "input_size"),
    ({"counts": [200_000, 2, 2, 2, 1, 1]}, "counts"),
    ({"input_channels": 10**6, "mean": [0.0], "std": [1.0]}, "input_channels"),
    ({"num_classes": 10**9}, "num_classes"),
    ({"input_size": 4000}, "MACs"),  # every field within its limit, the network not
    ({"head_channels": 16384, "num_classes": 100_000}, "parameters"),  # a 1.6 G-weight classifier
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_network_beyond_the_limits_is_one_line_naming_the_field(change, field):
    from nse_tf.space.architecture import ArchitectureError, NetworkSpec

    with pytest.raises(ArchitectureError) as info:
        NetworkSpec.from_dict(_network(**change), source="huge.json")
    message = str(info.value)
    assert message.startswith(f"huge.json: {field}: ") and "beyond the limit" in message, message
    assert "check_size=False" in message and "\n" not in message


def test_200000_cells_are_refused_at_once():
    import time

    from nse_tf.space.architecture import ArchitectureError, NetworkSpec

    data = _network()
    data["cells"] = [["mb_k3_t1"]] * 200_000
    started = time.perf_counter()
    with pytest.raises(ArchitectureError, match="cells: 200,000 cells is beyond the limit of 1,000 cells"):
        NetworkSpec.from_dict(data, source="long.json")
    assert time.perf_counter() - started < 5  # not a hang (a generous bound: the check itself takes milliseconds)


def test_the_limits_are_overridden_explicitly():
    from nse_tf.space import limits
    from nse_tf.space.architecture import NetworkSpec
    from nse_tf.space.macro import MacroSpace

    data = _network(input_size=4000)  # 106 G MACs: over MAX_MACS, but nothing is built here
    spec = NetworkSpec.from_dict(data, check_size=False)
    assert spec.space.input_size == 4000
    with pytest.raises(ValueError, match="MACs"):
        spec.check_size()
    assert MacroSpace.from_dict(_network(input_size=10**7)["space"], check_size=False).input_size == 10**7
    assert limits.MAX_CHANNELS >= 4096 and limits.MAX_INPUT_SIZE >= 224  # far above any network of the project


def test_the_zoo_networks_are_within_the_limits():
    from nse_tf.space.architecture import NetworkSpec

    for path in sorted(os.listdir(os.path.join(ROOT, "zoo"))):
        network = os.path.join(ROOT, "zoo", path, "network.json")
        if os.path.exists(network):
            NetworkSpec.load(network).check_size()


def test_a_json_nested_100000_deep_is_one_line_not_a_recursion_error(tmp_path):
    from nse_tf.space.architecture import ArchitectureError, NetworkSpec
    from nse_tf.utils import bounded_json

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ArchitectureError, match=r"deep.json: not valid JSON \(JSON nested deeper than 32 levels\)"):
        NetworkSpec.load(deep)
    with pytest.raises(ValueError, match="deeper than 64"):
        bounded_json.load(deep)
    # brackets inside strings do not count; the project's own files are far from the bound
    assert bounded_json.loads('{"a": "[[[[[[[[", "b": [[1]], "c": "\\"{{{"}', max_depth=3)["b"] == [[1]]
    assert NetworkSpec.load(TRAINED_NETWORK).name


def test_a_network_file_that_is_not_utf8_is_one_line(tmp_path):
    from nse_tf.space.architecture import ArchitectureError, NetworkSpec

    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"format": "nse_tf.network", "name": "caf\xe9"}')
    with pytest.raises(ArchitectureError, match="latin1.json: not UTF-8 text"):
        NetworkSpec.load(path)


# ---- hostile zoo entries: files only inside the entry; one broken entry does not hide the others ----

@pytest.fixture
def small_zoo(tmp_path, monkeypatch):
    """Two entries copied from the repository's zoo (architectures only) under $NSE_TF_ZOO."""
    import shutil

    from nse_tf.zoo import registry

    root = tmp_path / "zoo"
    for name in ("NSENet", "NSENet-27"):
        shutil.copytree(os.path.join(ROOT, "zoo", name), root / name)
    monkeypatch.setenv(registry.ZOO_ENV, str(root))
    return root


def _edit_files(entry, edit) -> None:
    meta_path = entry / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["files"] = edit(meta["files"])
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize("filename", ["../NSENet-27/network.json", "/etc/passwd", "sub/../../x", "", "."])
def test_zoo_metadata_naming_a_file_outside_the_entry_is_refused(small_zoo, filename):
    from nse_tf.zoo import registry

    _edit_files(small_zoo / "NSENet", lambda files: {**files, filename: "0" * 64})
    with pytest.raises(registry.ZooError, match="not a plain name inside the entry") as info:
        registry.get_entry("NSENet")
    assert "metadata.json" in str(info.value)


@pytest.mark.parametrize("link", ["network.json", "metadata.json"])
def test_a_zoo_file_that_is_a_symlink_out_of_the_entry_is_refused(small_zoo, tmp_path, link):
    from nse_tf.zoo import registry

    outside = tmp_path / f"outside-{link}"
    outside.write_bytes((small_zoo / "NSENet" / link).read_bytes())
    (small_zoo / "NSENet" / link).unlink()
    (small_zoo / "NSENet" / link).symlink_to(outside)
    with pytest.raises(registry.ZooError, match=f"{link} is a symlink to .*outside the entry"):
        registry.get_entry("NSENet").network_spec()
    assert registry.get_entry("NSENet-27").network_spec().name  # the other entry is untouched


def test_a_symlink_inside_the_entry_is_fine(small_zoo):
    from nse_tf.zoo import registry

    entry = small_zoo / "NSENet"
    (entry / "copy.json").write_bytes((entry / "network.json").read_bytes())
    (entry / "network.json").unlink()
    (entry / "network.json").symlink_to("copy.json")
    assert registry.get_entry("NSENet").network_spec().name


@pytest.mark.parametrize("damage", [b"{ not json", b"\xff\xfe", b"[" * 100_000])
def test_zoo_table_names_a_broken_entry_and_lists_the_rest(small_zoo, capsys, damage):
    from nse_tf.cli import zoo_table

    (small_zoo / "NSENet" / "metadata.json").write_bytes(damage)
    assert zoo_table.main([]) == 2
    out, err = capsys.readouterr()
    assert "| NSENet-27 |" in out and "| NSENet |" not in out
    lines = [line for line in err.splitlines() if line.startswith("zoo_table.py: error:")]
    assert len(lines) == 1 and "zoo entry NSENet left out" in lines[0] and "metadata.json" in lines[0], err
    assert "Traceback" not in err


# ---- flagfiles that are not UTF-8: one line naming the file, exit 2 ----

def test_a_flagfile_that_is_not_utf8_is_one_line_naming_it(tmp_path, capsys):
    from absl import flags

    from nse_tf.utils.cli import flags_parser

    bad = tmp_path / "bad.flags"
    bad.write_bytes(b"--epochs=3\n--name=caf\xe9\n")
    outer = tmp_path / "outer.flags"
    outer.write_text(f"--flagfile={bad}\n")
    for flagfile in (bad, outer):  # named the file at fault, nested or not
        flags.FLAGS.unparse_flags()
        with pytest.raises(SystemExit) as info:
            flags_parser("tool.py")(["tool.py", f"--flagfile={flagfile}"])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert err == f"tool.py: error: --flagfile: {bad} is not UTF-8 text (invalid continuation byte at byte 21)\n"


def test_every_tool_refuses_a_flagfile_that_is_not_utf8(tmp_path):
    """One tool end to end (each parses its flags with nse_tf.utils.cli.flags_parser before any work)."""
    bad = tmp_path / "bad.flags"
    bad.write_bytes(b"--model=caf\xe9\n")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "make_baseline.py"), f"--flagfile={bad}"],
                            capture_output=True, text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith(f"make_baseline.py: error: --flagfile: {bad}")
