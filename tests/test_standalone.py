"""The random-search control's uniform sampler and the ranking statistics (no training here)."""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest

from nse_tf.search.evolution import ArchPoint
from nse_tf.search.standalone import round_points, spread_over_accuracy, window_points
from nse_tf.utils.metrics import kendall_tau, spearman
from nse_tf.search.uniform_sampling import UniformWindowSampler


def all_architectures(n_ops, may_be_empty):
    per_cell = []
    for empty_ok in may_be_empty:
        sets = [list(s) for r in range(n_ops + 1) for s in itertools.combinations(range(n_ops), r)]
        per_cell.append([s for s in sets if s or empty_ok])
    return [list(a) for a in itertools.product(*per_cell)]


@pytest.mark.parametrize("resolution", [0.002, 0.05])  # fine bins, and bins coarse enough to need rejection
def test_draws_are_uniform_over_the_window_and_never_outside(resolution):
    rng = np.random.default_rng(0)
    op_costs = rng.uniform(0.1, 1.0, (3, 4))
    may_be_empty = [False, True, False]
    fixed, low, high = 0.5, 2.0, 2.6
    sampler = UniformWindowSampler(op_costs, fixed, may_be_empty, low, high, resolution)
    cost = lambda a: fixed + sum(op_costs[c][i] for c, cell in enumerate(a) for i in cell)  # noqa: E731
    inside = {tuple(map(tuple, a)) for a in all_architectures(4, may_be_empty) if low < cost(a) < high}
    assert 30 < len(inside) < 400
    draws = 40 * len(inside)
    counts = {}
    for _ in range(draws):
        a = tuple(map(tuple, sampler.draw(rng)))
        counts[a] = counts.get(a, 0) + 1
    assert set(counts) == inside  # every architecture of the window is reachable, none outside it is drawn
    freq = np.array(list(counts.values()))
    assert abs(freq.mean() - 40) < 1e-9 and freq.min() > 15 and freq.max() < 65  # 40 +- 3.9 sigma


def test_cells_that_must_hold_an_operation_never_come_out_empty():
    sampler = UniformWindowSampler([[0.0, 1.0], [0.0, 1.0]], 0.0, [False, True], -1.0, 0.5)
    rng = np.random.default_rng(1)
    draws = [sampler.draw(rng) for _ in range(200)]
    assert all(d[0] == [0] for d in draws)  # the R/E cell: only its zero-cost op fits
    assert {tuple(d[1]) for d in draws} == {(), (0,)}


def test_a_window_without_architectures_is_refused():
    with pytest.raises(ValueError, match="no architecture"):
        UniformWindowSampler([[1.0, 2.0]], 0.0, [False], 3.5, 3.9)
    with pytest.raises(ValueError, match="below the fixed cost"):
        UniformWindowSampler([[1.0]], 5.0, [False], 1.0, 2.0)


def test_draw_unique_gives_distinct_architectures():
    sampler = UniformWindowSampler(np.full((4, 5), 0.1), 0.0, [True] * 4, 0.15, 0.45)
    archs = sampler.draw_unique(np.random.default_rng(2), 50)
    assert len({tuple(map(tuple, a)) for a in archs}) == 50


def test_shards_split_the_jobs_between_them():
    from nse_tf.search.standalone import Shard

    shards = [Shard.parse(f"{i}/3") for i in range(3)]
    assert [[j for j in range(7) if s.takes(j)] for s in shards] == [[0, 3, 6], [1, 4], [2, 5]]
    assert Shard.parse("0/1") == Shard()
    for bad in ("3/3", "-1/2", "1", "a/b", "1/0"):
        with pytest.raises(ValueError, match="i/n"):
            Shard.parse(bad)


def test_the_shard_finishing_last_sees_runs_another_shard_finished_while_it_trained(tmp_path, monkeypatch):
    """Shard 1 of 2 reaches job 2 (shard 0's) before shard 0 has finished it; shard 0 finishes it while shard 1
    trains job 3. Shard 1 finishes last, so it must return all four results (this race once left the ranking
    without its ranking.json)."""
    from nse_tf.data import arrays
    from nse_tf.search import standalone
    from nse_tf.train import run_dir

    def result_of(run_dir):
        os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, "result.json"), "w") as f:
            json.dump({"top1": 0.5, "processes": [{"seconds": 1.0}]}, f)

    dirs = [str(tmp_path / f"job{k}") for k in range(4)]
    result_of(dirs[0])  # shard 0's first job: finished before shard 1 starts

    def train(spec, recipe, run_dir, *args):
        result_of(run_dir)
        if run_dir == dirs[3]:
            result_of(dirs[2])  # shard 0 ends job 2 meanwhile

    monkeypatch.setattr(standalone, "train_on_heldout", train)
    monkeypatch.setattr(arrays, "load_arrays", lambda *args: None)
    monkeypatch.setattr(run_dir, "check_run_dir", lambda *args: None)
    jobs = [(None, None, d) for d in dirs]
    results = standalone.run_share(jobs, standalone.Shard(1, 2), 100, 0, log=lambda line: None)
    assert all(r is not None for r in results)
    other = standalone.run_share(jobs[:3] + [(None, None, str(tmp_path / "unfinished"))], standalone.Shard(0, 2),
                                 100, 0, log=lambda line: None)
    assert other[3] is None


