"""Tests for nse_tf.baselines: the MobileNetV2-style baseline keeps the skeleton and fits the MACs budget."""

from __future__ import annotations

import numpy as np
import pytest

from nse_tf.space.analytic import network_cost
from nse_tf.space.baselines import MOBILENET_V2_OP, mobilenet_v2_style
from nse_tf.space.macro import get_space

SPACE = get_space("small", counts=(0, 1, 1, 1, 0, 0), channels=(8, 16, 24, 32, 48, 64, 128))


@pytest.mark.parametrize("budget", [4e6, 6e6, 9.5e6])
def test_widest_baseline_within_budget(budget):
    spec = mobilenet_v2_style(SPACE, budget)
    assert network_cost(spec).macs <= budget
    assert [cell.kind for cell in spec.space.cells()] == [cell.kind for cell in SPACE.cells()]
    assert spec.space.head_channels == SPACE.head_channels and spec.space.stem_stride == SPACE.stem_stride
    assert all(names == [MOBILENET_V2_OP] for names in spec.arch.names(spec.space.get_pool()))
    assert network_cost(spec).macs > 0.9 * budget  # channels in steps of 4 match the budget closely
    # No width on the grid fits the budget with more MACs.
    for scale in np.arange(0.25, 4.0001, 0.01):
        macs = network_cost(mobilenet_v2_style(SPACE, 1e12, scales=np.array([scale]))).macs
        assert macs > budget or macs <= network_cost(spec).macs


def test_impossible_budget_is_refused():
    with pytest.raises(ValueError, match="no width of MobileNetV2-style fits in 0.10 M MACs"):
        mobilenet_v2_style(SPACE, 1e5)


def flagfile_values(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as f:
        return dict(line.strip()[2:].split("=", 1) for line in f if line.startswith("--") and "=" in line)


def test_committed_baseline_is_matched_to_the_searched_front():
    """configs/archs/mobilenetv2_style_fmnist.json is what make_baseline gives for front_1 of the committed
    search, and its MACs lie between the two searched zoo networks'."""
    import os

    from nse_tf import resolve_spec

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    arch = {name: resolve_spec(os.path.join(repo, flagfile_values(os.path.join(repo, "configs", f))["arch"]))
            for name, f in [("baseline", "train_mobilenetv2_style_fmnist.flags"), ("6m", "train_nse_fmnist_6m.flags"),
                            ("7m", "train_nse_fmnist_7m.flags")]}
    front_1 = resolve_spec(os.path.join(repo, "results", "fashion_mnist_nse", "chosen", "front_1.json"))
    expected = mobilenet_v2_style(front_1.space, network_cost(front_1).macs, name=arch["baseline"].name)
    assert arch["baseline"] == expected
    macs = {name: network_cost(spec).macs for name, spec in arch.items()}
    assert macs["6m"] <= macs["baseline"] <= macs["7m"]
    recipes = {flagfile_values(os.path.join(repo, "configs", f)).get("flagfile")
               for f in ("train_mobilenetv2_style_fmnist.flags", "train_nse_fmnist_6m.flags", "train_nse_fmnist_7m.flags")}
    assert recipes == {"configs/train_fashion_mnist.flags"}  # one recipe for all: like with like


def test_longer_recipe_differs_only_in_epochs():
    """Each configs/train_<model>_e60.flags is its 30-epoch flagfile with --epochs=60 and its own run
    directory, and all three networks have one: the longer recipe also compares like with like."""
    import glob
    import os

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = sorted(glob.glob(os.path.join(repo, "configs", "train_*_e60.flags")))
    models = {os.path.basename(p)[len("train_"):-len("_e60.flags")]: flagfile_values(p) for p in paths}
    assert set(models) == {"mobilenetv2_style_fmnist", "nse_fmnist_6m", "nse_fmnist_7m"}
    for model, values in models.items():
        base = flagfile_values(os.path.join(repo, "configs", f"train_{model}.flags"))
        assert values == {"flagfile": f"configs/train_{model}.flags", "epochs": "60",
                          "run_dir": base["run_dir"].replace("runs/train/", "runs/train/e60-")}


def test_the_comparison_retrains_every_method_with_one_recipe():
    """configs/comparison/<method>_s<seed>.flags: the same recipe file, seeds 0 and 1, one run directory each,
    and the baseline is what make_baseline gives for NSE's pick (the MACs matched)."""
    import os

    from nse_tf import resolve_spec

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folder = os.path.join(repo, "configs", "comparison")
    runs = {}
    for method in ("nse", "random", "baseline"):
        for seed in (0, 1):
            values = flagfile_values(os.path.join(folder, f"{method}_s{seed}.flags"))
            assert set(values) == {"flagfile", "arch", "seed", "run_dir"}, values
            assert values["flagfile"] == "configs/comparison/recipe.flags" and values["seed"] == str(seed)
            runs[method, seed] = values
    assert len({v["run_dir"] for v in runs.values()}) == 6
    assert flagfile_values(os.path.join(folder, "recipe.flags")) == {"flagfile": "configs/train_fashion_mnist.flags",
                                                                      "epochs": "15"}
    pick = resolve_spec(os.path.join(repo, runs["nse", 0]["arch"]))
    baseline = resolve_spec(os.path.join(repo, runs["baseline", 0]["arch"]))
    assert baseline == mobilenet_v2_style(pick.space, network_cost(pick).macs, name=baseline.name)
    assert network_cost(baseline).macs <= network_cost(pick).macs
