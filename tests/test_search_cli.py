"""tools/search.py end to end: flag errors, state-file errors, and a real kill + resume that ends in the same
final state as an uninterrupted run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEARCH = os.path.join(ROOT, "tools", "search.py")
FMNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"

# A tiny search: 6 R/E cells of 8 channels, a 3-op pool with K = 2 -> 2 rounds of 8 steps. The cheapest
# architectures (about 0.19M MACs) fall in the extras' window (0.15, 0.2], so end-of-round sampling finds its
# extra and stops early instead of spending all --max_sample_draws looking for one.
TINY = [
    "--space=small", "--counts=0,0,0,0,0,0", "--channels=8,8,8,8,8,8,8", "--head_channels=16",
    "--pool=mb_k3_t1,mb_k5_t1,mb_k3_t3", "--ops_per_cell=2", "--batch_size=32", "--heldout_examples=256",
    "--steps_per_round=8", "--warmup_epochs=0", "--num_archs=3", "--num_extra=1", "--bn_batches=2",
    "--checkpoint_every=2", "--target_macs=0.35", "--mac_drift=0.15", "--extra_margin=0.05", "--penalty_a=1",
]
needs_data = pytest.mark.skipif(not os.path.exists(FMNIST), reason="dataset-fashion-mnist is not installed")


def search_env() -> dict[str, str]:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def run_search(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SEARCH, *args], capture_output=True, text=True, timeout=timeout,
                          env=search_env())


def error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("search.py: error:")]
    assert len(lines) == 1, result.stderr[-2000:]
    return lines[0]


def parsed_cli(*args: str):
    """The search's command line (nse_tf/cli/search.py) imported into this process with ``args`` parsed."""
    from absl import flags

    from nse_tf.cli import search as cli

    flags.FLAGS.unparse_flags()
    flags.FLAGS(["search.py", *args])
    return cli