def test_rank_correlations_match_known_values():
    # no ties: 8 concordant, 2 discordant pairs of 10 -> 0.6; ranks' Pearson -> 0.8. Ties: 4 net concordant
    # pairs, 5 untied pairs in each variable -> tau-b 4 / sqrt(5 * 5)
    assert kendall_tau([1, 2, 3, 4, 5], [2, 1, 3, 5, 4]) == pytest.approx(0.6)
    assert spearman([1, 2, 3, 4, 5], [2, 1, 3, 5, 4]) == pytest.approx(0.8)
    assert kendall_tau([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(0.8)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_window_points_and_spread(tmp_path):
    points = [ArchPoint([[i]], 0.0505 + 0.001 * i, 0.5 + 0.01 * i, round=1) for i in range(30)]
    points.append(ArchPoint([[99]], 0.066, 0.99, round=0))  # carried from the previous front
    points.append(ArchPoint([[98]], 0.055, 0.98, round=1, extra=True))
    round_dir = tmp_path / "round_01"
    round_dir.mkdir()
    (round_dir / "pareto.json").write_text(json.dumps({"evaluated": [p.to_json() for p in points]}))
    read = round_points(str(tmp_path), 1)
    inside = window_points(read, (0.06, 0.08), 1)
    assert [p.cells[0][0] for p in inside] == list(range(10, 30))  # own, non-extra, strictly inside
    spread = spread_over_accuracy(inside, 5)
    accs = [p.accuracy for p in spread]
    assert len(spread) == 5 and accs == sorted(accs) and accs[0] == min(p.accuracy for p in inside) \
        and accs[-1] == max(p.accuracy for p in inside)
    assert os.path.exists(round_dir / "pareto.json")


# ---------------------------------------------------------------- the two tools, end to end on a tiny space

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FMNIST = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"


def fake_search_run(run_dir, n_points=6):
    """A finished one-round search of the tests' tiny space (MACs priced), as its files would hold it."""
    from nse_tf.cost.model import macs_model
    from nse_tf.data.pipeline import DataConfig
    from nse_tf.search.config import SearchConfig
    from nse_tf.search.evolution import EvolutionConfig
    from nse_tf.search.round_trainer import PenaltyConfig
    from tests.helpers import TINY_SPACE

    model = macs_model(TINY_SPACE)
    cheapest, largest = model.bounds(TINY_SPACE)
    target = (cheapest + largest) / 2
    config = SearchConfig(str(run_dir), TINY_SPACE, DataConfig(heldout_examples=2000),
                          penalty=PenaltyConfig(target=target), evolution=EvolutionConfig(drift=largest))
    os.makedirs(run_dir / "round_00")
    (run_dir / "config.json").write_text(json.dumps(config.to_json()))
    rng = np.random.default_rng(0)
    points = []
    for i in range(n_points):
        cells = [[int(rng.integers(2))] for _ in range(6)]
        points.append(ArchPoint(cells, model.architecture_cost(cells), 0.5 + 0.05 * i, round=0).to_json())
    (run_dir / "round_00" / "pareto.json").write_text(json.dumps({"evaluated": points}))
    return str(run_dir)


def run_tool(name, *args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", name), *args], capture_output=True, text=True,
                          timeout=900, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


@pytest.mark.parametrize("tool, args, flag", [
    ("ranking.py", [], "--search_run"),
    ("ranking.py", ["--num_archs=50"], "--num_archs"),
    ("ranking.py", ["--round=3"], "--round"),
    ("random_search.py", ["--search_run=/nonexistent", "--out_dir=x"], "--search_run"),
    ("random_search.py", ["--shard=2/2"], "--shard"),
    ("ranking.py", ["--shard=half"], "--shard"),
    ("proxy.py", ["--seeds=0,x"], "--seeds"),
    ("proxy.py", ["--arch=/nonexistent/net.json"], "--arch"),
    ("proxy.py", ["--round=2", "--arch=/nonexistent/net.json"], "--round"),
])
def test_tool_flag_errors_are_one_line(tmp_path, tool, args, flag):
    run = fake_search_run(tmp_path / "search")
    defaults = [f"--search_run={run}"] if not any(a.startswith("--search_run") for a in args) and args else []
    if tool == "random_search.py" and not any(a.startswith("--out_dir") for a in args):
        defaults.append(f"--out_dir={tmp_path / 'out'}")
    result = run_tool(tool, *defaults, *args)
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"{tool}: error:")]
    assert result.returncode == 2 and len(lines) == 1 and flag in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(FMNIST), reason="dataset-fashion-mnist is not installed")
