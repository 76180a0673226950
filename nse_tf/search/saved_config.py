"""A search run's config.json as today's code reads it: older files are upgraded to today's keys, so runs
made before a setting existed still resume (and the stand-alone tools read them without TensorFlow)."""

from __future__ import annotations

from typing import Any


def upgrade_saved_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A config.json written before latency searches or --window existed, in today's keys (so such runs resume)."""
    saved = dict(saved)
    saved.setdefault("cost", "macs")
    saved.setdefault("latency_table", None)
    saved.setdefault("latency_format", "float32")  # before int8 tables
    # before the levers of issue 30 (gate warm-up, seed architectures, verification)
    saved.setdefault("gate_warmup", 0.0)
    saved.setdefault("seed_archs", [])
    saved.setdefault("verify", {"top": 0, "seeds": 2, "epochs": 3, "archs": []})
    if isinstance(saved.get("evolution"), dict):
        # before --window, then before the evaluation options existed, then before uniform candidates and
        # per-cell exclusions
        evolution = {"window": None, "bn_mode": "ema", "bn_batch_size": 512, "eval_batch_size": None,
                     "bn_start": "previous", "uniform_fraction": 0.0, "excluded_ops": [], **saved["evolution"]}
        if "mac_drift" in evolution:  # before latency searches
            evolution["drift"] = evolution.pop("mac_drift")
        saved["evolution"] = evolution
    return saved


# What only the end of a round reads (sampling, the window, the extras): a round whose evaluation failed on
# them (no architecture in too narrow a window) resumes with new values instead of being stranded.
END_OF_ROUND_SETTINGS = frozenset({"evolution.num_archs", "evolution.num_extra", "evolution.drift",
                                   "evolution.extra_margin", "evolution.window", "evolution.max_sample_draws",
                                   "evolution.bn_batches", "evolution.bn_mode", "evolution.bn_batch_size",
                                   "evolution.bn_start", "evolution.eval_batch_size",
                                   "evolution.uniform_fraction"})
# What only the verification after the last round reads: it may change at any time, also once a search is done
# (so a finished search can be verified, or with more candidates or seeds, by rerunning its command; trainings of
# another --verify_epochs are refused by their run directories).
ANY_TIME_SETTINGS = frozenset({"verify.top", "verify.seeds", "verify.epochs", "verify.archs"})
# config.json paths whose flag has another name (every other leaf is its own flag's name).
_FLAGS = {"penalty.a": "penalty_a", "penalty.b": "penalty_b", "data.seed": "seed",
          "evolution.excluded_ops": "exclude_ops", "verify.top": "verify_top", "verify.seeds": "verify_seeds",
          "verify.epochs": "verify_epochs", "verify.archs": "verify_archs"}
_FLAGS_BY_COST = {"penalty.target": {"macs": "target_macs", "latency": "target_ms"},
                  "evolution.drift": {"macs": "mac_drift", "latency": "drift_ms"},
                  "evolution.extra_margin": {"macs": "extra_margin", "latency": "extra_margin_ms"}}
# space fields no flag sets: they come from the --space preset
_SPACE_PRESET_FIELDS = frozenset({"space.mean", "space.std", "space.input_channels", "space.se", "space.activation"})


def setting_diffs(saved: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Every leaf setting (``section.field``) whose value differs: (path, saved value, value now)."""
    out = []
    for key in sorted(set(saved) | set(now)):
        path = f"{prefix}{key}"
        old, new = saved.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict) and path != "space.pool":
            out.extend(setting_diffs(old, new, f"{path}."))
        elif old != new:
            out.append((path, old, new))
    return out


def flag_for(path: str, cost: str) -> str:
    """The tools/search.py flag that sets a config.json path."""
    if path in _FLAGS_BY_COST:
        return _FLAGS_BY_COST[path].get(cost, path.split(".")[-1])
    if path in _SPACE_PRESET_FIELDS:
        return "space"
    return _FLAGS.get(path, path.split(".")[-1])
