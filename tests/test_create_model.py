"""One model entry point (issue 17): ``nse_tf.create_model`` / ``list_models`` over zoo entries (tagged names,
aliases, a second configuration of one weights file), published architectures, JSON files and NetworkSpecs."""

from __future__ import annotations

import json
import os
import shutil
import tomllib

import numpy as np
import pytest

import nse_tf
from nse_tf.data.arrays import load_arrays
from nse_tf.zoo import registry

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
E60, E60_FLIP = "mobilenetv2-style-fmnist.e60", "mobilenetv2-style-fmnist.e60_flip"


def test_a_tagged_entry_and_its_flip_configuration_share_one_weights_file():
    plain, flip = registry.get_entry(E60), registry.get_entry(E60_FLIP)
    assert registry.WEIGHTS_NAME in plain.config.files and registry.WEIGHTS_NAME not in flip.config.files
    assert not os.path.exists(os.path.join(flip.path, registry.WEIGHTS_NAME))
    assert flip.config.flip_average and flip.config.weights_from == E60 and flip.has_weights
    assert flip.weights_file() == plain.weights_file()
    images = load_arrays("fashion_mnist").x_test[:4].astype(np.float32)
    one, two = nse_tf.create_model(E60, pretrained=True), nse_tf.create_model(E60_FLIP, pretrained=True)
    mirrored = one(images[:, :, ::-1, :])
    np.testing.assert_allclose(np.asarray(two(images)), (np.asarray(one(images)) + np.asarray(mirrored)) / 2,
                               atol=1e-4)


def test_old_names_are_aliases_of_the_tagged_ones():
    assert registry.canonical_name("mobilenetv2-style-fmnist-e60-flip") == E60_FLIP
    assert registry.get_entry("mobilenetv2-style-fmnist-e60").name == E60
    assert "mobilenetv2-style-fmnist-e60" not in registry.list_models()  # listed once, by its current name
    assert nse_tf.resolve_spec("mobilenetv2-style-fmnist-e60").name == registry.get_entry(E60).network_spec().name


def test_create_model_takes_every_kind_of_name(tmp_path):
    spec = registry.get_entry("mobilenetv2-style-fmnist").network_spec()
    fresh = nse_tf.create_model("mobilenetv2-style-fmnist")  # an entry without pretrained: a fresh initialisation
    trained = nse_tf.create_model("mobilenetv2-style-fmnist", pretrained=True)
    assert fresh.count_params() == trained.count_params()
    assert not all(np.array_equal(a, b) for a, b in zip(fresh.get_weights(), trained.get_weights()))
    path = tmp_path / "net.json"
    spec.save(str(path))
    for source in (spec, str(path)):
        model = nse_tf.create_model(source, num_classes=7, input_shape=(32, 32, 1))
        assert model.output_shape == (None, 7) and model.input_shape == (None, 32, 32, 1)
    published = nse_tf.create_model("NSENet-27", num_classes=10, input_shape=(64, 64, 3))
    assert published.output_shape == (None, 10)
    with pytest.raises(registry.ZooError, match="no pretrained weights"):
        nse_tf.create_model(str(path), pretrained=True)
    # issue 32: another class count loads every weight but the classifier, as timm (tests/test_transfer.py)
    assert nse_tf.create_model("mobilenetv2-style-fmnist", pretrained=True, num_classes=7).output_shape == (None, 7)


def test_list_models_filters_by_pattern_and_by_weights():
    everything = nse_tf.list_models()
    assert "NSENet-27" in everything and E60 in everything and everything == sorted(everything)
    assert nse_tf.list_models("*.e60*") == [E60, E60_FLIP]
    pretrained = nse_tf.list_models(pretrained=True)
    assert E60_FLIP in pretrained and "NSENet-27" not in pretrained
    assert all(registry.get_entry(n).has_weights for n in pretrained)


SEEDS = ("nse-fmnist-latency-s0", "nse-fmnist-latency-s1")


def test_comparison_seeds_are_listed_once_by_their_recipe_and_still_load_by_name():
    listed, everything = nse_tf.list_models(), nse_tf.list_models(include_seeds=True)
    assert not any(registry.SEED_NAME.fullmatch(n) for n in listed)
    assert "nse-fmnist-latency" in listed and set(SEEDS) <= set(everything) and set(listed) <= set(everything)
    assert "nse-fmnist-latency" in nse_tf.list_models("nse-*", pretrained=True)
    # the recipe's name loads its lowest seed: choosing the better one would choose by the test split
    assert registry.canonical_name("nse-fmnist-latency") == SEEDS[0] == registry.get_entry("nse-fmnist-latency").name
    assert nse_tf.resolve_spec(SEEDS[0]).name == registry.get_entry(SEEDS[0]).network_spec().name
    assert registry.is_entry("nse-fmnist-latency") and registry.is_entry(SEEDS[0])