def test_ranking_and_random_search_end_to_end(tmp_path):
    run = fake_search_run(tmp_path / "search")
    result = run_tool("ranking.py", f"--search_run={run}", "--num_archs=4", "--seed_archs=1", "--epochs=1",
                      f"--out_dir={tmp_path / 'ranking'}")
    assert result.returncode == 0, result.stderr[-3000:]
    ranking = json.loads((tmp_path / "ranking" / "ranking.json").read_text())
    assert ranking["n"] == 4 and -1 <= ranking["kendall_tau"] <= 1 and -1 <= ranking["spearman"] <= 1
    assert ranking["heldout"] == {"examples": 2000, "seed": 0}
    assert len(ranking["seed_spread"]["archs"]) == 1 and (tmp_path / "ranking" / "ranking.png").exists()
    # every retraining scored the held-out split, never the test split
    for row in ranking["architectures"]:
        saved = json.loads((tmp_path / "ranking" / row["run"] / "train_config.json").read_text())
        assert saved["dataset"] == "fashion_mnist:heldout=2000,seed=0"
    # two shards share the candidates: the first to finish writes nothing, the last writes the pick
    for shard in ("0/2", "1/2"):
        result = run_tool("random_search.py", f"--search_run={run}", "--num_archs=2", "--epochs=1",
                          f"--out_dir={tmp_path / 'random'}", f"--shard={shard}", "--threads=1")
        assert result.returncode == 0, result.stderr[-3000:]
        assert (tmp_path / "random" / "random_search.json").exists() == (shard == "1/2"), result.stdout
    assert "still training" in run_tool("random_search.py", f"--search_run={run}", "--num_archs=3", "--epochs=1",
                                         f"--out_dir={tmp_path / 'random'}", "--shard=1/3").stdout
    control = json.loads((tmp_path / "random" / "random_search.json").read_text())
    low, high = control["window"]
    assert len(control["candidates"]) == 2 and all(low < c["cost"] < high for c in control["candidates"])
    assert control["best"]["standalone_top1"] == max(c["standalone_top1"] for c in control["candidates"])
    assert (tmp_path / "random" / "chosen" / "best.json").exists()


@pytest.mark.parametrize("flagfile", sorted(f for f in os.listdir(os.path.join(ROOT, "configs"))
                                            if f.startswith(("ranking_", "random_search_")) and f.endswith(".flags")))
def test_committed_flagfiles_parse_with_their_tool(flagfile):
    tool = "ranking.py" if flagfile.startswith("ranking_") else "random_search.py"
    # --epochs=0 stops the tool right after parsing: any unknown or malformed line would be named instead
    result = run_tool(tool, f"--flagfile={os.path.join(ROOT, 'configs', flagfile)}", "--epochs=0")
    assert result.returncode == 2 and f"{tool}: error: --epochs:" in result.stderr, result.stderr[-2000:]


def test_comparison_table_from_zoo_entries(tmp_path):
    result = run_tool("compare.py", "--row=baseline:mobilenetv2-style-fmnist:0", "--row=nse:nse-fmnist-6m:0",
                      "--search_run=results/fashion_mnist_nse", "--rounds=2", "--runs=5", f"--out_dir={tmp_path}",
                      "--max_load=1000")  # whatever else runs beside the suite
    assert result.returncode == 0, result.stderr[-3000:]
    table = json.loads((tmp_path / "comparison.json").read_text())
    assert table["search_run"] == "results/fashion_mnist_nse"
    rows = {r["zoo_entry"]: r for r in table["rows"]}
    meta = json.loads(open(os.path.join(ROOT, "zoo", "nse-fmnist-6m", "metadata.json")).read())
    assert rows["nse-fmnist-6m"]["top1"] == meta["top1"] and rows["nse-fmnist-6m"]["macs"] == meta["macs"]
    assert set(rows["mobilenetv2-style-fmnist"]) == {"method", "zoo_entry", "seed", "top1", "macs",
                                                     "litert_float32_ms", "litert_int8_ms"}
    assert all(r["litert_float32_ms"] > 0 and r["litert_int8_ms"] > 0 for r in table["rows"])
    assert "| nse | 1 | 93.08% |" in (tmp_path / "comparison.md").read_text()


@pytest.mark.parametrize("row", ["magic:mobilenetv2-style-fmnist:0", "nse:no-such-entry:0", "nse:NSENet-27:0",
                                 "nse:mobilenetv2-style-fmnist:x"])
