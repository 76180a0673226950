"""A search run's config.json as today's code reads it: older files are upgraded to today's keys, so runs
made before a setting existed still resume (and the stand-alone tools read them without TensorFlow)."""

from __future__ import annotations

from typing import Any


def upgrade_saved_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A config.json written before latency searches or --window existed, in today's keys (so such runs resume)."""
    saved = dict(saved)
    saved.setdefault("cost", "macs")
    saved.setdefault("latency_table", None)
    if isinstance(saved.get("evolution"), dict):
        evolution = {"window": None, **saved["evolution"]}  # before --window existed
        if "mac_drift" in evolution:  # before latency searches
            evolution["drift"] = evolution.pop("mac_drift")
        saved["evolution"] = evolution
    return saved