def run_in_process(*args: str, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """tools/search.py's main() in this process (flag errors end before any TF work): no interpreter start."""
    code = parsed_cli(*args).main(["search.py"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("args, flag", [
    (["--pool=mac99"], "--pool"),
    (["--weight_lr=-0.1"], "--weight_lr"),
    (["--ops_per_cell=1"], "--ops_per_cell"),
    (["--data_dir=/nonexistent/fmnist"], "--data_dir"),
    (["--target_macs=5000"], "--target_macs"),
    (["--counts=1,x"], "--counts"),
    (["--target_ms=2"], "--target_ms"),  # a latency flag in a MACs search
    (["--window=0.3"], "--window"),
    (["--window=a,b"], "--window"),
    (["--window=0.3,0.4", "--mac_drift=0.1"], "--mac_drift"),  # one window, given twice
    (["--window=500,600"], "--window"),  # no network of the space costs that much
    (["--penalty_b=0.5"], "--penalty_b"),  # |x|^b with b < 1: NaN gate gradients at the target
    (["--penalty_a=-1"], "--penalty_a"),
    # issue 30's levers
    (["--exclude_ops=1-99:mb_k3_t1"], "--exclude_ops"),  # cells outside the space's 6
    (["--exclude_ops=mb_k3_t1"], "--exclude_ops"),  # no CELLS: part
    (["--exclude_ops=all:mb_k3_t1,mb_k5_t1,mb_k3_t3"], "--exclude_ops"),  # nothing left in a cell
    (["--exclude_ops=0:mb_k9_t9"], "--exclude_ops"),
    (["--seed_archs=/nonexistent/seed.json"], "--seed_archs"),
    (["--verify_top=-1"], "--verify_top"),
    (["--verify_seeds=0"], "--verify_seeds"),
    (["--verify_shard=2/2"], "--verify_shard"),
    (["--gate_warmup=1.5"], "--gate_warmup"),
    (["--uniform_fraction=2"], "--uniform_fraction"),
    (["--init_from=/somewhere", "--exclude_ops=0:mb_k3_t1"], "--exclude_ops"),
])
def test_bad_flag_is_one_line_naming_the_flag(tmp_path, capsys, args, flag):
    code, err = run_in_process(f"--run_dir={tmp_path / 'run'}", *TINY, *args, capsys=capsys)
    lines = [line for line in err.splitlines() if line.startswith("search.py: error:")]
    assert code == 2 and len(lines) == 1 and flag in lines[0], err
    assert not os.path.exists(tmp_path / "run" / "evolution_state.json")


# The same tiny search priced in milliseconds; a stub timer makes its latency table in milliseconds of CPU.
TINY_LATENCY = [a for a in TINY if not a.startswith(("--target_macs", "--mac_drift", "--extra_margin", "--penalty_a"))]
TINY_LATENCY += ["--cost=latency", "--target_ms=0.5", "--drift_ms=0.2", "--extra_margin_ms=0.1", "--penalty_a=1"]


@pytest.fixture
def stub_latency_timer(monkeypatch):
    """0.01 ms per thousand parameters plus 0.02 ms per invoke: a table without converting any model."""
    from nse_tf.cost import measurement

    def write_piece(model, piece, tflite_format, workdir):
        path = os.path.join(workdir, f"{piece.name}.tflite")
        with open(path, "w") as f:
            f.write(str(model.count_params()))
        return path

    monkeypatch.setattr(measurement, "_write_piece", write_piece)
    monkeypatch.setattr(measurement, "_interleaved_ms", lambda paths, *args: {
        p: 0.02 + 1e-5 * int(open(p).read()) for p in paths})


@pytest.mark.parametrize("args, flag", [
    (["--target_ms=5000"], "--target_ms"),  # outside the space's range under the table
    (["--target_macs=0.3"], "--target_macs"),  # a MACs flag in a latency search
    (["--drift_ms=0"], "--drift_ms"),
    (["--strategy=multi_worker"], "--latency_table"),  # no table yet: the workers would each measure their own
])
def test_bad_latency_flag_is_one_line_naming_the_flag(tmp_path, capsys, stub_latency_timer, args, flag):
    code, err = run_in_process(f"--run_dir={tmp_path / 'run'}", *TINY_LATENCY, *args, capsys=capsys)
    lines = [line for line in err.splitlines() if line.startswith("search.py: error:")]
    assert code == 2 and len(lines) == 1 and flag in lines[0], err
    assert not os.path.exists(tmp_path / "run" / "evolution_state.json")


def test_latency_target_is_required(tmp_path, capsys):
    args = [a for a in TINY_LATENCY if not a.startswith("--target_ms")]
    code, err = run_in_process(f"--run_dir={tmp_path / 'run'}", *args, capsys=capsys)
    assert code == 2 and "--target_ms: is required with --cost=latency" in err, err


def test_latency_table_of_another_space_is_refused(tmp_path, capsys, stub_latency_timer):
    table = tmp_path / "table.json"
    code, _ = run_in_process(f"--run_dir={tmp_path / 'a'}", *TINY_LATENCY, f"--latency_table={table}",
                             "--strategy=multi_worker", capsys=capsys)
    assert code == 2 and not table.exists()  # refused before measuring anything
    code, err = run_in_process(f"--run_dir={tmp_path / 'a'}", *TINY_LATENCY, f"--latency_table={table}",
                               "--target_ms=5000", capsys=capsys)
    assert code == 2 and table.exists()  # measured and written, then the target refused
    before = table.read_text()
    code, err = run_in_process(f"--run_dir={tmp_path / 'b'}", *TINY_LATENCY, f"--latency_table={table}",
                               "--channels=8,8,8,8,8,8,16", capsys=capsys)
    assert code == 2 and "--latency_table" in err and "measured for another space (channels differ)" in err, err
    assert table.read_text() == before
    code, err = run_in_process(f"--run_dir={tmp_path / 'c'}", *TINY_LATENCY, f"--latency_table={table}",
                               "--latency_format=int8", capsys=capsys)
    assert code == 2 and "search.py: error: --latency_table:" in err and "not int8 (--latency_format)" in err, err
    assert table.read_text() == before


def test_latency_format_belongs_to_latency_searches(tmp_path, capsys):
    code, err = run_in_process(f"--run_dir={tmp_path / 'run'}", *TINY, "--latency_format=int8", capsys=capsys)
    assert code == 2 and "search.py: error: --latency_format: applies to --cost=latency only" in err, err


def test_a_started_latency_search_never_measures_a_new_table(tmp_path, capsys, stub_latency_timer):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "evolution_state.json").write_text("{}")  # the run has started; its table has been deleted
    code, err = run_in_process(f"--run_dir={run_dir}", *TINY_LATENCY, capsys=capsys)
    assert code == 2 and "--latency_table" in err and "is gone" in err, err
    assert not (run_dir / "latency_table.json").exists()


def test_bad_flag_from_the_command_line_exits_2_without_traceback(tmp_path):
    assert "--ops_per_cell" in error_line(run_search(f"--run_dir={tmp_path / 'run'}", *TINY, "--ops_per_cell=1"))


def test_missing_run_dir():
    assert "--run_dir" in error_line(run_search(*TINY))


def _final_state(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "evolution_state.json"), encoding="utf-8") as f:
        state = json.load(f)
    for entry in state["history"]:  # wall-clock figures differ between runs by nature
        entry.pop("train_seconds"), entry.pop("eval_seconds")
    return state


def _kill_when(args: list[str], ready, timeout: float = 600) -> None:
    proc = subprocess.Popen([sys.executable, SEARCH, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=search_env())
    deadline = time.time() + timeout
    try:
        while not ready():
            assert proc.poll() is None, "the search ended before the kill point"
            assert time.time() < deadline, "kill point never reached"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)


def _phase(run_dir: str) -> tuple[int, str] | None:
    try:
        with open(os.path.join(run_dir, "evolution_state.json"), encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    return state["round"], state["phase"]


# The kill-and-resume runs inherit weights between rounds: that path restores a round mid-way, repeats an
# interrupted evaluation and, killed between two rounds, must start the next one from the same weights.
KILLED = [*TINY, "--inherit_weights"]


@needs_data
@pytest.mark.slow  # end to end; CI's 15 minutes (run with -m slow)
def test_killed_run_resumes_to_the_same_final_state(tmp_path):
    # The uninterrupted reference runs beside the killed one: each process spends most of its time tracing
    # graphs on one core, so on two cores this takes about the time of the killed sequence alone.
    reference = str(tmp_path / "reference")
    log = tmp_path / "reference.log"
    with open(log, "w") as stderr:  # a file, not a pipe: nobody reads a pipe until the end
        uninterrupted = subprocess.Popen([sys.executable, SEARCH, f"--run_dir={reference}", *KILLED],
                                         stdout=subprocess.DEVNULL, stderr=stderr, env=search_env())
        try:
            _kill_and_resume(str(tmp_path / "killed"))
        except BaseException:
            uninterrupted.kill()  # the test has failed: do not wait for the reference to finish
            raise
        finally:
            uninterrupted.wait(timeout=600)
    assert uninterrupted.returncode == 0, log.read_text()[-3000:]
    assert os.path.exists(os.path.join(reference, "search_report.md"))
    assert _final_state(str(tmp_path / "killed")) == _final_state(reference)
    assert _final_state(reference)["history"][1]["inherited_variables"] > 0


def _kill_and_resume(killed: str) -> None:
    """Kill a search four times at chosen points, then let it finish."""
    args = [f"--run_dir={killed}", *KILLED]
    # Kill 1: mid-round, right after a checkpoint beyond step 0 appeared.
    ckpt = os.path.join(killed, "round_00", "ckpt", "ckpt-4.index")
    _kill_when(args, lambda: os.path.exists(ckpt))
    assert _phase(killed) == (0, "train")
    # Kill 2: during the end-of-round evaluation of round 1.
    _kill_when(args, lambda: _phase(killed) == (0, "evaluate"))
    # Kill 3: between the rounds: round 1's state is saved, round 2 (building its supernet, seconds) has no
    # checkpoint yet, so only round 1's final checkpoint on disk holds the weights round 2 inherits.
    _kill_when(args, lambda: _phase(killed) == (1, "train"))
    assert not os.path.exists(os.path.join(killed, "round_01", "ckpt", "checkpoint"))
    assert os.path.exists(os.path.join(killed, "round_00", "ckpt", "checkpoint"))
    # Kill 4: inside a state write, as round 2's move to its evaluation is being renamed into place.
    inside_write = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "kill_at_replace.py"),
                                   "evolution_state.json", "1", SEARCH, *args], capture_output=True, text=True,
                                  env=search_env(), timeout=600)
    assert inside_write.returncode == -9, inside_write.stderr[-3000:]
    assert _phase(killed) == (1, "train")
    result = run_search(*args)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> str:
    """One search stopped (checkpointed) after 2 steps, shared by the tests that only resume it."""
    run_dir = tmp_path_factory.mktemp("stopped") / "run"
    result = run_search(f"--run_dir={run_dir}", *TINY, "--stop_after_steps=2")
    assert result.returncode == 0, result.stderr[-3000:]
    return str(run_dir)