def test_comparison_rows_are_checked(tmp_path, row):
    result = run_tool("compare.py", f"--row={row}", f"--out_dir={tmp_path}")
    assert result.returncode == 2 and "compare.py: error: --row:" in result.stderr, result.stderr[-2000:]


def test_the_plane_from_zoo_entries(tmp_path):
    """tools/plane.py: rows from zoo metadata, times measured here, the verdict against the family, the picture."""
    result = run_tool("plane.py", "--row=family:a035:0.35:mobilenetv2-style-fmnist-a035-s0:0",
                      "--row=family:a10:1.0:mobilenetv2-style-fmnist-latency-s0:0",
                      "--row=nse:a10::nse-fmnist-latency-s0:0", "--rounds=2", "--runs=5", f"--out_dir={tmp_path}",
                      "--max_load=1000")  # whatever else runs beside the suite
    assert result.returncode == 0, result.stderr[-3000:]
    plane = json.loads((tmp_path / "plane.json").read_text())
    rows = {r["zoo_entry"]: r for r in plane["rows"]}
    meta = json.loads(open(os.path.join(ROOT, "zoo", "nse-fmnist-latency-s0", "metadata.json")).read())
    assert rows["nse-fmnist-latency-s0"]["top1"] == meta["top1"] and rows["nse-fmnist-latency-s0"]["budget"] == "a10"
    assert all(r["litert_float32_ms"] > 0 and r["litert_int8_ms"] > 0 for r in plane["rows"])
    [verdict] = plane["verdicts"]
    assert verdict["method"] == "nse" and verdict["lower_seed_top1"] == meta["top1"]
    assert (tmp_path / "plane.png").read_bytes()[:4] == b"\x89PNG" and "| nse |" in (tmp_path / "plane.md").read_text()


@pytest.mark.parametrize("row", ["hand:a10:1.0:mobilenetv2-style-fmnist:0", "nse:a10:0.5:nse-fmnist-6m:0",
                                 "family:a10::mobilenetv2-style-fmnist:0", "nse:a10::no-such-entry:0",
                                 "nse:a10::nse-fmnist-6m:0"])  # no family row to judge it against
def test_plane_rows_are_checked(tmp_path, row):
    result = run_tool("plane.py", f"--row={row}", f"--out_dir={tmp_path}")
    assert result.returncode == 2 and "plane.py: error: --row:" in result.stderr, result.stderr[-2000:]


def other_skeleton_json(path, **space_changes):
    """The tests' tiny space at other widths (or with other changes): a network of another skeleton."""
    import dataclasses

    from nse_tf.space.architecture import Architecture, NetworkSpec
    from tests.helpers import TINY_SPACE

    space = dataclasses.replace(TINY_SPACE, **space_changes)
    NetworkSpec(space, Architecture(tuple((0,) for _ in range(6))), "narrow").save(str(path))
    return str(path)


def test_proxy_refuses_a_network_for_other_images(tmp_path):
    from tests.helpers import TINY_SPACE

    run = fake_search_run(tmp_path / "search")
    arch = other_skeleton_json(tmp_path / "rgb.json", input_channels=TINY_SPACE.input_channels + 2,
                               mean=(0.0,) * 3, std=(1.0,) * 3)
    result = run_tool("proxy.py", f"--search_run={run}", f"--arch={arch}")
    lines = [line for line in result.stderr.splitlines() if line.startswith("proxy.py: error:")]
    assert result.returncode == 2 and len(lines) == 1 and "--arch" in lines[0] and "input_channels" in lines[0]


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(FMNIST), reason="dataset-fashion-mnist is not installed")
def test_proxy_trains_another_skeleton_on_the_search_split(tmp_path):
    from tests.helpers import TINY_SPACE

    run = fake_search_run(tmp_path / "search")
    arch = other_skeleton_json(tmp_path / "narrow.json", channels=tuple(max(4, c // 2) for c in TINY_SPACE.channels))
    result = run_tool("proxy.py", f"--search_run={run}", f"--arch={arch}", "--seeds=3", "--epochs=1", "--threads=1")
    assert result.returncode == 0, result.stderr[-3000:]
    proxy = json.loads((tmp_path / "search" / "proxy" / "proxy.json").read_text())
    assert proxy["heldout"] == {"examples": 2000, "seed": 0, "round": 1}
    (row,) = proxy["networks"]
    assert row["name"] == "narrow" and set(row["top1"]) == {"3"} and 0.0 <= row["mean"] <= 1.0
    saved = json.loads((tmp_path / "search" / "proxy" / "narrow_seed3" / "train_config.json").read_text())
    assert saved["dataset"] == "fashion_mnist:heldout=2000,seed=0" and saved["train"]["epochs"] == 1
