"""A search's settings from its flags' values, checked before any data or TensorFlow: the one builder behind
tools/search.py, ``nse_tf.run_search`` and the benchmarks that rebuild a run from its flagfile.

Values come by flag name (``search.schema`` defines the flags), with the names the user gave; every refusal is a
``SettingError`` naming the config.json path at fault, which the command line turns into its flag.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Collection, Mapping

from nse_tf.cost.model import CostModel
from nse_tf.data.config import DataConfig
from nse_tf.data.names import ARRAY_KINDS
from nse_tf.search import schema
from nse_tf.search.config import SearchConfig
from nse_tf.search.evolution import EvolutionConfig
from nse_tf.search.pricing import build_cost_model, check_window
from nse_tf.search.round_settings import OptimConfig, PenaltyConfig
from nse_tf.search.seed_archs import SeedArchError, resolve_seed_archs
from nse_tf.search.verification import VerifyConfig
from nse_tf.space.macro import MacroSpace, get_space
from nse_tf.space.ops import get_pool
from nse_tf.utils.settings import SettingError, flag_values, settings_of


@dataclasses.dataclass(frozen=True)
class PreparedSearch:
    """A search's checked settings and its cost model (built once, here, and handed to ``SearchRun``)."""

    config: SearchConfig
    cost_model: CostModel


def prepare_search(values: Mapping[str, Any], given: Collection[str] = ()) -> PreparedSearch:
    """The SearchConfig of flag ``values`` (absl's parsed values by flag name; ``given``: the flags the user set,
    on the command line or in a flagfile) and its cost model, after every check short of loading data: the flags
    of the other cost mode are refused, the target and the window must be reachable in the space, a latency table
    is read (or measured, before a run has started)."""
    cost = values.get("cost", "macs")
    if not values.get("run_dir"):
        raise SettingError("run_dir", "is required")
    space = _space(values)
    data = _section(DataConfig, "data", values, cost, seed=values.get("seed", 0))
    optim = _section(OptimConfig, "optim", values, cost)
    target = _cost_mode(values, given, cost)
    penalty = _section(PenaltyConfig, "penalty", values, cost, target=target)
    evolution = _evolution(values, given, cost, target, space)
    if values.get("init_from") and (values.get("exclude_ops") or values.get("seed_archs")):
        raise SettingError("evolution.excluded_ops" if values.get("exclude_ops") else "seed_archs",
                           f"does not apply to a continued search ({schema.flag_text('init_from')}): it shapes a "
                           "search's first round")
    seed_archs = tuple(values.get("seed_archs") or ())
    try:
        resolve_seed_archs(seed_archs, space, evolution.excluded_ops)
    except SeedArchError as err:
        raise SettingError("seed_archs", str(err)) from None
    verify = _section(VerifyConfig, "verify", values, cost)
    try:
        resolve_seed_archs(verify.archs, space)
    except SeedArchError as err:
        raise SettingError("verify.archs", str(err)) from None
    if verify.enabled and data.dataset.split(":")[0] not in ARRAY_KINDS:
        raise SettingError("verify.top", f"the verification trains on {'/'.join(ARRAY_KINDS)} datasets; "
                                         f"{schema.flag_text('data.dataset')}={data.dataset} is not one")
    top_level = {item.name: item for item in settings_of(SearchConfig) if "." not in item.path}
    fields = flag_values([item for name, item in top_level.items() if name not in ("run_dir", "seed_archs")],
                         values, cost)
    config = SearchConfig(run_dir=values["run_dir"], space=space, data=data, optim=optim, penalty=penalty,
                          evolution=evolution, seed_archs=seed_archs, verify=verify, **fields)
    model = build_cost_model(config, multi_worker=config.strategy == "multi_worker")
    check_window(model, space.cells(), penalty.target, evolution)
    return PreparedSearch(config, model)


def _section(cls: type, name: str, values: Mapping[str, Any], cost: str, **fixed: Any) -> Any:
    """``cls`` (a settings group) from its fields' flags, ``fixed`` fields as given; a refusal names its path."""
    try:
        return cls(**{**flag_values(settings_of(cls), values, cost), **fixed})
    except SettingError as err:
        raise err.within(name) from None