@needs_data
def test_corrupted_state_is_a_clear_error(tmp_path, stopped_run):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_run, run_dir)
    state = run_dir / "evolution_state.json"
    state.write_text(state.read_text()[:40])
    assert "evolution_state.json" in error_line(run_search(f"--run_dir={run_dir}", *TINY))
    assert state.read_text().startswith("{")  # nothing already written is replaced


def _damage(ckpt_dir, step: int, how: str) -> str:
    """Damage checkpoint ``step`` of a round as a crash or a bad disk would; the file at fault."""
    index = ckpt_dir / f"ckpt-{step}.index"
    if how == "deleted index":
        index.unlink()
        return index.name
    if how == "garbage index":
        index.write_bytes(b"\x00garbage" * 10)
        return index.name
    data = next(ckpt_dir.glob(f"ckpt-{step}.data-*"))
    if how == "truncated data":  # a disk that filled or a copy cut short
        data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
        return data.name
    raw = bytearray(data.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 64] = os.urandom(64)
    data.write_bytes(bytes(raw))
    return data.name


@needs_data
@pytest.mark.parametrize("how", ["deleted index", pytest.param("random bytes in the data", marks=pytest.mark.slow),
                                 pytest.param("truncated data", marks=pytest.mark.slow)])
def test_a_damaged_checkpoint_falls_back_to_the_one_before(tmp_path, stopped_run, how):
    """The stopped run keeps ckpt-0 and ckpt-2; with ckpt-2 damaged it resumes from ckpt-0, names the damaged
    checkpoint, and retrains to the same step-2 state."""
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_run, run_dir)
    ckpt_dir = run_dir / "round_00" / "ckpt"
    intact_host = json.loads((ckpt_dir / "ckpt-2.host.json").read_text())
    _damage(ckpt_dir, 2, how)
    result = run_search(f"--run_dir={run_dir}", *TINY, "--stop_after_steps=2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "checkpoint" in result.stderr and "ckpt-2 is damaged" in result.stderr, result.stderr[-3000:]
    assert "resuming from" in result.stderr and "ckpt-0, step 0" in result.stderr
    assert json.loads((ckpt_dir / "ckpt-2.host.json").read_text()) == intact_host


@needs_data
@pytest.mark.slow  # tests/test_reliability.py checks the same on a round checkpoint alone (run with -m slow)
def test_a_garbled_checkpoint_list_resumes_from_the_newest_checkpoint(tmp_path, stopped_run):
    """TF's ``checkpoint`` list garbled: the run resumes at step 2 from the files on disk, with a warning, and
    neither restarts at step 0 nor deletes the intact checkpoints."""
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_run, run_dir)
    ckpt_dir = run_dir / "round_00" / "ckpt"
    intact = {p.name: p.read_bytes() for p in ckpt_dir.glob("ckpt-2*")}
    (ckpt_dir / "checkpoint").write_bytes(b"\x00garbage" * 10)
    result = run_search(f"--run_dir={run_dir}", *TINY, "--stop_after_steps=3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "checkpoint is damaged" in result.stderr, result.stderr[-3000:]
    assert {p.name: p.read_bytes() for p in ckpt_dir.glob("ckpt-2*")} == intact
    assert json.loads((ckpt_dir / "ckpt-3.host.json").read_text())["step"] == 3  # one step on from step 2
    assert not list(ckpt_dir.glob("ckpt-0*"))  # gone only once ckpt-3 read back


@needs_data
def test_no_intact_checkpoint_is_one_line_naming_the_files(tmp_path, stopped_run):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_run, run_dir)
    ckpt_dir = run_dir / "round_00" / "ckpt"
    _damage(ckpt_dir, 2, "garbage index")
    _damage(ckpt_dir, 0, "random bytes in the data")
    line = error_line(run_search(f"--run_dir={run_dir}", *TINY, "--stop_after_steps=2"))
    assert "no intact checkpoint" in line and "ckpt-2" in line and "ckpt-0" in line
    assert f"delete {ckpt_dir} to restart the round" in line


