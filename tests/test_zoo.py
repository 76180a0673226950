"""Tests for nse_tf.zoo, tools/make_zoo_entry.py and tools/evaluate.py: the committed entries, a trained entry
built end to end (weights, verified TFLite files, metadata that tools/evaluate.py reproduces), and refusal
of tampered files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from nse_tf import count_macs, count_params
from nse_tf.data.arrays import ImageArrays, load_arrays
from nse_tf.space.published import published_names
from nse_tf.train.config import TrainConfig
from nse_tf.train.loop import train
from nse_tf.zoo import registry as zoo
from nse_tf.zoo.evaluation import QUICK_CHECK_EXAMPLES, measure, quick_check
from tests.helpers import TINY

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = ("dataset", "input_shape", "num_classes", "preprocessing", "macs", "params", "top1", "command", "files")


def run_tool(tool: str, *args: str, zoo_dir: str | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, **({zoo.ZOO_ENV: zoo_dir} if zoo_dir else {}))
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", tool), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_committed_entries_have_complete_metadata_and_intact_files():
    names = zoo.list_models()
    assert set(published_names()) <= set(names)
    for name in names:
        entry = zoo.get_entry(name)
        assert all(k in entry.metadata for k in KEYS), name
        for filename in entry.metadata["files"]:
            entry.file(filename)  # sha256 checked
        if entry.has_weights:
            assert 0.0 < entry.metadata["top1"] <= 1.0
            assert {"float32.tflite", "int8.tflite"} <= set(entry.metadata["files"])
            # int8 loses at most 1 point of top-1 on the whole test split (measured: the slow test below)
            assert entry.metadata["top1"] - entry.metadata["tflite"]["int8"]["top1"] <= 0.01, name
            assert entry.metadata["quick_check"]["examples"] == QUICK_CHECK_EXAMPLES, name
        else:
            assert entry.metadata["top1"] is None and entry.metadata["weights_note"]


TRAINED = [name for name in zoo.list_models() if zoo.get_entry(name).has_weights]


@pytest.mark.parametrize("name", TRAINED)
def test_trained_entry_quick_check_reproduces(name):
    """The committed files and today's code give the metadata's top-1 (Keras and int8) on the first 1000
    test images: the CI-sized form of the whole-split test below."""
    assert quick_check(name) == zoo.metadata(name)["quick_check"]


@pytest.mark.slow
@pytest.mark.parametrize("name", TRAINED)
def test_trained_entry_accuracy_is_what_evaluate_measures(name):
    """The committed files reproduce the metadata's top-1 (Keras and int8 TFLite) on the whole test split,
    and the int8 file loses at most 1 point of top-1 against the float model. Up to a minute per searched
    network, so left to ``-m slow``; CI runs the quick check above."""
    keras_report = measure(name)
    assert keras_report["matches_metadata"], (keras_report["top1"], keras_report["metadata_top1"])
    assert keras_report["macs"] == zoo.metadata(name)["macs"]
    int8_report = measure(name, tflite="int8")
    assert int8_report["matches_metadata"], (int8_report["top1"], int8_report["metadata_top1"])
    assert keras_report["top1"] - int8_report["top1"] <= 0.01


def test_published_entry_builds_with_its_metadata_cost():
    model = zoo.load("NSENet-27", weights=None)
    meta = zoo.metadata("NSENet-27")
    assert model.input_shape == (None, *meta["input_shape"])
    assert count_macs(model) == meta["macs"] and count_params(model) == meta["params"]
    with pytest.raises(zoo.ZooError, match="no pretrained weights"):
        zoo.load("NSENet-27")
    with pytest.raises(zoo.ZooError, match="has no file int8.tflite"):
        zoo.tflite_path("NSENet-27", "int8")
    small = zoo.load("NSENet-27", weights=None, num_classes=10, input_shape=(64, 64, 3))
    assert small.output_shape == (None, 10) and small.input_shape == (None, 64, 64, 3)


def test_unknown_names_and_bad_arguments():
    with pytest.raises(zoo.ZooError, match="no zoo entry 'nope'.*NSENet-27"):
        zoo.load("nope")
    with pytest.raises(zoo.ZooError, match="weights must be"):
        zoo.load("NSENet-27", weights="imagenet")
    with pytest.raises(zoo.ZooError, match="variant"):
        zoo.tflite_path("NSENet-27", "float64")


@pytest.fixture(scope="module")
def trained_zoo(tmp_path_factory):
    """A tiny network trained for one epoch on a slice of Fashion-MNIST, made into a zoo entry by the CLI."""
    root = tmp_path_factory.mktemp("zoo")
    full = load_arrays("fashion_mnist")
    npz = root / "slice.npz"
    np.savez(npz, x_train=full.x_train[:1024], y_train=full.y_train[:1024], x_test=full.x_test[:500],
             y_test=full.y_test[:500])
    data = ImageArrays(full.x_train[:1024], full.y_train[:1024], full.x_test[:500], full.y_test[:500], "slice")
    run_dir = str(root / "run")
    train(TINY, TrainConfig(epochs=3, batch_size=64, lr=0.1, warmup_epochs=0.2, ema_momentum=None), run_dir, data,
          dataset_name=f"npz:{npz}", verbose=0)
    zoo_dir = str(root / "zoo")
    result = run_tool("make_zoo_entry.py", "--name=tiny-fmnist", f"--train_dir={run_dir}", f"--zoo_dir={zoo_dir}",
                      "--num_calibration=200", "--latency_runs=20", "--command=python tools/train.py --arch=tiny",
                      "--training_note=trained for the tests")
    assert result.returncode == 0, result.stderr[-3000:]
    return zoo_dir


def test_trained_entry_metadata_matches_evaluate(trained_zoo, monkeypatch):
    monkeypatch.setenv(zoo.ZOO_ENV, trained_zoo)
    meta = zoo.metadata("tiny-fmnist")
    assert set(meta["files"]) == {"network.json", "metadata.json", "model.weights.h5", "float32.tflite",
                                  "int8.tflite"} - {"metadata.json"}
    assert meta["command"].startswith("python tools/train.py --arch=tiny && python tools/make_zoo_entry.py")
    assert meta["top1"] > 0.2  # three epochs on 1024 images: above chance (0.1)
    assert [p["epochs"] for p in meta["training"]["processes"]] == [[1, 3]]
    assert meta["training"]["note"] == "trained for the tests"
    assert meta["tflite"]["float32"]["max_abs_diff"] < 1e-3
    assert meta["tflite"]["int8"]["input_quantization"] == {"scale": 1.0, "zero_point": 0}
    assert meta["tflite"]["float32"]["litert_latency_ms"]["median_ms"] > 0
    for variant in ("float32", "int8"):
        report = measure("tiny-fmnist", tflite=variant)
        assert report["top1"] == meta["tflite"][variant]["top1"] and report["matches_metadata"]
    assert meta["tflite"]["int8"]["top1"] >= meta["top1"] - 0.05
    assert meta["quick_check"]["examples"] == 500  # the slice has 500 test images, fewer than 1000
    assert quick_check("tiny-fmnist") == meta["quick_check"]
    assert meta["quick_check"]["keras_top1"] == meta["top1"]  # all 500: the whole split
    result = run_tool("evaluate.py", "--model=tiny-fmnist", zoo_dir=trained_zoo)  # the CLI: same function
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["top1"] == meta["top1"] and report["matches_metadata"]
    assert report["macs"] == meta["macs"] and report["params"] == meta["params"] and report["examples"] == 500
    result = run_tool("evaluate.py", "--model=tiny-fmnist", "--quick", zoo_dir=trained_zoo)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert report["quick_check"] == meta["quick_check"] and report["matches_metadata"]


def test_pretrained_load_and_tflite_path(trained_zoo, monkeypatch):
    monkeypatch.setenv(zoo.ZOO_ENV, trained_zoo)
    from nse_tf.nets.inference import evaluate_arrays

    full = load_arrays("fashion_mnist")
    model = zoo.load("tiny-fmnist")
    assert evaluate_arrays(model, full.x_test[:500], full.y_test[:500])["top1"] == zoo.metadata("tiny-fmnist")["top1"]
    with pytest.raises(zoo.ZooError, match="use weights=None"):
        zoo.load("tiny-fmnist", num_classes=5)
    assert zoo.load("tiny-fmnist", num_classes=5, weights=None).output_shape == (None, 5)
    assert zoo.tflite_path("tiny-fmnist", "int8").endswith("int8.tflite")


def test_flip_average_entry_loads_as_the_two_pass_model(trained_zoo, tmp_path, monkeypatch):
    """``"flip_average": true`` in metadata (what make_zoo_entry.py --flip_average writes) makes load() wrap
    the same weights: logits averaged over the image and its mirror, twice the MACs."""
    copy = tmp_path / "zoo"
    shutil.copytree(trained_zoo, copy)
    meta_path = copy / "tiny-fmnist" / zoo.METADATA_NAME
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "flip_average": True}))
    monkeypatch.setenv(zoo.ZOO_ENV, str(copy))
    both = zoo.load("tiny-fmnist")
    assert count_macs(both) == count_macs(zoo.load("tiny-fmnist", weights=None)) == 2 * meta["macs"]
    report = measure("tiny-fmnist")  # what tools/evaluate.py prints
    assert report["flip_average"] and report["macs"] == 2 * meta["macs"]
    monkeypatch.setenv(zoo.ZOO_ENV, trained_zoo)
    plain = zoo.load("tiny-fmnist")
    images = load_arrays("fashion_mnist").x_test[:4].astype(np.float32)
    expected = (np.asarray(plain(images)) + np.asarray(plain(images[:, :, ::-1]))) / 2
    np.testing.assert_allclose(np.asarray(both(images)), expected, atol=1e-4)


def test_tampered_weights_are_refused(trained_zoo, tmp_path, monkeypatch):
    copy = tmp_path / "zoo"
    shutil.copytree(trained_zoo, copy)
    weights = copy / "tiny-fmnist" / "model.weights.h5"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    monkeypatch.setenv(zoo.ZOO_ENV, str(copy))
    with pytest.raises(zoo.ZooError, match="sha256 .* does not match .* refusing"):
        zoo.load("tiny-fmnist")
    with pytest.raises(zoo.ZooError, match="sha256"):
        measure("tiny-fmnist")
    assert zoo.load("tiny-fmnist", weights=None) is not None  # the architecture itself is intact


def test_make_zoo_entry_flag_errors(tmp_path):
    result = run_tool("make_zoo_entry.py", "--name=x", f"--zoo_dir={tmp_path}")
    assert result.returncode == 2 and "make_zoo_entry.py: error: --train_dir:" in result.stderr
    result = run_tool("make_zoo_entry.py", "--name=x", f"--train_dir={tmp_path}", f"--zoo_dir={tmp_path}")
    assert result.returncode == 2 and "not a tools/train.py run directory" in result.stderr
    result = run_tool("make_zoo_entry.py", "--name=x", "--arch=NSENet-27", "--flip_average", f"--zoo_dir={tmp_path}")
    assert result.returncode == 2 and "make_zoo_entry.py: error: --flip_average: needs --train_dir" in result.stderr
    assert not os.path.exists(tmp_path / "x")


def test_make_zoo_entry_never_replaces_an_entry_without_overwrite(trained_zoo, tmp_path):
    copy = tmp_path / "zoo"
    shutil.copytree(trained_zoo, copy)
    before = {p.name: p.read_bytes() for p in (copy / "tiny-fmnist").iterdir()}
    result = run_tool("make_zoo_entry.py", "--name=tiny-fmnist", "--arch=NSENet-27", f"--zoo_dir={copy}")
    assert result.returncode == 2 and "make_zoo_entry.py: error: --name: zoo entry tiny-fmnist already exists" \
        in result.stderr and "--overwrite" in result.stderr, result.stderr[-2000:]
    assert {p.name: p.read_bytes() for p in (copy / "tiny-fmnist").iterdir()} == before
    result = run_tool("make_zoo_entry.py", "--name=tiny-fmnist", "--arch=NSENet-27", "--overwrite", f"--zoo_dir={copy}")
    assert result.returncode == 0, result.stderr[-2000:]
    meta = json.loads((copy / "tiny-fmnist" / zoo.METADATA_NAME).read_text())
    assert meta["weights"] is False and "--overwrite" not in meta["command"]
    assert sorted(p.name for p in copy.iterdir()) == ["tiny-fmnist"]  # no staging or previous folder left


@pytest.mark.slow  # end to end; CI's 15 minutes (run with -m slow)
def test_a_zoo_write_killed_while_replacing_an_entry_loses_nothing(tmp_path):
    """SIGKILL just before the new entry is renamed into place, with the old one moved aside: the old files are
    kept, the entry says why it is missing, and the same command run again finishes the job."""
    zoo_dir = tmp_path / "zoo"
    args = ["--name=x", "--arch=NSENet-27", "--description=first", f"--zoo_dir={zoo_dir}"]
    assert run_tool("make_zoo_entry.py", *args).returncode == 0
    first = (zoo_dir / "x" / zoo.METADATA_NAME).read_text()
    second = ["--name=x", "--arch=NSENet-27", "--description=second", "--overwrite", f"--zoo_dir={zoo_dir}"]
    killed = subprocess.run([sys.executable, os.path.join(REPO, "tests", "kill_at_replace.py"), f"{zoo_dir}/x", "1",
                             os.path.join(REPO, "tools", "make_zoo_entry.py"), *second], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (zoo_dir / "x").exists() and (zoo_dir / ".previous-x" / zoo.METADATA_NAME).read_text() == first
    os.environ[zoo.ZOO_ENV] = str(zoo_dir)
    try:
        with pytest.raises(zoo.ZooError, match="previous files are in .previous-x; rerun"):
            zoo.get_entry("x")
    finally:
        del os.environ[zoo.ZOO_ENV]
    # without --overwrite the old entry comes back and stays
    result = run_tool("make_zoo_entry.py", *second[:-2], f"--zoo_dir={zoo_dir}")
    assert result.returncode == 2 and "already exists" in result.stderr
    assert (zoo_dir / "x" / zoo.METADATA_NAME).read_text() == first
    assert run_tool("make_zoo_entry.py", *second).returncode == 0
    assert json.loads((zoo_dir / "x" / zoo.METADATA_NAME).read_text())["description"] == "second"
    assert sorted(p.name for p in zoo_dir.iterdir()) == ["x"]


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".hidden", "-x", "a..b", "x y", ""])
def test_zoo_entry_names_cannot_leave_the_zoo(tmp_path, name):
    zoo_dir = tmp_path / "zoo"
    zoo_dir.mkdir()
    result = run_tool("make_zoo_entry.py", f"--name={name}", "--arch=NSENet-27", f"--zoo_dir={zoo_dir}")
    assert result.returncode == 2 and "make_zoo_entry.py: error: --name:" in result.stderr, result.stderr[-2000:]
    assert list(tmp_path.iterdir()) == [zoo_dir] and list(zoo_dir.iterdir()) == []
    if name:
        with pytest.raises(zoo.ZooError, match="not a zoo entry name"):
            zoo.get_entry(name)


def test_readme_zoo_table_is_the_metadata():
    from nse_tf.cli import zoo_table

    assert zoo_table.readme_table() == zoo_table.zoo_table(), "run: python tools/zoo_table.py --write_readme"


def readme_python_example() -> str:
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    zoo_section = text[text.index("## Model zoo"):]
    return zoo_section[zoo_section.index("```python") + len("```python"):zoo_section.index("```\n", 10)]


def test_readme_example_runs():
    """The README's example, verbatim, on the committed zoo: the Keras model's classes for 8 test images,
    then the int8 file's for the first, which agree with them."""
    example = readme_python_example()
    assert len([line for line in example.splitlines() if line.strip()]) <= 10
    result = subprocess.run([sys.executable, "-c", example], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    keras_line, tflite_line = result.stdout.strip().splitlines()[-2:]
    classes = [int(c) for c in keras_line.strip("[]").split()]
    assert len(classes) == 8 and int(tflite_line) == classes[0]


@pytest.mark.parametrize("args, start", [
    (["--model=NSENet-27"], "evaluate.py: error: --model: zoo entry NSENet-27 has no weights"),
    (["--model=NSENet-27", "--quick"], "evaluate.py: error: --model: zoo entry NSENet-27 has no weights"),
    (["--model=mobilenetv2-style-fmnist", "--quick", "--tflite=int8"], "evaluate.py: error: --tflite: does not "
                                                                          "combine with --quick"),
])
def test_evaluate_flag_errors(args, start):
    result = run_tool("evaluate.py", *args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(start), result.stderr[-2000:]


def test_top1_of_tied_logits_is_argmax_as_in_the_export_check():
    """int8 outputs tie often; evaluate.py must rank ties as the export verification (argmax) does."""
    from nse_tf.utils.metrics import top_k_accuracies

    rng = np.random.default_rng(0)
    logits = np.round(rng.normal(size=(2000, 10)), 0).astype(np.float32)  # many ties
    labels = rng.integers(0, 10, 2000)
    assert top_k_accuracies(logits, labels)["top1"] == float(np.mean(logits.argmax(1) == labels))


@pytest.mark.parametrize("entry", ["mobilenetv2-style-fmnist", "mobilenetv2-style-fmnist.e60_flip"])
def test_a_wrongly_shaped_input_is_refused_and_the_model_stays_usable(entry):
    model = zoo.load(entry)
    images = load_arrays("fashion_mnist").x_test[:3].astype(np.float32)
    expected = np.asarray(model(images))
    for bad in (images[0], images[..., 0], np.repeat(images, 3, axis=-1)):
        for call in (model.predict, model, model.predict_on_batch, lambda x: model.evaluate(x, np.zeros(len(x)))):
            with pytest.raises(ValueError, match=r"takes a batch of 28x28x1 images, shape \(batch, 28, 28, 1\)"):
                call(bad)
    with pytest.raises(ValueError, match=r"add a batch axis, image\[None\]"):
        model.predict(images[0])
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(model(images[:1])), expected[:1], atol=1e-5)


BASELINE = "mobilenetv2-style-fmnist"


def test_loading_an_entry_executes_no_code_from_its_files(tmp_path, monkeypatch):
    """zoo.load builds the network from its JSON and reads weights as arrays: no pickle, no Keras model
    deserialisation, no Lambda layer; a network.json that carries a layer-config payload is refused."""
    import pickle

    import keras

    def forbidden(*args, **kwargs):
        raise AssertionError("zoo.load must not deserialise code")

    for module, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (keras.models, "load_model"),
                         (keras.saving, "load_model"), (keras.models, "model_from_json"),
                         (keras.layers.Lambda, "__init__")):
        monkeypatch.setattr(module, name, forbidden)
    model = zoo.load(BASELINE)
    images = load_arrays("fashion_mnist").x_test[:2].astype(np.float32)
    assert np.asarray(model(images)).shape == (2, 10)
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model._flatten_layers())

    copy = tmp_path / "zoo"
    shutil.copytree(os.path.join(REPO, "zoo", BASELINE), copy / BASELINE, ignore=shutil.ignore_patterns("*.tflite"))
    network_path = copy / BASELINE / zoo.NETWORK_NAME
    network = json.loads(network_path.read_text())
    network["keras_config"] = {"class_name": "Lambda", "config": {"function": "os.system('touch pwned')"}}
    network_path.write_text(json.dumps(network))
    meta_path = copy / BASELINE / zoo.METADATA_NAME
    meta = json.loads(meta_path.read_text())
    meta["files"][zoo.NETWORK_NAME] = zoo.sha256_file(network_path)  # a consistent, hostile entry
    meta_path.write_text(json.dumps(meta))
    monkeypatch.setenv(zoo.ZOO_ENV, str(copy))
    with pytest.raises(ValueError, match="unknown field.*keras_config"):
        zoo.load(BASELINE)


