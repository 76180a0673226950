"""The settings schema (issue 33): every setting declared once, the flags, one-line errors and saved configs
derived from it, and the rules that keep it so (no flag spelled in nse_tf/search, no function of more than six
positional parameters, benchmarks on library modules). TensorFlow-free: nothing here builds a network."""

from __future__ import annotations

import ast
import glob
import io
import json
import os
import re
import tokenize

import pytest

from nse_tf.data.config import DataConfig
from nse_tf.search import schema
from nse_tf.search.config import SearchConfig
from nse_tf.search.evolution import EvolutionConfig
from nse_tf.search.from_flags import prepare_search
from nse_tf.search.round_settings import OptimConfig, PenaltyConfig
from nse_tf.search.saved_config import read_search_config, upgrade_saved_config
from nse_tf.search.standalone import SearchRunInfo
from nse_tf.space.macro import MacroSpace, get_space
from nse_tf.train.config import TrainConfig, TrainError
from nse_tf.train.pruning import PruneConfig
from nse_tf.train.qat import QatConfig
from nse_tf.utils.settings import REQUIRED, SettingError, help_text, settings_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "nse_tf")
FLAG_SPELLED = re.compile(r"(?<![\w-])--[a-z]")

# tools/search.py's flags and defaults before the schema existed: users keep every name and default.
SEARCH_FLAG_DEFAULTS = {
    "space": "small", "pool": None, "layout": None, "counts": None, "channels": None, "scale": None,
    "input_size": None, "num_classes": None, "stem_stride": None, "r_strides": None, "head_channels": None,
    "run_dir": None, "dataset": "fashion_mnist", "data_dir": None, "image_size": None, "heldout_examples": 5000,
    "batch_size": 128, "augment": True, "weight_lr": 0.4, "warmup_lr": 0.1, "warmup_epochs": 2.0,
    "weight_decay": 4e-05, "momentum": 0.9, "gate_lr": 0.005, "target_macs": 300.0, "target_ms": None,
    "penalty_a": 1e-05, "penalty_b": 2.0, "ops_per_cell": 5, "max_rounds": None, "num_archs": 2000, "num_extra": 100,
    "mac_drift": 10.0, "drift_ms": None, "extra_margin": 10.0, "extra_margin_ms": None, "bn_batches": 50,
    "bn_mode": "ema", "bn_batch_size": 512, "bn_start": "previous", "eval_batch_size": None,
    "max_sample_draws": 200000, "inherit_weights": False, "preserve_prev": True, "window": None,
    "uniform_fraction": 0.0, "exclude_ops": [], "cost": "macs", "latency_table": None, "latency_format": "float32",
    "epochs_per_round": 100.0, "steps_per_round": None, "gate_every": 2, "gate_warmup": 0.0, "prune_threshold": -2.0,
    "checkpoint_every": 200, "summary_every": 10, "seed": 0, "strategy": "mirrored", "init_from": None,
    "seed_archs": [], "verify_top": 0, "verify_seeds": 2, "verify_epochs": 3, "verify_archs": [],
    "stop_after_steps": None, "verify_shard": "0/1", "logical_cpus": 0, "threads": 0}
# The tiny search of tests/test_search_cli.py, as flag values.
TINY = {"space": "small", "counts": ["0"] * 6, "channels": ["8"] * 7, "head_channels": 16,
        "pool": "mb_k3_t1,mb_k5_t1,mb_k3_t3", "ops_per_cell": 2, "batch_size": 32, "heldout_examples": 256,
        "steps_per_round": 8, "warmup_epochs": 0.0, "num_archs": 3, "num_extra": 1, "bn_batches": 2,
        "checkpoint_every": 2, "target_macs": 0.35, "mac_drift": 0.15, "extra_margin": 0.05, "penalty_a": 1.0}


def flag_defaults() -> dict:
    return {flag.name: flag.default for item in schema.SETTINGS if not item.spec.same_as for flag in item.flags}


