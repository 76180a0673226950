"""The search steps under tf.distribute follow the one-device run (nse_tf.search).

Logical devices and TF_CONFIG must be set before TensorFlow starts, and this test process has
started it already, so each check runs in child processes of the venv's python.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 240

COMMON = textwrap.dedent("""
    import numpy as np

    def build(strategy, search, space_cls, penalty_target=0.01):
        space = space_cls(layout="R", counts=(1, 0), channels=(8, 8), input_size=8, input_channels=1,
                          num_classes=3, stem_stride=1, head_channels=8, pool="mac27", mean=(0.0,), std=(1.0,))
        return search.RoundTrainer(space, [[0, 3, 9], [0, 3]], search.OptimConfig(weight_decay=0.05),
                                   search.PenaltyConfig(target=penalty_target, a=30.0, b=2.0),
                                   search.RoundConfig(steps=10, steps_per_epoch=5, batch_size=8), strategy)

    def data(seed):
        rng = np.random.default_rng(seed)
        return (rng.normal(size=(8, 8, 8, 1)).astype(np.float32),
                rng.integers(0, 3, size=8).astype(np.int32))
""")

MIRRORED = COMMON + textwrap.dedent("""
    import sys
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

    import keras
    from nse_tf.search import gates
    from nse_tf.search import round_trainer as search
    from nse_tf.space.macro import MacroSpace

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    single = build(None, search, MacroSpace)
    double = build(mirrored, search, MacroSpace)

    # same initial weights and gates; BN frozen (inference mode, moving statistics): per-replica batch
    # statistics would otherwise make the two-replica gradients differ from the one-replica ones
    rng = np.random.default_rng(0)
    double.net.alpha.assign(rng.normal(scale=1.5, size=double.net.alpha.shape).astype(np.float32))
    assert len(single.net.weights) == len(double.net.weights)
    for a, b in zip(single.net.weights, double.net.weights):
        assert a.path == b.path, (a.path, b.path)
        a.assign(b.numpy())
    for trainer in (single, double):
        for layer in trainer.net._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        # SGD(lr=1) on the gates: alpha moves by exactly minus the gradient (Adam's first step is ~sign(g))
        with trainer.strategy.scope():
            trainer.gate_opt = keras.optimizers.SGD(learning_rate=1.0)
            trainer.gate_opt.build([trainer.net.alpha])

    out = {"w0": [v.numpy() for v in single.weight_vars], "alpha0": single.alpha()}
    for name, trainer in (("single", single), ("double", double)):
        state = search.new_round_state(trainer, [[], []], seed=3)
        heldout = iter([tuple(tf.constant(t) for t in data(100 + i)) for i in range(10)])
        losses = []
        for i in range(3):  # weight, gate, weight, weight, gate
            stats = trainer.step(state, tuple(tf.constant(t) for t in data(i)), lambda: next(heldout))
            losses.append([stats.loss, stats.accuracy, stats.gate_loss or 0.0, stats.gate_cost or 0.0])
        out[name] = {"w": [v.numpy() for v in trainer.weight_vars], "alpha": trainer.alpha(),
                     "losses": np.array(losses), "active": state.active,
                     "tracing": trainer.tracing_counts()}

    # smoke: two replicas with BN in training mode (per-replica statistics, moving averages updated)
    live = build(mirrored, search, MacroSpace)
    state = search.new_round_state(live, [[], []], seed=3)
    for i in range(2):
        stats = live.step(state, tuple(tf.constant(t) for t in data(i)), lambda: tuple(tf.constant(t) for t in data(50)))
        assert np.isfinite(stats.loss) and np.isfinite(stats.gate_loss or 0.0)
    bn = [l for l in live.net._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)][0]
    replicas = [v.numpy() for v in bn.moving_mean.value.values]
    out["live_moving_mean"] = replicas

    np.save(sys.argv[1], np.array(out, dtype=object), allow_pickle=True)
""")

WORKER = COMMON + textwrap.dedent("""
    import sys
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()

    import keras
    from nse_tf.search import round_trainer as search
    from nse_tf.space.macro import MacroSpace

    keras.utils.set_random_seed(0)
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    trainer = build(strategy, search, MacroSpace)
    state = search.new_round_state(trainer, [[], []], seed=11)
    losses = []
    for i in range(4):
        stats = trainer.step(state, tuple(tf.constant(t) for t in data(i)),
                             lambda: tuple(tf.constant(t) for t in data(100 + state.step)))
        losses.append(stats.loss)
    np.save(sys.argv[1] + "_alpha.npy", trainer.alpha())
    np.save(sys.argv[1] + "_kernel.npy", trainer.net.get_layer("stem_conv").kernel.numpy())
    np.save(sys.argv[1] + "_losses.npy", np.array(losses))
