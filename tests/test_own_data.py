"""Issue 32, end to end with the tools on a user's own images (``folder:`` datasets the tests write as PNGs):

- a tiny search on a folder, the retraining of its pick on that folder (under JAX, TensorFlow blocked, as on the
  GPU machine), and its zoo entry with verified float32/int8 .tflite files, all reading the same images;
- fine-tuning the zoo's ``mobilenetv2-style-fmnist`` on 32x32 RGB images of three Fashion-MNIST classes: it beats
  the same network trained from scratch for the same steps, and its int8 file runs under LiteRT.

Each tool starts TensorFlow (about 9 s) and trains: a minute or more each, so ``-m slow``; the fast tests of the
pieces are tests/test_folder_arrays.py (the reader) and tests/test_fine_tune.py (the weight transfer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nse_tf.data.arrays import load_arrays
from nse_tf.space.architecture import NetworkSpec
from nse_tf.zoo import registry as zoo
from tests.helpers import write_fmnist_folder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FMNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(FMNIST), reason="dataset-fashion-mnist is not installed")]

# The tiny search of tests/test_search_cli.py (2 rounds of 8 steps, 0.35 M MACs +- 0.15) on 3 classes.
TINY_SEARCH = [
    "--space=small", "--counts=0,0,0,0,0,0", "--channels=8,8,8,8,8,8,8", "--head_channels=16", "--num_classes=3",
    "--pool=mb_k3_t1,mb_k5_t1,mb_k3_t3", "--ops_per_cell=2", "--batch_size=32", "--heldout_examples=96",
    "--steps_per_round=8", "--warmup_epochs=0", "--num_archs=3", "--num_extra=1", "--bn_batches=2",
    "--checkpoint_every=2", "--target_macs=0.35", "--mac_drift=0.15", "--extra_margin=0.05", "--penalty_a=1",
]


def tool(name: str, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.join(REPO, "tools", name), *args], cwd=REPO,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: int = 900) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, (out + err)[-3000:]
    return out


def test_a_search_on_a_folder_retrains_its_pick_and_makes_a_zoo_entry_on_that_folder(tmp_path):
    dataset = write_fmnist_folder(tmp_path / "images", classes=(0, 1, 7), train_per_class=120, test_per_class=40)
    search = tmp_path / "search"
    finish(tool("search.py", *TINY_SEARCH, f"--dataset={dataset}", f"--run_dir={search}", "--threads=2"))
    pick = NetworkSpec.load(search / "chosen" / "best.json")
    assert (pick.space.input_size, pick.space.input_channels, pick.space.num_classes) == (28, 1, 3)

    # The pick retrained on the same folder under JAX with TensorFlow unimportable: the folder needs no TF.
    blocked = tmp_path / "blocked" / "tensorflow"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('TensorFlow is not installed here')\n")
    jax = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": str(tmp_path / "blocked") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "XLA_FLAGS": "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"}
    run = tmp_path / "run"
    finish(tool("train.py", f"--arch={search}", f"--dataset={dataset}", f"--run_dir={run}", "--epochs=6",
                "--batch_size=32", "--lr=0.05", "--warmup_epochs=0.5", "--ema_momentum=0", "--verbose=0", env=jax))
    with open(run / "result.json") as f:
        result = json.load(f)
    assert result["backend"] == "jax" and result["top1"] > 0.8  # three easy classes: far above chance (1/3)
    with open(run / "train_config.json") as f:
        assert json.load(f)["dataset"] == dataset

    zoo_dir = tmp_path / "zoo"
    finish(tool("make_zoo_entry.py", "--name=tiny-folder", f"--train_dir={run}", f"--zoo_dir={zoo_dir}",
                "--num_calibration=64", "--latency_runs=5", f"--command=python tools/train.py --arch={search}"))
    os.environ[zoo.ZOO_ENV] = str(zoo_dir)
    try:
        meta = zoo.metadata("tiny-folder")
        assert meta["dataset"] == dataset and meta["test_examples"] == 120
        assert {"model.weights.h5", "float32.tflite", "int8.tflite"} <= set(meta["files"])
        assert NetworkSpec.load(zoo.get_entry("tiny-folder").file("network.json")).to_dict() == pick.to_dict()
        # the zoo reads the folder as the retraining did: TensorFlow here scores JAX's weights alike (a tie apart)
        assert abs(meta["top1"] - result["top1"]) <= 2 / 120
        assert meta["tflite"]["int8"]["top1"] >= meta["top1"] - 0.05
        report = json.loads(finish(tool("evaluate.py", "--model=tiny-folder", "--tflite=int8",
                                        env={zoo.ZOO_ENV: str(zoo_dir)})))
        assert report["matches_metadata"] and report["dataset"] == dataset
    finally:
        os.environ.pop(zoo.ZOO_ENV)


def test_fine_tuning_the_zoo_on_rgb_folder_beats_scratch_and_exports_int8(tmp_path):
    dataset = write_fmnist_folder(tmp_path / "images", classes=(0, 2, 6), train_per_class=100, test_per_class=50,
                                  size=32, rgb=True)  # T-shirt/top, Pullover, Shirt: alike, hard from scratch
    tuned, scratch = tmp_path / "tuned", tmp_path / "scratch"
    same = ["--epochs=2", "--batch_size=32", "--threads=1", "--verbose=0", f"--dataset={dataset}"]
    # Fine-tuning defaults: lr 0.01, one frozen epoch, no EMA. From scratch: the same network (the fine-tuning
    # run's network.json), the same steps, its own peak lr without warm-up or EMA, which would only slow it here.
    fine_tuning = tool("train.py", "--init_from=mobilenetv2-style-fmnist", f"--run_dir={tuned}", *same)
    finish(fine_tuning)
    from_scratch = tool("train.py", f"--arch={tuned}", f"--run_dir={scratch}", "--ema_momentum=0",
                        "--warmup_epochs=0", *same)
    finish(from_scratch)
    with open(tuned / "train_config.json") as f:
        config = json.load(f)
    entry = zoo.get_entry("mobilenetv2-style-fmnist")
    assert config["init_from"] == {"entry": entry.name, "weights_sha256": entry.config.files["model.weights.h5"],
                                   "freeze_epochs": 1}
    assert config["train"]["lr"] == 0.01 and config["train"]["ema_momentum"] is None
    assert config["network"]["space"]["input_channels"] == 3 and config["network"]["space"]["num_classes"] == 3
    tops = {}
    for name, run in (("tuned", tuned), ("scratch", scratch)):
        with open(run / "result.json") as f:
            tops[name] = json.load(f)["top1"]
    assert tops["tuned"] >= tops["scratch"] + 0.1, tops

    zoo_dir = tmp_path / "zoo"
    finish(tool("make_zoo_entry.py", "--name=fmnist3-rgb", f"--train_dir={tuned}", f"--zoo_dir={zoo_dir}",
                "--num_calibration=100", "--latency_runs=5",
                "--command=python tools/train.py --init_from=mobilenetv2-style-fmnist"))
    with open(zoo_dir / "fmnist3-rgb" / "metadata.json") as f:
        meta = json.load(f)
    assert meta["training"]["init_from"] == config["init_from"] and meta["input_shape"] == [32, 32, 3]
    assert meta["top1"] == tops["tuned"] and meta["tflite"]["int8"]["top1"] >= meta["top1"] - 0.05
    from nse_tf.export.runtimes import tflite_logits

    data = load_arrays(dataset)
    int8 = tflite_logits(str(zoo_dir / "fmnist3-rgb" / "int8.tflite"), data.x_test)
    assert float(np.mean(np.argmax(int8, axis=1) == data.y_test)) == meta["tflite"]["int8"]["top1"]