def values(**given):
    """Flag values as absl would hold them: the defaults, the tiny search, then ``given``."""
    return {**flag_defaults(), "run_dir": "/nonexistent/run", **TINY, **given}


def refusal(given: dict, unset: tuple[str, ...] = ()) -> SettingError:
    """The SettingError of the tiny search with ``given`` (``unset``: its flags left at their defaults)."""
    flags = {**values(**given), **{name: flag_defaults()[name] for name in unset}}
    with pytest.raises(SettingError) as info:
        prepare_search(flags, (set(TINY) - set(unset)) | set(given))
    return info.value


def sources(folder: str):
    for path in sorted(glob.glob(os.path.join(folder, "**", "*.py"), recursive=True)):
        with open(path, encoding="utf-8") as f:
            yield os.path.relpath(path, ROOT), f.read()


# ------------------------------------------------------------------ the rules the package keeps
def test_nse_tf_search_spells_no_flag():
    """Library messages name settings, or ask the schema for the flag: no ``--flag`` in nse_tf/search, in a
    string (docstrings included) or a comment."""
    found = []
    for path, text in sources(os.path.join(PACKAGE, "search")):
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and FLAG_SPELLED.search(node.value):
                found.append(f"{path}:{node.lineno}: {node.value.strip()[:60]!r}")
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT and FLAG_SPELLED.search(token.string):
                found.append(f"{path}:{token.start[0]}: {token.string[:60]!r}")
    assert found == []


POSITIONAL_EXEMPT: set[str] = set()