@needs_data
def test_a_missing_state_beside_outputs_is_an_error_not_a_restart(tmp_path, stopped_run):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_run, run_dir)
    (run_dir / "evolution_state.json").unlink()
    line = error_line(run_search(f"--run_dir={run_dir}", *TINY))
    assert "evolution_state.json is missing" in line and "round_00" in line
    assert not (run_dir / "evolution_state.json").exists()


@needs_data
@pytest.mark.slow  # end to end; CI's 15 minutes (run with -m slow)
def test_a_round_whose_evaluation_failed_resumes_with_new_end_of_round_settings(tmp_path):
    """Sampling fails only after the round is trained: the end-of-round settings may change on resume (and
    the change is recorded), so the trained round is not stranded; settings that training reads stay fixed."""
    run_dir = tmp_path / "run"
    line = error_line(run_search(f"--run_dir={run_dir}", *TINY, "--max_sample_draws=1"))
    assert "round 1: only" in line and "may change when it resumes" in line and "--num_archs" in line
    assert _phase(str(run_dir)) == (0, "evaluate")
    line = error_line(run_search(f"--run_dir={run_dir}", *TINY, "--weight_lr=0.05"))
    assert "--weight_lr was 0.4, now 0.05" in line
    damaged = tmp_path / "damaged"  # the same, with the round's final checkpoint damaged
    shutil.copytree(run_dir, damaged)
    _damage(damaged / "round_00" / "ckpt", 8, "random bytes in the data")
    for directory, stop in ((run_dir, ["--stop_after_steps=1"]), (damaged, [])):
        result = run_search(f"--run_dir={directory}", *TINY, *stop)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "--max_sample_draws changes from 1 to 200000" in result.stderr
    assert _phase(str(run_dir)) == (1, "train") and _phase(str(damaged))[1] == "done"
    assert "at step 6 of 8; training the rest again" in result.stderr  # not an evaluation of step 6's weights
    assert (damaged / "round_00" / "pareto.json").read_text() == (run_dir / "round_00" / "pareto.json").read_text()
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["changes"] == [{"round": 1, "setting": "evolution.max_sample_draws", "flag": "max_sample_draws",
                                 "was": 1, "now": 200000}]
    assert saved["evolution"]["max_sample_draws"] == 200000


