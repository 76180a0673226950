"""A search run's config.json as today's code reads it: older files are upgraded to today's keys, so runs
made before a setting existed still resume (and the stand-alone tools read them without TensorFlow)."""

from __future__ import annotations

from typing import Any


def upgrade_saved_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A config.json written before latency searches existed, in today's keys (so such runs still resume)."""
    saved = dict(saved)
    saved.setdefault("cost", "macs")
    saved.setdefault("latency_table", None)
    if isinstance(saved.get("evolution"), dict):
        saved["evolution"] = {"window": None, **saved["evolution"]}  # before --window existed
    if isinstance(saved.get("evolution"), dict) and "mac_drift" in saved["evolution"]:
        saved["evolution"] = dict(saved["evolution"])
        saved["evolution"]["drift"] = saved["evolution"].pop("mac_drift")
    return saved