def test_a_new_seed_needs_no_registration(tmp_path, monkeypatch):
    """Seeds are a naming rule: an entry added as ``<recipe>-s0`` is listed by its recipe; an entry that has the
    recipe's own name keeps it, its seeds hidden behind it."""
    root = copy_zoo(tmp_path, monkeypatch, "mobilenetv2-style-fmnist-latency-s0", "mobilenetv2-style-fmnist")
    for new, old in (("mobilenetv2-style-fmnist-a035-s0", "mobilenetv2-style-fmnist-latency-s0"),
                     ("mobilenetv2-style-fmnist-s3", "mobilenetv2-style-fmnist")):
        shutil.copytree(root / old, root / new)
        rewrite(root, new, lambda m, new=new: m.update(name=new))
    assert registry.listed_models() == ["mobilenetv2-style-fmnist", "mobilenetv2-style-fmnist-a035",
                                        "mobilenetv2-style-fmnist-latency"]
    assert registry.get_entry("mobilenetv2-style-fmnist-a035").name == "mobilenetv2-style-fmnist-a035-s0"
    assert registry.get_entry("mobilenetv2-style-fmnist").name == "mobilenetv2-style-fmnist"
    assert "mobilenetv2-style-fmnist-s3" in registry.listed_models(include_seeds=True)


def test_the_zoo_table_leads_with_the_picks():
    from nse_tf.cli import zoo_table

    table = zoo_table.zoo_table()
    picks, seeds = table.split(zoo_table.SEEDS_NOTE)
    assert registry.canonical_name("nse-fmnist-latency") == "nse-fmnist-latency-s0"  # the lowest seed, not the best
    assert "| nse-fmnist-latency (-s0 of 2 seeds) |" in picks
    assert not any(f"| {seed} |" in picks for seed in SEEDS) and all(f"| {seed} |" in seeds for seed in SEEDS)
    rows = [line for line in picks.splitlines() if line.startswith("| ") and not line.startswith("| name")]
    trained = [not registry.get_entry(row.split(" ")[1]).has_weights for row in rows]
    assert trained == sorted(trained)  # trained entries first, architectures without weights last


def copy_zoo(tmp_path, monkeypatch, *names):
    root = tmp_path / "zoo"
    for name in names:
        shutil.copytree(os.path.join(REPO, "zoo", name), root / name, ignore=shutil.ignore_patterns("*.tflite"))
    monkeypatch.setenv(registry.ZOO_ENV, str(root))
    return root


def rewrite(root, name, edit):
    path = root / name / registry.METADATA_NAME
    metadata = json.loads(path.read_text())
    edit(metadata)
    path.write_text(json.dumps(metadata))


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(num_classes="ten"), "field num_classes must be int, got 'ten'"),
    (lambda m: m.update(input_shape=[28, 28]), r"field input_shape must be \[height, width, channels\]"),
    (lambda m: m.update(flip_average="yes"), "field flip_average must be bool"),
    (lambda m: m.pop("weights_sha256"), "field weights_sha256 must pin the sha256"),
])
def test_a_malformed_entry_config_names_its_file_and_field(tmp_path, monkeypatch, edit, message):
    root = copy_zoo(tmp_path, monkeypatch, E60, E60_FLIP)
    rewrite(root, E60_FLIP, edit)
    with pytest.raises(registry.ZooError, match=message) as info:
        registry.get_entry(E60_FLIP)
    assert str(root / E60_FLIP / registry.METADATA_NAME) in str(info.value)


def test_borrowed_weights_that_changed_are_refused(tmp_path, monkeypatch):
    root = copy_zoo(tmp_path, monkeypatch, E60, E60_FLIP)
    rewrite(root, E60_FLIP, lambda m: m.update(weights_sha256="0" * 64))
    with pytest.raises(registry.ZooError, match="weights of mobilenetv2-style-fmnist.e60 changed since it was measured"):
        registry.load(E60_FLIP)


def test_the_console_scripts_name_entry_points_and_run():
    """Each script's target is a module of nse_tf/cli with its function (read with ast: the modules define absl
    flags, so several cannot be imported into one process); one installed script runs."""
    import ast
    import subprocess
    import sys

    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    assert set(scripts) == {"nse-search", "nse-train", "nse-evaluate", "nse-export", "nse-zoo"}
    for target in scripts.values():
        module, function = target.split(":")
        with open(os.path.join(REPO, *module.split(".")) + ".py", encoding="utf-8") as f:
            tree = ast.parse(f.read())
        assert function in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, target
    script = os.path.join(os.path.dirname(sys.executable), "nse-evaluate")
    out = subprocess.run([script], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1] == "evaluate.py: error: --model: is required"