@pytest.mark.parametrize("variant", ["float32", "int8"])
def test_a_tampered_tflite_file_is_refused(tmp_path, monkeypatch, variant):
    copy = tmp_path / "zoo"
    shutil.copytree(os.path.join(REPO, "zoo", BASELINE), copy / BASELINE)
    path = copy / BASELINE / f"{variant}.tflite"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    monkeypatch.setenv(zoo.ZOO_ENV, str(copy))
    with pytest.raises(zoo.ZooError, match=f"{variant}.tflite: sha256 .* refusing"):
        zoo.tflite_path(BASELINE, variant)
    other = "int8" if variant == "float32" else "float32"
    assert zoo.tflite_path(BASELINE, other).endswith(f"{other}.tflite")  # the intact file still serves


def test_zoo_table_retime_times_every_file_together_and_refuses_a_busy_machine(tmp_path):
    import datetime

    from nse_tf.export.timing import cpu_description

    copy = tmp_path / "zoo"
    shutil.copytree(os.path.join(REPO, "zoo"), copy)
    timed = [name for name in zoo.list_models() if zoo.metadata(name).get("tflite")]
    n_files = sum(v in zoo.metadata(name)["tflite"] for name in timed for v in zoo.TFLITE_VARIANTS)  # QAT files too
    busy = run_tool("zoo_table.py", "--retime", "--max_load=-1", zoo_dir=str(copy))
    assert busy.returncode == 2 and busy.stderr.startswith("zoo_table.py: error: --max_load: other processes keep")
    assert (copy / timed[0] / zoo.METADATA_NAME).read_text() == \
        open(os.path.join(REPO, "zoo", timed[0], zoo.METADATA_NAME)).read()
    before = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    result = run_tool("zoo_table.py", "--retime", "--rounds=2", "--runs=3", "--max_load=1000", zoo_dir=str(copy))
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    if before != today and f"on {before}" in result.stdout:  # a run across midnight (UTC)
        today = before
    assert result.returncode == 0, result.stderr[-2000:]
    for name in timed:
        meta = json.loads((copy / name / zoo.METADATA_NAME).read_text())
        for variant in ("float32", "int8"):
            latency = meta["tflite"][variant]["litert_latency_ms"]
            assert latency["rounds"] == 2 and latency["runs"] == 3 and len(latency["round_medians_ms"]) == 2
            assert latency["median_ms"] > 0 and f"all {n_files} files" in latency["with"]
            assert latency["cpu"] == cpu_description() and latency["retimed"] == today
    assert f"{timed[0]} |" in result.stdout  # the table printed from the new figures
    assert f"every file re-timed together on {today}, on {cpu_description()}" in result.stdout
    assert run_tool("zoo_table.py", "--retime", "--runs=x", zoo_dir=str(copy)).returncode == 2


