"""A search run's config.json as today's code reads it. Older files are upgraded to today's keys from the schema
(each setting added since says what a file without it meant; renamed ones their old names), so runs made before
a setting existed still resume, and the stand-alone tools read them into a ``SearchConfig`` without TensorFlow."""

from __future__ import annotations

import copy
from typing import Any

from nse_tf.data.config import DataConfig
from nse_tf.search.config import SearchConfig
from nse_tf.search.evolution import EvolutionConfig
from nse_tf.search.round_settings import OptimConfig, PenaltyConfig
from nse_tf.search.schema import ANY_TIME_SETTINGS, END_OF_ROUND_SETTINGS, MISSING, OLD_NAMES, SETTINGS, flag_for
from nse_tf.search.verification import VerifyConfig
from nse_tf.space.macro import MacroSpace

__all__ = ["ANY_TIME_SETTINGS", "END_OF_ROUND_SETTINGS", "flag_for", "read_search_config", "setting_diffs",
           "upgrade_saved_config"]
_SECTIONS = {"data": DataConfig, "optim": OptimConfig, "penalty": PenaltyConfig, "evolution": EvolutionConfig,
             "verify": VerifyConfig}


def upgrade_saved_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A config.json written before some of today's settings existed, in today's keys (so such runs resume):
    renamed keys under their names of today, missing ones with what their absence meant. A missing section is
    added only when every setting in it has such a meaning (the verification's, added whole)."""
    saved = copy.deepcopy(saved)
    for old, new in OLD_NAMES.items():
        holder, key = _parent(saved, old)
        if holder is not None and key in holder:
            holder[new.rpartition(".")[2]] = holder.pop(key)
    for path, value in MISSING.items():
        section, _, key = path.rpartition(".")
        if section:
            if section not in saved and all(p in MISSING for p in _paths_under(section)):
                saved[section] = {}
            if not isinstance(saved.get(section), dict):
                continue
            saved[section].setdefault(key, copy.deepcopy(value))
        else:
            saved.setdefault(key, copy.deepcopy(value))
    return saved


def read_search_config(saved: dict[str, Any]) -> SearchConfig:
    """The SearchConfig a config.json holds (upgraded first; its ``changes`` log left aside). A file that does not
    hold one raises KeyError, TypeError or ValueError."""
    saved = upgrade_saved_config(saved)
    saved.pop("changes", None)
    fields = {key: value for key, value in saved.items() if key not in _SECTIONS and key != "space"}
    sections = {name: cls(**saved[name]) for name, cls in _SECTIONS.items()}
    return SearchConfig(space=MacroSpace.from_dict(saved["space"]), **sections, **fields)


def _parent(data: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, str]:
    section, _, key = path.rpartition(".")
    holder = data.get(section) if section else data
    return (holder if isinstance(holder, dict) else None), key


def _paths_under(section: str) -> list[str]:
    return [item.path for item in SETTINGS if item.path.startswith(f"{section}.") and item.spec.saved]


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