def _space(values: Mapping[str, Any]) -> MacroSpace:
    """The ``space`` preset with the fields its flags override."""
    overrides: dict[str, Any] = {}
    for item in schema.SPACE_SETTINGS[1:]:
        value = values.get(item.name)
        if value is None:
            continue
        if item.spec.kind == "list":  # counts, channels, r_strides: whole numbers
            try:
                value = tuple(int(v) for v in value)
            except ValueError:
                raise SettingError(item.path, f"expected comma-separated integers, got {','.join(value)}") from None
        overrides[item.name] = value
    if "pool" in overrides:
        try:
            get_pool(overrides["pool"])
        except ValueError as err:
            raise SettingError("space.pool", str(err)) from None
    try:
        return get_space(values.get("space", "small"), **overrides)
    except SettingError as err:
        raise err.within("space") from None
    except ValueError as err:  # an unknown preset
        raise SettingError("space", str(err)) from None


def _cost_mode(values: Mapping[str, Any], given: Collection[str], cost: str) -> float:
    """The penalty's target under ``cost``; a flag of the other cost mode is refused, naming the one to use."""
    other = "latency" if cost == "macs" else "macs"
    for item in schema.SETTINGS:
        theirs = item.flag(other)
        if theirs is not None and theirs.cost == other and theirs.name in given:
            raise SettingError(item.path, f"does not apply to {schema.flag_text('cost')}={cost}; use "
                                          f"{schema.flag_text(item.path, cost)}", cost=other)
    if cost == "macs" and "latency_format" in given:
        raise SettingError("latency_format", f"applies to {schema.flag_text('cost')}=latency only (the TFLite form "
                                             "its table times)")
    target = values.get(schema.flag_for("penalty.target", cost))
    if target is None:
        raise SettingError("penalty.target", f"is required with {schema.flag_text('cost')}={cost}")
    return target


def _evolution(values: Mapping[str, Any], given: Collection[str], cost: str, target: float,
               space: MacroSpace) -> EvolutionConfig:
    """The evolution's settings: in a latency search the window's drift and the extras' margin default to a
    tenth of the target; an explicit window replaces the drift, so both together are refused."""
    drift_flag = schema.flag_for("evolution.drift", cost)
    if values.get("window") is not None and drift_flag in given:
        raise SettingError("evolution.drift", f"sets the window's half-width; {schema.flag_text('evolution.window')} "
                                              "gives its bounds: use one of them")
    fixed: dict[str, Any] = {}
    for path in ("evolution.drift", "evolution.extra_margin"):
        if values.get(schema.flag_for(path, cost)) is None:
            fixed[path.rpartition(".")[2]] = 0.1 * target
    fixed["excluded_ops"] = parse_exclusions(values.get("exclude_ops") or [], len(space.cells()),
                                             space.get_pool().names)
    return _section(EvolutionConfig, "evolution", values, cost, **fixed)


def parse_exclusions(groups: list[str], n_cells: int, pool_names: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    """``CELLS:OP,OP,...`` groups as a tuple of excluded op names per cell (empty: nothing excluded anywhere)."""
    if not groups:
        return ()

    def refuse(message: str) -> SettingError:
        return SettingError("evolution.excluded_ops", message)

    excluded: list[set[str]] = [set() for _ in range(n_cells)]
    for group in groups:
        cells_text, _, ops_text = group.partition(":")
        ops = [op.strip() for op in ops_text.split(",") if op.strip()]
        if not ops:
            raise refuse(f"expected CELLS:OP,OP,..., got {group!r}")
        unknown = [op for op in ops if op not in pool_names]
        if unknown:
            raise refuse(f"{unknown[0]} is not in the pool")
        try:
            if cells_text == "all":
                cells = range(n_cells)
            elif "-" in cells_text:
                first, last = (int(v) for v in cells_text.split("-"))
                cells = range(first, last + 1)
            else:
                cells = range(int(cells_text), int(cells_text) + 1)
        except ValueError:
            raise refuse(f"cells must be an index, a range such as 1-8, or all; got {cells_text!r}") from None
        if not cells or cells[0] < 0 or cells[-1] >= n_cells:
            raise refuse(f"cells {cells_text} are outside the space's cells 0-{n_cells - 1}")
        for c in cells:
            excluded[c].update(ops)
    for c, ops in enumerate(excluded):
        if len(ops) >= len(pool_names):
            raise refuse(f"cell {c}: every operation of the pool is excluded")
    return tuple(tuple(op for op in pool_names if op in ops) for ops in excluded)
