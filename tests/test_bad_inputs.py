"""The bad-input catalogue: what a new user gets wrong, across the tools, the files they read, run directories
and the Python API. Every row must end in one clear line (exit code 2) or one exception, naming the flag,
file, field, cell or operation at fault; never a traceback, never silent acceptance."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
from typing import Callable

import numpy as np
import pytest

from nse_tf.data import idx
from nse_tf.data.arrays import DatasetError, load_arrays
from nse_tf.search.evolution import EvolutionConfig
from nse_tf.search.standalone import Shard
from nse_tf.space.architecture import ArchitectureError, NetworkSpec
from nse_tf.space.macro import MacroSpace, get_space
from nse_tf.zoo import registry as zoo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = os.path.join(REPO, "zoo")
TRAINED = "mobilenetv2-style-fmnist"  # a committed entry with weights


# ------------------------------------------------------------------ the files a user hands us
def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_fmnist(root, **damage: bytes) -> str:
    """A small Fashion-MNIST directory (20 train, 10 test images); ``damage`` replaces a file's bytes."""
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(0)
    files = {"train-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)),
             "train-labels-idx1-ubyte": idx_bytes((np.arange(20) % 10).astype(np.uint8)),
             "t10k-images-idx3-ubyte": idx_bytes(rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)),
             "t10k-labels-idx1-ubyte": idx_bytes((np.arange(10) % 10).astype(np.uint8))}
    for stem, data in files.items():
        data = damage.get(stem.split("-")[0] + "_" + stem.split("-")[1], data)
        with open(os.path.join(root, stem + ".gz"), "wb") as f:
            f.write(gzip.compress(data))
    return str(root)


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, str]:
    """Paths of every bad file the rows use."""
    root = tmp_path_factory.mktemp("bad")
    p: dict[str, str] = {"root": str(root)}
    good_images = idx_bytes(np.zeros((20, 28, 28), np.uint8))
    p["idx_truncated"] = write_fmnist(root / "idx_truncated", train_images=good_images[:-100])
    p["idx_magic"] = write_fmnist(root / "idx_magic", t10k_labels=b"\x01\x02\x03\x04" + b"\x00" * 20)
    p["idx_lengths"] = write_fmnist(root / "idx_lengths", train_labels=idx_bytes(np.zeros(19, np.uint8)))
    p["idx_labels"] = write_fmnist(root / "idx_labels", train_labels=idx_bytes(np.full(20, 12, np.uint8)))
    gz = root / "idx_gzip"
    write_fmnist(gz)
    (gz / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(good_images)[:50])
    p["idx_gzip"] = str(gz)
    p["idx_missing"] = str(root / "idx_missing")
    os.makedirs(p["idx_missing"])

    x, y = np.zeros((8, 28, 28, 1), np.uint8), np.arange(8) % 10
    np.savez(root / "lengths.npz", x_train=x, y_train=y[:7], x_test=x, y_test=y)
    np.savez(root / "lacks.npz", x_train=x, y_train=y)
    np.savez(root / "float_labels.npz", x_train=x, y_train=y.astype(np.float32), x_test=x, y_test=y)
    np.savez(root / "flat.npz", x_train=x.reshape(8, -1), y_train=y, x_test=x, y_test=y)
    (root / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip archive")
    np.save(root / "array.npy", x)
    # issue 31: pixels no network can learn from, and splits that do not match
    nan = x.astype(np.float32) + 100
    nan[0, 0, 0, 0] = np.nan
    np.savez(root / "nan.npz", x_train=nan, y_train=y, x_test=x, y_test=y)
    small_0_1 = np.full((8, 8, 8, 1), 0.5, np.float32)  # 8x8: the 28x28 network then refuses the size
    np.savez(root / "scaled_0_1.npz", x_train=small_0_1, y_train=y, x_test=small_0_1, y_test=y)
    np.savez(root / "sizes.npz", x_train=x, y_train=y, x_test=np.zeros((8, 32, 32, 1), np.uint8), y_test=y)
    for name in ("lengths", "lacks", "float_labels", "flat", "corrupt", "nan", "scaled_0_1", "sizes"):
        p[f"npz_{name}"] = str(root / f"{name}.npz")
    p["npy"] = str(root / "array.npy")

    with open(os.path.join(ZOO, TRAINED, "network.json"), encoding="utf-8") as f:
        network = json.load(f)

    def write_json(name: str, data) -> None:
        path = root / f"{name}.json"
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        p[name] = str(path)

    write_json("net_ok", network)
    write_json("net_list", [network])
    write_json("net_float_size", {**network, "space": {**network["space"], "input_size": 28.5}})
    write_json("net_zero_std", {**network, "space": {**network["space"], "std": [0.0]}})
    write_json("net_string_counts", {**network, "space": {**network["space"], "counts": "1,2"}})
    write_json("net_bad_op", {**network, "cells": [["no_such_op"]] + network["cells"][1:]})
    write_json("net_twice", {**network, "cells": [network["cells"][0] * 2] + network["cells"][1:]})
    write_json("net_cells_not_list", {**network, "cells": "mb_k3_t6"})
    write_json("net_no_space", {k: v for k, v in network.items() if k != "space"})
    write_json("net_format", {**network, "format": "keras"})
    write_json("net_version", {**network, "version": 99})
    write_json("net_unknown_field", {**network, "space": {**network["space"], "colour": "red"}})
    write_json("net_empty_r_cell", {**network, "cells": [[]] * len(network["cells"])})
    write_json("net_classes", {**network, "space": {**network["space"], "num_classes": 1}})
    write_json("net_syntax", '{"format": "nse_tf.network", ')
    write_json("net_huge_channels", {**network, "space": {**network["space"], "channels": [10**9] * 7}})
    write_json("net_nested", "[" * 100_000 + "]" * 100_000)

    zoo_copy = root / "zoo"
    zoo_copy.mkdir()
    shutil.copyfile(os.path.join(ZOO, "aliases.json"), zoo_copy / "aliases.json")  # the alias rows need it

    def entry(name: str, edit: Callable[[dict], dict] | None = None, network_text: str | None = None) -> None:
        folder = zoo_copy / name
        folder.mkdir()
        meta = json.loads(open(os.path.join(ZOO, TRAINED, "metadata.json"), encoding="utf-8").read())
        shutil.copyfile(os.path.join(ZOO, TRAINED, "network.json"), folder / "network.json")
        if network_text is not None:
            (folder / "network.json").write_text(network_text)
        (folder / "metadata.json").write_text(json.dumps(edit(meta) if edit else meta))

    entry("files-list", lambda m: {**m, "files": sorted(m["files"])})
    entry("files-bad-sha", lambda m: {**m, "files": {**m["files"], "network.json": "abc"}})
    entry("missing-keys", lambda m: {k: v for k, v in m.items() if k not in ("top1", "macs")})
    entry("tampered-network", network_text=json.dumps({**network, "name": "changed"}))
    entry("missing-weights")  # lists model.weights.h5, which is not there
    entry("files-outside", lambda m: {**m, "files": {**m["files"], "../files-list/network.json": "0" * 64}})
    (zoo_copy / "not-json").mkdir()
    (zoo_copy / "not-json" / "metadata.json").write_text("{ oops")
    p["zoo"] = str(zoo_copy)

    folder = root / "images" / "cat"
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)  # decoded only in the pipeline
    (folder / "broken.png").write_bytes(b"this is no image")
    (root / "images" / "dog").mkdir()
    (root / "images" / "dog" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    p["images"] = str(root / "images")
    from PIL import Image

    for split, count in (("train", 2), ("test", 1)):  # good images, 6 high and 8 wide, of 2 classes
        for name in ("a", "b"):
            (root / "small_images" / split / name).mkdir(parents=True)
            (root / "flat_images" / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(np.full((6, 8), 40 * i, np.uint8)).save(root / "small_images" / split / name / f"{i}.png")
                Image.fromarray(np.full((6, 8), 40 * i, np.uint8)).save(root / "flat_images" / name / f"{split}{i}.png")
    p["folder_small"], p["folder_no_test"] = str(root / "small_images"), str(root / "flat_images")
    shutil.copytree(root / "small_images", root / "empty_class")  # issue 31: a class folder without images
    (root / "empty_class" / "train" / "c").mkdir()
    shutil.copytree(root / "small_images", root / "cut_image")  # a PNG cut short: the search names it at once
    Image.fromarray(np.full((6, 8), 90, np.uint8)).save(root / "cut_image" / "train" / "b" / "cut.png")
    cut = (root / "cut_image" / "train" / "b" / "cut.png").read_bytes()
    (root / "cut_image" / "train" / "b" / "cut.png").write_bytes(cut[:len(cut) // 2])
    p["folder_empty_class"], p["folder_cut"] = str(root / "empty_class"), str(root / "cut_image")
    lost = root / "run_lost_folder"  # a finished training run whose folder dataset has gone
    lost.mkdir()
    from nse_tf.train.config import TrainConfig

    (lost / "train_config.json").write_text(json.dumps({"network": network, "dataset": f"folder:{root}/gone",
                                                        "train": TrainConfig().to_dict()}))
    shutil.copyfile(os.path.join(ZOO, TRAINED, "model.weights.h5"), lost / "model.weights.h5")
    (lost / "result.json").write_text(json.dumps({"top1": 0.5, "seconds": 1.0, "backend": "tensorflow"}))
    p["run_lost_folder"] = str(lost)
    nan_run = root / "run_nan_pixels"  # a finished training run whose npz dataset now holds a NaN pixel
    shutil.copytree(lost, nan_run)
    (nan_run / "train_config.json").write_text(json.dumps({"network": network, "dataset": f"npz:{root}/nan.npz",
                                                           "train": TrainConfig().to_dict()}))
    p["run_nan_pixels"] = str(nan_run)

    run = root / "train_run"
    run.mkdir()
    p["not_a_run"] = str(run)
    search_run = root / "search_run"
    search_run.mkdir()
    (search_run / "config.json").write_text("{ truncated")
    p["search_run_corrupt"] = str(search_run)
    return p


# ------------------------------------------------------------------ the catalogue
NET = ["--arch={net_ok}", "--run_dir={root}/r"]  # a good network and run directory: the rest is at fault


def row(tool: str, args: list[str], names: str, *, contains: str = "", zoo: bool = False, marks=()):
    shown = " ".join(a for a in args if a not in NET)  # the good network and run directory say nothing
    return pytest.param(tool, args, names, contains, zoo, marks=marks, id=f"{tool}:{shown[:70]}")


CLI_ROWS = [
    # tools/train.py
    row("train.py", [], "--arch", contains="is required"),
    row("train.py", ["--arch={net_ok}"], "--run_dir", contains="is required"),
    row("train.py", ["--arch=no-such-net", "--run_dir={root}/r"], "--arch", contains="no-such-net"),
    row("train.py", ["--arch={net_list}", "--run_dir={root}/r"], "--arch", contains="holds one JSON object"),
    row("train.py", ["--arch={net_float_size}", "--run_dir={root}/r"], "--arch", contains="input_size must be a whole"),
    row("train.py", ["--arch={net_zero_std}", "--run_dir={root}/r"], "--arch", contains="std positive"),
    row("train.py", ["--arch={net_string_counts}", "--run_dir={root}/r"], "--arch", contains="counts must be a list"),
    row("train.py", ["--arch={net_bad_op}", "--run_dir={root}/r"], "--arch", contains="no_such_op"),
    row("train.py", ["--arch={net_twice}", "--run_dir={root}/r"], "--arch", contains="listed twice"),
    row("train.py", ["--arch={net_cells_not_list}", "--run_dir={root}/r"], "--arch", contains="cells must be a list"),
    row("train.py", ["--arch={net_no_space}", "--run_dir={root}/r"], "--arch", contains="missing field(s) space"),
    row("train.py", ["--arch={net_format}", "--run_dir={root}/r"], "--arch", contains="not an nse_tf network"),
    row("train.py", ["--arch={net_version}", "--run_dir={root}/r"], "--arch", contains="unsupported version"),
    row("train.py", ["--arch={net_unknown_field}", "--run_dir={root}/r"], "--arch", contains="colour"),
    row("train.py", ["--arch={net_empty_r_cell}", "--run_dir={root}/r"], "--arch", contains="needs at least one"),
    row("train.py", ["--arch={net_classes}", "--run_dir={root}/r"], "--arch", contains="num_classes"),
    row("train.py", ["--arch={net_syntax}", "--run_dir={root}/r"], "--arch", contains="not valid JSON"),
    row("train.py", [*NET, "--epochs=0"], "--epochs"),
    row("train.py", [*NET, "--batch_size=0"], "--batch_size"),
    row("train.py", [*NET, "--lr=-1"], "--lr"),
    row("train.py", [*NET, "--epochs=ten"], "--epochs"),
    row("train.py", [*NET, "--no_such_flag=1"], "--no_such_flag", contains="unknown flag"),
    row("train.py", [*NET, "--threads=-1"], "--threads"),
    row("train.py", [*NET, "--optimizer=adam"], "--optimizer"),
    row("train.py", ["--arch=NSENet-27", "--run_dir={root}/r", "--scale=0"], "--scale"),
    row("train.py", [*NET, "--dataset=mnist"], "--dataset", contains="mnist"),
    row("train.py", [*NET, "--dataset=npz:{root}/none.npz"], "--dataset",
        contains="does not exist"),
    row("train.py", [*NET, "--dataset=npz:{npz_lengths}"], "--dataset",
        contains="x_train has 8 images but y_train has 7 labels"),
    row("train.py", [*NET, "--dataset=npz:{npz_lacks}"], "--dataset",
        contains="lacks arrays ['x_test', 'y_test']"),
    row("train.py", [*NET, "--dataset=npz:{npz_float_labels}"], "--dataset",
        contains="integer labels"),
    row("train.py", [*NET, "--dataset=npz:{npz_flat}"], "--dataset",
        contains="x_train must be (N, H, W[, C])"),
    row("train.py", [*NET, "--dataset=npz:{npz_corrupt}"], "--dataset",
        contains="corrupt.npz: not a readable .npz"),
    row("train.py", [*NET, "--dataset=npz:{npy}"], "--dataset", contains="array.npy"),
    row("train.py", [*NET, "--data_dir={idx_truncated}"], "--data_dir",
        contains="train-images-idx3-ubyte.gz: IDX file truncated"),
    row("train.py", [*NET, "--data_dir={idx_magic}"], "--data_dir",
        contains="t10k-labels-idx1-ubyte.gz: bad IDX magic"),
    row("train.py", [*NET, "--data_dir={idx_lengths}"], "--data_dir",
        contains="has 20 images but"),
    row("train.py", [*NET, "--data_dir={idx_labels}"], "--data_dir",
        contains="label 12 out of range"),
    row("train.py", [*NET, "--data_dir={idx_gzip}"], "--data_dir",
        contains="t10k-images-idx3-ubyte.gz: corrupt or truncated gzip"),
    row("train.py", [*NET, "--data_dir={idx_missing}"], "--data_dir",
        contains="not found"),
    row("train.py", [*NET, "--data_dir={idx_missing}", "--heldout_examples=-1"],
        "--data_dir"),  # the data are checked first: the missing files are what the user must fix
    # tools/train.py on a user's own images (folder:), and fine-tuning a zoo entry (--init_from)
    row("train.py", [*NET, "--dataset=folder:{images}"], "--dataset", contains="broken.png"),
    row("train.py", [*NET, "--dataset=folder:{root}/none"], "--dataset", contains="does not exist"),
    row("train.py", [*NET, "--dataset=folder:{folder_small}"], "--dataset", contains="takes 28x28x1 images"),
    row("train.py", [*NET, "--dataset=folder:{folder_small}", "--image_size=28"], "--dataset", contains="10 classes"),
    row("train.py", [*NET, "--image_size=0"], "--image_size"),
    # issue 31: pixels no network learns from, splits that do not match, empty classes
    row("train.py", [*NET, "--dataset=npz:{npz_nan}"], "--dataset", contains="x_train: 1 NaN pixel value(s)"),
    row("train.py", [*NET, "--dataset=npz:{npz_scaled_0_1}"], "--dataset", contains="multiply them by 255"),
    row("train.py", [*NET, "--dataset=npz:{npz_scaled_0_1}", "--allow_0_1_pixels"], "--dataset",
        contains="takes 28x28x1 images"),  # the scale meant: the next check speaks
    row("train.py", [*NET, "--dataset=npz:{npz_sizes}"], "--dataset", contains="but x_test 32x32x1 ones"),
    row("train.py", [*NET, "--dataset=folder:{folder_empty_class}"], "--dataset",
        contains="class folder '{folder_empty_class}/train/c' has no images"),
    row("train.py", ["--init_from=no-such-entry", "--run_dir={root}/r"], "--init_from", contains="no-such-entry"),
    row("train.py", ["--init_from=NSENet-27", "--run_dir={root}/r"], "--init_from", contains="no trained weights"),
    row("train.py", ["--init_from=mobilenetv2-style-fmnist.e60_flip", "--run_dir={root}/r"], "--init_from",
        contains="flip-averaged"),
    row("train.py", [*NET, f"--init_from={TRAINED}"], "--init_from", contains="drop --arch"),
    row("train.py", [*NET, "--freeze_epochs=1"], "--freeze_epochs", contains="needs --init_from"),
    row("train.py", [f"--init_from={TRAINED}", "--run_dir={root}/r", "--epochs=2", "--freeze_epochs=3"],
        "--freeze_epochs"),
    row("train.py", [f"--init_from={TRAINED}", "--run_dir={root}/r", "--dataset=folder:{folder_small}"], "--dataset",
        contains="square"),
    row("train.py", [f"--init_from={TRAINED}", "--run_dir={root}/r", "--dataset=folder:{folder_no_test}",
                     "--image_size=8"], "--dataset", contains="no test images"),
    # tools/evaluate.py
    row("evaluate.py", [], "--model", contains="is required"),
    row("evaluate.py", ["--model=no-such-entry"], "--model", contains="no-such-entry"),
    row("evaluate.py", ["--model=../../etc"], "--model", contains="../../etc"),
    row("evaluate.py", ["--model=NSENet-27"], "--model", contains="weights"),
    row("evaluate.py", ["--model=files-list"], "--model", contains="field files must map", zoo=True),
    row("evaluate.py", ["--model=files-bad-sha"], "--model", contains="64 hex digits", zoo=True),
    row("evaluate.py", ["--model=missing-keys"], "--model", contains="missing keys ['macs', 'top1']", zoo=True),
    row("evaluate.py", ["--model=tampered-network"], "--model", contains="network.json: sha256", zoo=True),
    row("evaluate.py", ["--model=missing-weights"], "--model", contains="model.weights.h5 is missing", zoo=True),
    row("evaluate.py", ["--model=not-json"], "--model", contains="not valid JSON", zoo=True),
    row("evaluate.py", [f"--model={TRAINED}", "--quick", "--tflite=int8"], "--tflite", contains="--quick"),
    row("evaluate.py", [f"--model={TRAINED}", "--tflite=int4"], "--tflite"),
    row("evaluate.py", ["--model=mobilenetv2-style-fmnist.e60_flip", "--tflite=int8_qat"], "--tflite", contains="has no int8_qat file"),
    row("evaluate.py", [f"--model={TRAINED}", "--data_dir={idx_truncated}"], "--data_dir", contains="truncated"),
    row("evaluate.py", [f"--model={TRAINED}", "--dataset=npz:{npz_lengths}"], "--dataset", contains="7 labels"),
    row("evaluate.py", ["--model={not_a_run}"], "--model"),
    row("evaluate.py", [f"--model={TRAINED}", "--dataset=folder:{images}"], "--dataset", contains="broken.png"),
    row("evaluate.py", [f"--model={TRAINED}", "--dataset=folder:{folder_small}"], "--dataset",
        contains="takes 28x28x1 images"),
    row("evaluate.py", [f"--model={TRAINED}", "--image_size=0"], "--image_size"),
    row("evaluate.py", [f"--model={TRAINED}", "--dataset=npz:{npz_nan}"], "--dataset", contains="1 NaN pixel"),
    # tools/export.py
    row("export.py", [], "--out_dir", contains="is required"),
    row("export.py", ["--out_dir={root}/e"], "--arch", contains="is required"),
    row("export.py", ["--out_dir={root}/e", "--formats=png"], "--formats", contains="png"),
    row("export.py", ["--out_dir={root}/e", "--formats=int8", "--num_calibration=0"], "--num_calibration"),
    row("export.py", ["--out_dir={root}/e", "--latency_runs=0"], "--latency_runs"),
    row("export.py", ["--out_dir={root}/e", "--arch={net_zero_std}"], "--arch", contains="std positive"),
    row("export.py", ["--out_dir={root}/e", "--arch={net_ok}", "--weights={root}/w.h5"], "--weights",
        contains=".weights.h5"),
    row("export.py", ["--out_dir={root}/e", "--arch={net_ok}", "--weights={root}/none.weights.h5"], "--weights",
        contains="no such file"),
    row("export.py", ["--out_dir={root}/e", f"--arch={TRAINED}", "--formats=int8", "--data_dir={idx_magic}"],
        "--data_dir", contains="bad IDX magic"),
    # tools/make_zoo_entry.py
    row("make_zoo_entry.py", [], "--name", contains="is required"),
    row("make_zoo_entry.py", ["--name=../../x", "--arch=NSENet-27"], "--name", contains="not a zoo entry name"),
    row("make_zoo_entry.py", ["--name=a/b", "--arch=NSENet-27"], "--name", contains="not a zoo entry name"),
    row("make_zoo_entry.py", ["--name=mobilenetv2-style-fmnist-e60", "--arch=NSENet-27"], "--name",
        contains="is an alias of mobilenetv2-style-fmnist.e60"),
    row("search.py", ["--run_dir={root}/s", "--num_classes=7"], "--num_classes", contains="has 10 classes"),
    row("make_zoo_entry.py", ["--name=files-list", "--arch=NSENet-27"], "--name", contains="already exists",
        zoo=True),
    row("make_zoo_entry.py", ["--name=x", "--arch=NSENet-27", "--train_dir={root}"], "--train_dir"),
    row("make_zoo_entry.py", ["--name=x", "--train_dir={not_a_run}"], "--train_dir",
        contains="not a tools/train.py run directory"),
    row("make_zoo_entry.py", ["--name=x", "--arch={net_float_size}"], "--arch", contains="input_size"),
    row("make_zoo_entry.py", ["--name=x", "--train_dir={run_lost_folder}"], "--train_dir", contains="gone"),
    row("make_zoo_entry.py", ["--name=x", "--arch=NSENet-27", "--flip_average"], "--flip_average"),
    row("make_zoo_entry.py", ["--name=nan-pixels", "--train_dir={run_nan_pixels}"], "--train_dir",
        contains="1 NaN pixel"),
    row("make_zoo_entry.py", ["--reexport=no-such-entry"], "--reexport", contains="no-such-entry"),
    row("make_zoo_entry.py", ["--reexport=missing-weights"], "--reexport", contains="model.weights.h5 is missing"),
    row("make_zoo_entry.py", [f"--reexport={TRAINED}", "--name=x"], "--reexport", contains="takes no --name"),
    # tools/search.py (flag checks before any training)
    row("search.py", [], "--run_dir", contains="is required"),
    row("search.py", ["--run_dir={root}/s", "--pool=mac99"], "--pool"),
    row("search.py", ["--run_dir={root}/s", "--pool=mb_k3_t6,mb_bogus"], "--pool", contains="mb_bogus"),
    row("search.py", ["--run_dir={root}/s", "--dataset=mnist"], "--dataset", contains="mnist"),
    row("search.py", ["--run_dir={root}/s", "--weight_lr=-0.1"], "--weight_lr"),
    row("search.py", ["--run_dir={root}/s", "--counts=1,x"], "--counts"),
    row("search.py", ["--run_dir={root}/s", "--pool=mac72", "--channels=16,16,24,40,48,96,161"], "--channels",
        contains="operation mb_k3_t1_g12"),
    row("search.py", ["--run_dir={root}/s", "--target_macs=5000"], "--target_macs", contains="impossible"),
    row("search.py", ["--run_dir={root}/s", "--window=a,b"], "--window"),
    row("search.py", ["--run_dir={root}/s", "--strategy=tpu"], "--strategy"),
    row("search.py", ["--run_dir={root}/s", "--cost=latency"], "--target_ms", contains="is required"),
    row("search.py", ["--run_dir={root}/s", "--max_sample_draws=0"], "--max_sample_draws"),
    row("search.py", ["--run_dir={root}/s", "--latency_format=int8"], "--latency_format", contains="--cost=latency"),
    row("search.py", ["--run_dir={root}/s", "--latency_format=int4"], "--latency_format"),
    row("search.py", ["--run_dir={root}/s", "--ops_per_cell=1"], "--ops_per_cell"),
    row("search.py", ["--run_dir={root}/s", "--steps_per_round=0"], "--steps_per_round"),
    row("search.py", ["--run_dir={root}/s", "--data_dir={idx_truncated}", "--heldout_examples=5"], "--data_dir",
        contains="truncated"),
    row("search.py", ["--run_dir={root}/s", "--dataset=folder:{images}", "--heldout_examples=1", "--input_size=8",
                      "--num_classes=2", "--target_macs=5", "--mac_drift=1"], "--dataset", contains="broken.png"),
    row("search.py", ["--run_dir={root}/s", "--dataset=folder:{folder_cut}", "--heldout_examples=1", "--input_size=8",
                      "--num_classes=2", "--target_macs=5", "--mac_drift=1"], "--dataset",
        contains="image '{folder_cut}/train/b/cut.png' cannot be decoded"),
    # the stand-alone tools
    row("ranking.py", [], "--search_run", contains="is required"),
    row("ranking.py", ["--search_run={root}/none"], "--search_run"),
    row("ranking.py", ["--search_run={search_run_corrupt}"], "--search_run", contains="corrupted"),
    row("ranking.py", ["--num_archs=2"], "--num_archs"),
    row("ranking.py", ["--shard=2/2", "--search_run=x"], "--shard"),
    row("random_search.py", [], "--out_dir", contains="is required"),
    row("random_search.py", ["--out_dir={root}/rs", "--num_archs=0"], "--num_archs"),
    row("random_search.py", ["--out_dir={root}/rs", "--shard=1/0"], "--shard"),
    row("compare.py", ["--row=magic:x:0"], "--row"),
    row("compare.py", ["--row=nse:no-such-entry:0"], "--row"),
    row("make_baseline.py", [], "--out", contains="is required"),
    row("make_baseline.py", ["--out={root}/b.json", "--like={root}/none.json"], "--like"),
    row("make_baseline.py", ["--out={root}/b.json", "--like={net_zero_std}"], "--like", contains="std"),
]


def run_row(bad: dict[str, str], number: int, tool: str, args: list[str], zoo: bool) -> subprocess.CompletedProcess:
    """One row's tool, with its own empty ``{root}`` for what it may write (rows never see each other's outputs)."""
    root = os.path.join(bad["root"], f"row{number:03d}")
    os.makedirs(root)
    args = [a.format(**{**bad, "root": root}) for a in args]
    zoo = zoo or tool == "make_zoo_entry.py"  # never stage anything in the repository's zoo
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **({"NSE_TF_ZOO": bad["zoo"]} if zoo else {}))
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", tool), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def cli_results(bad, request):
    """The selected CLI rows started at once, one process per core (at most 4): each tool's start-up is mostly
    TensorFlow's import (about 9 s here), and one row at a time the catalogue took two thirds of the suite. Each
    row's test waits for its own process, so a row keeps its own timeout and its own failure."""
    from concurrent.futures import ThreadPoolExecutor

    keys = [(p["tool"], tuple(p["args"]), p["zoo"]) for p in (item.callspec.params for item in request.session.items
            if getattr(item, "originalname", None) == "test_a_bad_input_gives_one_line_naming_its_cause")]
    assert len(set(keys)) == len(keys), "two rows run the same command"
    pool = ThreadPoolExecutor(max_workers=max(1, min(len(os.sched_getaffinity(0)), 4)))
    try:
        yield {key: pool.submit(run_row, bad, i, key[0], list(key[1]), key[2]) for i, key in enumerate(keys)}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("tool, args, names, contains, zoo", CLI_ROWS)
def test_a_bad_input_gives_one_line_naming_its_cause(bad, cli_results, tool, args, names, contains, zoo):
    result = cli_results[tool, tuple(args), zoo].result()
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"{tool}: error:")]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-3000:]
    assert f"{tool}: error: {names}" in lines[0], lines[0]
    assert contains.format(**bad) in lines[0], lines[0]