""")


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TF_CONFIG", None)
    env.update(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO), **extra)
    return env


def run_children(commands: list[tuple[list[str], dict[str, str]]]) -> list[subprocess.CompletedProcess]:
    procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for cmd, env in commands]
    results = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=TIMEOUT_S)
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out))
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        outs = [proc.communicate()[0] for proc in procs]
        pytest.fail(f"child processes hung for {TIMEOUT_S} s:\n" + "\n-----\n".join(o[-3000:] for o in outs))
    for r in results:
        assert r.returncode == 0, r.stdout[-5000:]
    return results


@pytest.mark.slow  # end to end; CI's 15 minutes (run with -m slow)
def test_mirrored_two_replicas_match_one_device(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    out_file = tmp_path / "out.npy"
    run_children([([sys.executable, str(script), str(out_file)], child_env())])
    out = np.load(out_file, allow_pickle=True).item()
    single, double = out["single"], out["double"]

    assert single["tracing"] == (1, 1) and double["tracing"] == (1, 1)
    np.testing.assert_array_equal(single["active"], double["active"])
    np.testing.assert_allclose(double["losses"], single["losses"], atol=1e-5, rtol=1e-5)
    moved = max(np.abs(w - w0).max() for w, w0 in zip(single["w"], out["w0"]))
    assert moved > 1e-3
    for w1, w2 in zip(single["w"], double["w"]):
        assert np.abs(w1 - w2).max() < 1e-5
    assert np.abs(single["alpha"] - out["alpha0"]).max() > 1e-3
    assert np.abs(single["alpha"] - double["alpha"]).max() < 1e-5
    # BN in training mode: each replica keeps its own moving statistics from its half batch
    assert len(out["live_moving_mean"]) == 2


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_multi_worker_mirrored_workers_agree(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    commands = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        commands.append(([sys.executable, str(script), str(tmp_path / f"w{index}")], child_env(TF_CONFIG=tf_config)))
    run_children(commands)
    alphas = [np.load(tmp_path / f"w{i}_alpha.npy") for i in range(2)]
    np.testing.assert_array_equal(alphas[0], alphas[1])
    assert np.abs(alphas[0]).max() > 0
    np.testing.assert_array_equal(np.load(tmp_path / "w0_kernel.npy"), np.load(tmp_path / "w1_kernel.npy"))
    np.testing.assert_array_equal(np.load(tmp_path / "w0_losses.npy"), np.load(tmp_path / "w1_losses.npy"))


# ---------------------------------------------------------------- the end-of-round evaluation, split across workers
SEARCH = str(REPO / "tools" / "search.py")
FMNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def sharded_search(run_dir: Path) -> list[str]:
    """The tiny search of test_search_cli, one round, on MultiWorkerMirroredStrategy, order-free evaluation."""
    from tests.test_search_cli import TINY

    return [sys.executable, SEARCH, f"--run_dir={run_dir}", *TINY, "--max_rounds=1", "--num_archs=5",
            "--strategy=multi_worker", "--bn_start=trained"]


def two_workers(command: list[str], wrap: list[str] | None = None) -> list[tuple[list[str], dict[str, str]]]:
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    out = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        prefix = wrap if (wrap and index == 1) else []
        out.append((command[:1] + prefix + command[1:], child_env(TF_CONFIG=tf_config)))
    return out


def outcome(run_dir: Path) -> dict:
    """What the evaluation decides: every accuracy, the front, the next sub-spaces (timings left out)."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not k.endswith("_seconds")}
        return [strip(v) for v in value] if isinstance(value, list) else value

    pareto = json.loads((run_dir / "round_00" / "pareto.json").read_text())
    state = json.loads((run_dir / "evolution_state.json").read_text())
    return {"pareto": pareto, "state": strip(state)}


@pytest.mark.slow  # four search processes; CI's 15 minutes (run with -m slow)
@pytest.mark.skipif(not os.path.exists(FMNIST), reason="dataset-fashion-mnist is not installed")
def test_two_workers_split_the_evaluation_and_agree_with_one_bit_for_bit(tmp_path):
    """One round trained once (stopped before its evaluation), then evaluated by one worker and by two, each
    evaluating half the architectures: the same accuracies, front and next sub-spaces, bit for bit. A worker
    killed while it evaluates, followed by a restart of both, ends in the same state too."""
    import shutil

    trained = tmp_path / "trained"
    run_children([(sharded_search(trained) + ["--stop_after_steps=8"], child_env())])
    state = json.loads((trained / "evolution_state.json").read_text())
    assert state["phase"] == "train" and not (trained / "round_00" / "pareto.json").exists()
    one, two, killed = (tmp_path / n for n in ("one", "two", "killed"))
    for copy in (one, two, killed):
        shutil.copytree(trained, copy)

    run_children([(sharded_search(one), child_env())])
    results = run_children(two_workers(sharded_search(two)))
    assert outcome(two) == outcome(one)
    evaluated = outcome(one)["pareto"]["evaluated"]
    assert len(evaluated) >= 5 and len({p["accuracy"] for p in evaluated}) > 1
    assert all("3 of them on this worker" in r.stdout or "2 of them on this worker" in r.stdout for r in results)

    # worker 2 dies at its second architecture; its peer waits in the gather and is stopped too
    kill = [str(REPO / "tests" / "kill_at_call.py"), "nse_tf.search.round_trainer:RoundTrainer.evaluate", "2"]
    commands = two_workers(sharded_search(killed), wrap=kill)
    procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for cmd, env in commands]
    try:
        assert procs[1].wait(timeout=TIMEOUT_S) == -9
    finally:
        procs[0].kill()
        for proc in procs:
            proc.communicate()
    assert not (killed / "round_00" / "pareto.json").exists()
    run_children(two_workers(sharded_search(killed)))
    assert outcome(killed) == outcome(one)