@needs_data
def test_resume_with_other_flags_is_refused(tmp_path, stopped_run):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_run, run_dir)
    line = error_line(run_search(f"--run_dir={run_dir}", *TINY, "--weight_lr=0.05"))
    assert "config.json" in line and "--weight_lr was 0.4, now 0.05" in line


# train_*: tools/train.py's; ranking_* and random_search_*: the stand-alone tools' (tests/test_standalone.py)
SEARCH_FLAGFILES = sorted(f for f in os.listdir(os.path.join(ROOT, "configs"))
                          if f.endswith(".flags") and not f.startswith(("train_", "ranking_", "random_search_")))


@pytest.mark.parametrize("flagfile", SEARCH_FLAGFILES)
def test_every_committed_search_flagfile_builds_its_config(flagfile, monkeypatch):
    """Each configs/*.flags search passes every check short of loading data (the latency one reads its
    committed table and finds its target inside the space's range), run from the repository root."""
    monkeypatch.chdir(ROOT)
    config = parsed_cli(f"--flagfile=configs/{flagfile}").build_config()
    assert config.penalty.target > 0
    if config.cost == "latency":
        assert os.path.isfile(config.latency_table_path)  # committed, not measured by this test


@pytest.mark.parametrize("flagfile, run", [
    # written with MACs-only keys ("mac_drift", no "cost")
    ("fashion_mnist_nse.flags", "fashion_mnist_nse"),
    # written before --window existed
    ("fashion_mnist_nse_latency.flags", "fashion_mnist_nse_latency"),
    # written before --bn_start existed
    ("fashion_mnist_nse_latency_wide.flags", "fashion_mnist_nse_latency_wide"),
])
def test_committed_run_directories_still_match_their_flagfiles(flagfile, run):
    """A committed run directory's config.json, read through upgrade_saved_config, equals what its flagfile
    builds today: rerunning the committed command resumes it instead of refusing it."""
    from nse_tf.search.saved_config import upgrade_saved_config

    now = parsed_cli(f"--flagfile={os.path.join(ROOT, 'configs', flagfile)}").build_config().to_json()
    with open(os.path.join(ROOT, "results", run, "config.json"), encoding="utf-8") as f:
        saved = json.load(f)
    upgraded = upgrade_saved_config(saved)
    assert [k for k in set(upgraded) | set(now) if k != "run_dir" and upgraded.get(k) != now.get(k)] == []