# ------------------------------------------------------------------ the Python API
def api(name: str, call: Callable[[dict], object], error: type, contains: str):
    return pytest.param(call, error, contains, id=name)


API_ROWS = [
    api("network file is a list", lambda b: NetworkSpec.load(b["net_list"]), ArchitectureError,
        "holds one JSON object"),
    api("input_size 28.5", lambda b: NetworkSpec.load(b["net_float_size"]), ArchitectureError, "whole number"),
    api("std 0", lambda b: NetworkSpec.load(b["net_zero_std"]), ArchitectureError, "std positive"),
    api("bad op", lambda b: NetworkSpec.load(b["net_bad_op"]), ArchitectureError, "cell 0: operation 'no_such_op'"),
    api("dict, not a spec", lambda b: NetworkSpec.from_dict({"format": "nse_tf.network", "version": 1}),
        ArchitectureError, "missing field(s) space, cells"),
    api("channels 0", lambda b: MacroSpace(channels=(0, 24, 40, 80, 96, 192, 320)), ValueError, "channels"),
    api("counts of strings", lambda b: MacroSpace(counts=("1", "3", "3", "3", "3", "3")), ValueError, "counts"),
    api("input_channels 0", lambda b: MacroSpace(input_channels=0), ValueError, "input_channels"),
    api("unknown space", lambda b: get_space("tiny"), ValueError, "unknown space 'tiny'"),
    api("K = 1", lambda b: EvolutionConfig(ops_per_cell=1), ValueError, "ops_per_cell"),
    api("zoo name with ..", lambda b: zoo.load("../zoo/x"), zoo.ZooError, "not a zoo entry name"),
    api("zoo: no weights", lambda b: zoo.load("NSENet-27"), zoo.ZooError, "no pretrained weights"),
    api("zoo: weights=imagenet", lambda b: zoo.load(TRAINED, weights="imagenet"), zoo.ZooError, "weights must be"),
    api("zoo: not square", lambda b: zoo.load(TRAINED, input_shape=(28, 32, 1)), zoo.ZooError, "square"),
    api("zoo: int4", lambda b: zoo.tflite_path(TRAINED, "int4"), zoo.ZooError, "variant"),
    api("zoo: other classes", lambda b: zoo.load(TRAINED, num_classes=5), zoo.ZooError, "weights=None"),
    api("IDX truncated", lambda b: idx.read_idx(os.path.join(b["idx_truncated"], "train-images-idx3-ubyte.gz")),
        idx.DataFileError, "train-images-idx3-ubyte.gz: IDX file truncated"),
    api("IDX missing", lambda b: idx.load_fashion_mnist(b["idx_missing"]), idx.DataNotFoundError, "not found"),
    api("npz lengths", lambda b: load_arrays(f"npz:{b['npz_lengths']}"), DatasetError, "7 labels"),
    api("folder: not an image", lambda b: load_arrays(f"folder:{b['images']}"), idx.DataFileError, "broken.png"),
    api("arrays: image_size 0", lambda b: load_arrays(f"folder:{b['folder_small']}", image_size=0), DatasetError,
        "image_size must be a positive"),
    api("held-out too big", lambda b: idx.heldout_split(10, 10, 0), ValueError, "heldout"),
    api("shard", lambda b: Shard.parse("3/2"), ValueError, "i/n"),
    api("zoo: files a list", lambda b: zoo_entry(b, "files-list"), zoo.ZooError, "field files must map"),
    api("zoo: keys missing", lambda b: zoo_entry(b, "missing-keys"), zoo.ZooError, "missing keys"),
    api("zoo: network tampered", lambda b: zoo_entry(b, "tampered-network", load=True), zoo.ZooError,
        "network.json: sha256"),
    api("zoo: weights missing", lambda b: zoo_entry(b, "missing-weights", load=True), zoo.ZooError,
        "model.weights.h5 is missing"),
    # issue 31: sizes beyond sense and hostile entries
    api("10^9 channels", lambda b: NetworkSpec.load(b["net_huge_channels"]), ArchitectureError,
        "channels: 1,000,000,000 is beyond the limit"),
    api("JSON nested 100,000 deep", lambda b: NetworkSpec.load(b["net_nested"]), ArchitectureError,
        "nested deeper than"),
    api("zoo: a file outside the entry", lambda b: zoo_entry(b, "files-outside"), zoo.ZooError,
        "not a plain name inside the entry"),
]


def zoo_entry(bad: dict, name: str, load: bool = False):
    previous = os.environ.get(zoo.ZOO_ENV)
    os.environ[zoo.ZOO_ENV] = bad["zoo"]
    try:
        return zoo.load(name) if load else zoo.get_entry(name)
    finally:
        if previous is None:
            os.environ.pop(zoo.ZOO_ENV)
        else:
            os.environ[zoo.ZOO_ENV] = previous


@pytest.mark.parametrize("call, error, contains", API_ROWS)
def test_a_bad_api_call_raises_one_clear_error(bad, call, error, contains):
    with pytest.raises(error) as info:
        call(bad)
    message = str(info.value)
    assert contains in message and "\n" not in message, message


def test_the_catalogue_is_at_least_sixty_rows():
    assert len(CLI_ROWS) + len(API_ROWS) >= 60