def test_reexport_rewrites_the_tflite_files_and_their_figures(trained_zoo, tmp_path, monkeypatch):
    copy = tmp_path / "zoo"
    shutil.copytree(trained_zoo, copy)
    monkeypatch.setenv(zoo.ZOO_ENV, str(copy))
    before = zoo.metadata("tiny-fmnist")
    (copy / "tiny-fmnist" / "int8.tflite").write_bytes(b"damaged")  # the rewrite does not read the old file
    result = run_tool("make_zoo_entry.py", "--reexport=tiny-fmnist", "--num_calibration=200", "--latency_runs=20",
                      f"--zoo_dir={copy}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "re-exported tiny-fmnist" in result.stdout
    meta = zoo.metadata("tiny-fmnist")
    entry = zoo.get_entry("tiny-fmnist")  # checks every file's sha256 against the new metadata
    for variant in ("float32", "int8"):
        assert zoo.sha256_file(entry.file(f"{variant}.tflite")) == meta["files"][f"{variant}.tflite"]
        # same weights and calibration images; the int8 converter is not bit-for-bit repeatable
        assert abs(meta["tflite"][variant]["top1"] - before["tflite"][variant]["top1"]) <= (0 if variant == "float32"
                                                                                              else 0.01)
        assert meta["tflite"][variant]["exported"]["command"].startswith("python tools/make_zoo_entry.py --reexport")
        assert measure("tiny-fmnist", tflite=variant)["matches_metadata"]
    assert meta["quick_check"]["keras_top1"] == before["quick_check"]["keras_top1"] and meta["top1"] == before["top1"]
    assert abs(meta["quick_check"]["int8_top1"] - before["quick_check"]["int8_top1"]) <= 0.01
    assert sorted(os.listdir(copy)) == ["tiny-fmnist"]  # no staging or previous folder left beside it
    assert not (copy / "tiny-fmnist" / ".export").exists()