@needs_data
@pytest.mark.slow  # a tiny search and a few short stand-alone trainings on Fashion-MNIST (run with -m slow)
@pytest.mark.timeout(1800)
def test_levers_and_the_verification_stage_end_to_end(tmp_path):
    """Uniform candidates, per-cell exclusions and a seed architecture shape the rounds; the verification
    stage, split over two shards, trains the shortlist alone and writes the pick with the best mean."""
    from nse_tf.search.verification import arch_label
    from nse_tf.space.architecture import Architecture, NetworkSpec

    space = parsed_cli("--run_dir=x", *TINY).build_config().space
    seed_path = str(tmp_path / "seed.json")
    NetworkSpec(space, Architecture.from_cells([["mb_k3_t1"]] * 6, space.get_pool()), "seed").save(seed_path)
    run_dir = str(tmp_path / "run")
    args = [f"--run_dir={run_dir}", *TINY, f"--seed_archs={seed_path}", "--uniform_fraction=0.5",
            "--exclude_ops=4-5:mb_k5_t1", "--gate_warmup=0.25", "--verify_top=1", "--verify_seeds=2",
            "--verify_epochs=1", "--threads=1"]
    first = run_search(*args, "--verify_shard=0/2")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "others are still training" in first.stdout and not os.path.exists(os.path.join(run_dir, "chosen"))
    second = run_search(*args, "--verify_shard=1/2")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "search finished" in second.stdout
    with open(os.path.join(run_dir, "verify", "verification.json"), encoding="utf-8") as f:
        verified = json.load(f)
    pool = space.get_pool().names
    seed_label = arch_label([[pool.index("mb_k3_t1")]] * 6, pool)
    labels = {c["label"]: c for c in verified["candidates"]}
    assert "seed" in labels[seed_label]["reasons"]
    best = max(verified["candidates"], key=lambda c: (c["proxy_mean"], -c["cost"]))
    assert verified["chosen"] == best["label"]
    chosen = NetworkSpec.load(os.path.join(run_dir, "chosen", "best.json"))
    assert arch_label(chosen.arch.cells, pool) == best["label"]
    assert "## Verification" in open(os.path.join(run_dir, "search_report.md"), encoding="utf-8").read()
    for r in (0, 1):
        with open(os.path.join(run_dir, f"round_{r:02d}", "pareto.json"), encoding="utf-8") as f:
            rnd = json.load(f)
        assert all("mb_k5_t1" not in sub for sub in rnd["subspaces"][4:])
        evaluated = {arch_label(p["cells"], pool) for p in rnd["evaluated"]}
        assert seed_label in evaluated  # the seed is evaluated every round


@needs_data
def test_the_search_from_python_returns_the_pick_and_the_front(tmp_path):
    """``nse_tf.run_search``: the resumable search of tools/search.py, its pick and front as NetworkSpecs."""
    import nse_tf
    from nse_tf.utils.cli import FlagError

    flagfile = tmp_path / "tiny.flags"
    flagfile.write_text("\n".join(TINY) + "\n")
    run_dir = str(tmp_path / "run")
    # exclude_ops is a repeated flag: each group is its own --exclude_ops
    result = nse_tf.run_search(str(flagfile), run_dir=run_dir, max_rounds=1, inherit_weights=False,
                               exclude_ops=["4:mb_k5_t1", "5:mb_k5_t1"])
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as f:
        assert json.load(f)["evolution"]["excluded_ops"][3:] == [[], ["mb_k5_t1"], ["mb_k5_t1"]]
    assert result.finished and result.unit == "M MACs" and os.path.exists(result.report)
    assert result.front and all(isinstance(spec, nse_tf.NetworkSpec) for spec, _, _ in result.front)
    assert [cost for _, cost, _ in result.front] == sorted(cost for _, cost, _ in result.front)
    chosen = nse_tf.NetworkSpec.load(os.path.join(run_dir, "chosen", "best.json"))
    assert result.best.arch == chosen.arch and result.verification is None
    again = nse_tf.run_search(str(flagfile), run_dir=run_dir, max_rounds=1,
                              exclude_ops=["4:mb_k5_t1", "5:mb_k5_t1"])  # resumes: nothing left to do
    assert again.best.arch == chosen.arch
    with pytest.raises(FlagError, match="--target_macs"):
        nse_tf.run_search(str(flagfile), run_dir=str(tmp_path / "bad"), target_macs=5000)


@needs_data
def test_only_shard_0_runs_the_search_itself(tmp_path, capsys):
    """Two processes must never train the same round: a verification shard other than 0 waits for the search."""
    code, err = run_in_process(f"--run_dir={tmp_path / 'run'}", *TINY, "--verify_top=1", "--verify_shard=1/2",
                               capsys=capsys)
    lines = [line for line in err.splitlines() if line.startswith("search.py: error:")]
    assert code == 2 and len(lines) == 1 and "--verify_shard=1/2: the search" in lines[0] and "shard 0" in lines[0]
    assert not os.path.exists(tmp_path / "run" / "round_00")