def long_signatures(text: str) -> list[str]:
    """Functions of ``text`` with more than six positional parameters (a method's ``self`` or ``cls`` not
    counted)."""
    tree = ast.parse(text)
    methods = {id(f) for c in ast.walk(tree) if isinstance(c, ast.ClassDef) for f in c.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            names = [a.arg for a in node.args.posonlyargs + node.args.args]
            if id(node) in methods and names[:1] in (["self"], ["cls"]):
                names = names[1:]
            if len(names) > 6:
                found.append(f"{node.lineno} {getattr(node, 'name', 'lambda')} ({len(names)})")
    return found


def test_no_function_takes_more_than_six_positional_parameters():
    """Beyond six, a call reads as a list of values: keyword-only parameters or a small dataclass instead."""
    found = [f"{path}:{where}" for path, text in sources(PACKAGE) if path not in POSITIONAL_EXEMPT
             for where in long_signatures(text)]
    assert found == []


def test_the_positional_rule_counts_what_a_caller_passes():
    assert long_signatures("def f(a, b, c, d, e, f, g): pass") == ["1 f (7)"]
    assert long_signatures("def f(a, b, c, d, e, f, *, g): pass") == []
    assert long_signatures("class C:\n    def m(self, a, b, c, d, e, f): pass") == []
    assert long_signatures("g = lambda a, b, c, d, e, f, h: a") == ["1 lambda (7)"]


def test_benchmarks_import_library_modules_not_command_lines():
    found = []
    for path, text in sources(os.path.join(ROOT, "benchmarks")):
        for node in ast.walk(ast.parse(text)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) and node.module \
                else []
            found += [f"{path}: {n}" for n in names if n.startswith("nse_tf.cli")]
    assert found == []


@pytest.mark.parametrize("tool", ["search.py", "train.py", "fine_tuning.py"])
def test_command_lines_route_errors_by_field_not_by_text(tool):
    with open(os.path.join(PACKAGE, "cli", tool), encoding="utf-8") as f:
        text = f.read()
    assert "str(err).startswith(" not in text and "in str(err)" not in text and "re.search" not in text


# ------------------------------------------------------------------ the schema
def test_search_flags_keep_their_names_and_defaults():
    assert flag_defaults() == SEARCH_FLAG_DEFAULTS


def test_every_setting_has_one_path_and_every_flag_one_setting():
    paths = [item.path for item in schema.SETTINGS]
    assert len(paths) == len(set(paths))
    flags = [flag.name for item in schema.SETTINGS if not item.spec.same_as for flag in item.flags]
    assert len(flags) == len(set(flags))
    assert schema.setting_at("data.seed") is schema.BY_PATH["seed"]  # one flag, two fields


def leaves(data: dict, prefix: str = "") -> set[str]:
    return {path for key, value in data.items()
            for path in (leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}"})}


def test_saved_settings_are_what_config_json_holds():
    saved = SearchConfig("r", get_space("small"), DataConfig()).to_json()
    declared = {item.path for item in settings_of(SearchConfig) if item.spec.saved}
    assert {path for path in leaves(saved) if not path.startswith("space.")} == declared
    assert "stop_after_steps" not in saved and "verify_shard" not in saved  # how a process runs


def test_a_flag_defaults_to_its_fields_default():
    """Where one flag sets a field, it defaults to the field's default; per cost mode, the MACs flag does and the
    latency one is None (a tenth of the target, or required)."""
    for item in settings_of(SearchConfig):
        default = None if item.default is REQUIRED else item.default
        default = list(default) if isinstance(default, tuple) else default
        for flag in item.flags:
            assert flag.default == (None if flag.cost == "latency" else default), (item.path, flag.name)


@pytest.mark.parametrize("path, cost, flag", [
    ("penalty.target", "macs", "target_macs"), ("penalty.target", "latency", "target_ms"),
    ("evolution.drift", "macs", "mac_drift"), ("evolution.drift", "latency", "drift_ms"),
    ("evolution.extra_margin", "macs", "extra_margin"), ("evolution.extra_margin", "latency", "extra_margin_ms"),
    ("penalty.a", "macs", "penalty_a"), ("penalty.b", "latency", "penalty_b"), ("data.seed", "macs", "seed"),
    ("evolution.excluded_ops", "macs", "exclude_ops"), ("verify.top", "macs", "verify_top"),
    ("verify.archs", "latency", "verify_archs"), ("space.mean", "macs", "space"), ("space.activation", "macs", "space"),
    ("space.pool", "macs", "pool"), ("space.counts", "macs", "counts"), ("optim.weight_lr", "macs", "weight_lr"),
    ("evolution.window", "latency", "window"), ("gate_warmup", "macs", "gate_warmup"),
])
def test_flag_for_a_config_path(path, cost, flag):
    assert schema.flag_for(path, cost) == flag
    assert schema.flag_text(path, cost) == f"--{flag}"


def test_when_a_running_search_may_change_a_setting():
    assert schema.END_OF_ROUND_SETTINGS == {f"evolution.{f}" for f in (
        "num_archs", "num_extra", "drift", "extra_margin", "window", "max_sample_draws", "bn_batches", "bn_mode",
        "bn_batch_size", "bn_start", "eval_batch_size", "uniform_fraction")}
    assert schema.ANY_TIME_SETTINGS == {"verify.top", "verify.seeds", "verify.epochs", "verify.archs"}


def test_help_texts_name_only_flags_that_exist():
    names = set(SEARCH_FLAG_DEFAULTS)
    for item in schema.SETTINGS:
        for flag in item.flags:
            for field in re.findall(r"{(\w+)}", flag.help):
                assert field in names, (flag.name, field)
            assert "{" not in help_text(flag.help)
    assert help_text("with {cost}=latency") == "with --cost=latency"


# ------------------------------------------------------------------ errors carry the field
def test_a_dataclass_names_the_field_it_refuses():
    with pytest.raises(SettingError) as info:
        EvolutionConfig(ops_per_cell=1)
    assert info.value.field == "ops_per_cell" and str(info.value) == "ops_per_cell (K) must be >= 2, got 1"
    qualified = info.value.within("evolution")
    assert qualified.field == "evolution.ops_per_cell" and schema.flag_for(qualified.field) == "ops_per_cell"
    space = get_space("small")
    refused = {"weight_lr": lambda: OptimConfig(weight_lr=-1), "b": lambda: PenaltyConfig(b=0.5),
               "dataset": lambda: DataConfig(dataset="mnist"), "channels": lambda: MacroSpace(channels=(0,) * 7),
               "gate_warmup": lambda: SearchConfig("r", space, DataConfig(), gate_warmup=2.0),
               "verify_shard": lambda: SearchConfig("r", space, DataConfig(), verify_shard="2/2")}
    for field, call in refused.items():
        with pytest.raises(SettingError) as info:
            call()
        assert info.value.field == field


def test_recipe_errors_are_train_errors_naming_their_field():
    refused = {"epochs": lambda: TrainConfig(epochs=0), "warmup_epochs": lambda: TrainConfig(warmup_epochs=99),
               "optimizer": lambda: TrainConfig(optimizer="adam"), "lr": lambda: QatConfig(lr=0),
               "sparsity": lambda: PruneConfig(sparsity=1.0)}
    for field, call in refused.items():
        with pytest.raises(TrainError) as info:
            call()
        assert isinstance(info.value, SettingError) and info.value.field == field, info.value
    assert str(pytest.raises(TrainError, TrainConfig, optimizer="adam").value) == \
        "optimizer must be sgd or adamw, got 'adam'"


def test_the_recipe_flags_parse_their_values():
    ema = next(item for item in settings_of(TrainConfig) if item.name == "ema_momentum")
    assert ema.spec.parse(0.0) is None and ema.spec.parse(0.99) == 0.99  # 0 turns the EMA off


@pytest.mark.parametrize("given, unset, field, cost, flag", [
    ({"weight_lr": -0.1}, (), "optim.weight_lr", None, "weight_lr"),
    ({"penalty_b": 0.5}, (), "penalty.b", None, "penalty_b"),
    ({"counts": ["1", "x"]}, (), "space.counts", None, "counts"),
    ({"pool": "mac99"}, (), "space.pool", None, "pool"),
    ({"target_macs": 5000.0}, (), "penalty.target", None, "target_macs"),
    ({"target_ms": 2.0}, (), "penalty.target", "latency", "target_ms"),  # a latency flag in a MACs search
    ({"window": ["0.3", "0.4"]}, (), "evolution.drift", None, "mac_drift"),  # the drift given too: one of them
    ({"window": ["a", "b"]}, ("mac_drift",), "evolution.window", None, "window"),
    ({"window": ["0.3"]}, ("mac_drift",), "evolution.window", None, "window"),
    ({"window": ["500", "600"]}, ("mac_drift",), "evolution.window", None, "window"),  # no network costs that
    ({"exclude_ops": ["1-99:mb_k3_t1"]}, (), "evolution.excluded_ops", None, "exclude_ops"),
    ({"init_from": "/somewhere", "exclude_ops": ["0:mb_k3_t1"]}, (), "evolution.excluded_ops", None, "exclude_ops"),
    ({"seed_archs": ["/nonexistent/seed.json"]}, (), "seed_archs", None, "seed_archs"),
    ({"verify_top": -1}, (), "verify.top", None, "verify_top"),
    ({"verify_shard": "2/2"}, (), "verify_shard", None, "verify_shard"),
    ({"gate_warmup": 1.5}, (), "gate_warmup", None, "gate_warmup"),
    ({"latency_format": "int8"}, (), "latency_format", None, "latency_format"),
    ({"dataset": "mnist"}, (), "data.dataset", None, "dataset"),
    ({"run_dir": None}, (), "run_dir", None, "run_dir"),
])
def test_a_refused_flag_value_names_its_field_and_the_schema_its_flag(given, unset, field, cost, flag):
    err = refusal(given, unset)
    assert (err.field, err.cost) == (field, cost) and "\n" not in str(err)
    assert schema.flag_for(err.field, err.cost or "macs") == flag


def test_a_latency_search_names_its_own_flags():
    latency = {"cost": "latency", "target_macs": 300.0, "mac_drift": 10.0, "extra_margin": 10.0}
    explicit = (set(TINY) - {"target_macs", "mac_drift", "extra_margin"}) | {"cost"}
    with pytest.raises(SettingError) as info:
        prepare_search(values(**latency), explicit)
    assert info.value.field == "penalty.target" and str(info.value) == "is required with --cost=latency"
    assert schema.flag_for(info.value.field, "latency") == "target_ms"
    with pytest.raises(SettingError) as info:
        prepare_search(values(**latency, target_ms=0.5, drift_ms=0.0), explicit | {"target_ms", "drift_ms"})
    assert info.value.field == "evolution.drift" and schema.flag_for(info.value.field, "latency") == "drift_ms"
    with pytest.raises(SettingError) as info:  # no table yet: workers would each measure their own
        prepare_search(values(**latency, target_ms=0.5, strategy="multi_worker",
                              latency_table="/nonexistent/table.json"), explicit | {"target_ms", "strategy"})
    assert info.value.field == "latency_table" and "--strategy=default" in str(info.value)


def test_good_flag_values_build_the_config_and_its_cost_model_once():
    prepared = prepare_search(values(seed=3, exclude_ops=["4-5:mb_k5_t1"]), set(TINY) | {"seed", "exclude_ops"})
    config = prepared.config
    assert config.seed == config.data.seed == 3
    assert config.evolution.excluded_ops[4:] == (("mb_k5_t1",), ("mb_k5_t1",))
    assert config.penalty.target == 0.35 and config.evolution.drift == 0.15
    assert prepared.cost_model.metric == "macs" and prepared.cost_model.unit == "M MACs"


# ------------------------------------------------------------------ config.json
def test_config_json_round_trips():
    prepared = prepare_search(values(window=["0.25", "0.45"], verify_top=2, mac_drift=10.0),
                              (set(TINY) - {"mac_drift"}) | {"window", "verify_top"})
    saved = json.loads(json.dumps(prepared.config.to_json()))
    again = read_search_config(saved)
    assert again.to_json() == saved and again == prepared.config


OLD_CONFIG = {  # written before latency searches, --window, the evaluation options and issue 30's levers
    "run_dir": "runs/old", "seed": 0, "strategy": "mirrored", "init_from": None, "epochs_per_round": 100.0,
    "steps_per_round": 350, "gate_every": 2, "prune_threshold": -2.0, "checkpoint_every": 50, "summary_every": 10,
    "space": get_space("small").to_dict(),
    "data": {"dataset": "fashion_mnist", "data_dir": None, "image_size": None, "heldout_examples": 1500,
             "batch_size": 64, "augment": True, "seed": 0, "shuffle_buffer": 10000},
    "optim": {"weight_lr": 0.1, "warmup_lr": 0.02, "warmup_epochs": 0.03, "weight_decay": 4e-05, "momentum": 0.9,
              "gate_lr": 0.005, "gate_beta1": 0.0, "gate_beta2": 0.999},
    "penalty": {"target": 6.0, "a": 0.01, "b": 2.0},
    "evolution": {"ops_per_cell": 5, "max_rounds": None, "num_archs": 16, "num_extra": 4, "mac_drift": 1.5,
                  "extra_margin": 1.0, "bn_batches": 10, "max_sample_draws": 200000, "inherit_weights": False,
                  "preserve_prev": True}}


def test_an_old_config_json_is_upgraded_to_todays_keys():
    upgraded = upgrade_saved_config(OLD_CONFIG)
    assert upgraded["cost"] == "macs" and upgraded["latency_table"] is None
    assert upgraded["latency_format"] == "float32" and upgraded["gate_warmup"] == 0.0 and upgraded["seed_archs"] == []
    assert upgraded["verify"] == {"top": 0, "seeds": 2, "epochs": 3, "archs": []}
    evolution = upgraded["evolution"]
    assert "mac_drift" not in evolution and evolution["drift"] == 1.5
    assert {k: evolution[k] for k in ("window", "bn_mode", "bn_batch_size", "eval_batch_size", "bn_start",
                                      "uniform_fraction", "excluded_ops")} == {
        "window": None, "bn_mode": "ema", "bn_batch_size": 512, "eval_batch_size": None, "bn_start": "previous",
        "uniform_fraction": 0.0, "excluded_ops": []}
    assert "mac_drift" in OLD_CONFIG["evolution"]  # the file's own dict is left as it was
    config = read_search_config(OLD_CONFIG)
    assert config.evolution.window_bounds(config.penalty.target) == (4.5, 7.5)
    assert config.to_json() == upgraded


def test_a_config_json_that_holds_no_search_is_one_state_error(tmp_path):
    from nse_tf.search.evolution import StateError

    (tmp_path / "config.json").write_text(json.dumps({"run_dir": "x"}))
    with pytest.raises(StateError, match="config.json: not a search run's settings"):
        SearchRunInfo.load(str(tmp_path))


COMMITTED = sorted(glob.glob(os.path.join(ROOT, "results", "**", "config.json"), recursive=True))


@pytest.mark.parametrize("path", COMMITTED, ids=[os.path.relpath(p, ROOT) for p in COMMITTED])
def test_every_committed_run_directory_reads_back(path):
    """Old run directories load through today's reader, TensorFlow-free, and read back as they were saved."""
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    upgraded = upgrade_saved_config(saved)
    upgraded.pop("changes", None)
    config = read_search_config(saved)
    assert config.to_json() == upgraded
    info = SearchRunInfo.load(os.path.dirname(path))
    assert info.space == config.space and info.cost == config.cost
    assert info.window == config.evolution.window_bounds(config.penalty.target)


def test_there_are_committed_run_directories():
    assert len(COMMITTED) >= 5


# ------------------------------------------------------------------ the window's one check
def test_the_window_is_checked_in_one_place_before_the_search_and_each_round():
    from types import SimpleNamespace

    from nse_tf.cost.model import CostModel, macs_model
    from nse_tf.search.evolution import SamplingError
    from nse_tf.search.pricing import check_window

    space = get_space("small", counts=(0,) * 6, channels=(8,) * 7, head_channels=16, pool="mb_k3_t1,mb_k5_t1,mb_k3_t3")
    model, cells = macs_model(space), space.cells()
    cheapest, dearest = model.bounds(space)
    middle = (cheapest + dearest) / 2
    check_window(model, cells, middle, EvolutionConfig(drift=0.01))  # before the search, reachable: nothing raised
    with pytest.raises(SettingError) as info:
        check_window(model, cells, dearest + 1, EvolutionConfig())
    assert info.value.field == "penalty.target" and "impossible in this space" in str(info.value)
    with pytest.raises(SettingError) as info:
        check_window(model, cells, middle, EvolutionConfig(window=(dearest + 1, dearest + 2)))
    assert info.value.field == "evolution.window" and "holds no network" in str(info.value)
    # before a round (an N cell whose sub-space is empty, an R cell of two operations): 1 + 0.5 is in (1.4, 1.6)
    two = CostModel("latency", [[1.0, 2.0, 3.0], [0.5, 1.5, 2.5]], 1.0)
    cells = [SimpleNamespace(may_be_empty=True), SimpleNamespace(may_be_empty=False)]
    check_window(two, cells, 1.5, EvolutionConfig(drift=0.1), [[], [0, 2]], 0)
    with pytest.raises(SamplingError, match=r"round 2: no architecture of its sub-spaces .* widen --drift_ms "
                                            r"\(or --window; .*\), or move --target_ms in a new run"):
        check_window(two, cells, 10.5, EvolutionConfig(drift=0.5), [[], [0, 2]], 1)
