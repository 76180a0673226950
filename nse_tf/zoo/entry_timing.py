"""Zoo entries' LiteRT files timed back to back in one process: what tables that compare entries report."""

from __future__ import annotations

from typing import Sequence

VARIANTS = ("float32", "int8")


def time_entries(names: Sequence[str], rounds: int, runs: int) -> dict[str, dict[str, float]]:
    """Each entry's float32 and int8 median invoke time (ms; LiteRT, 1 thread, XNNPACK), all files in the same
    ``rounds`` interleaved rounds of ``runs`` invokes (``export.timing.interleaved_latency_ms``)."""
    from nse_tf.export.timing import interleaved_latency_ms
    from nse_tf.zoo.registry import tflite_path

    paths = {(name, variant): tflite_path(name, variant) for name in names for variant in VARIANTS}
    times = interleaved_latency_ms(list(dict.fromkeys(paths.values())), rounds, runs)
    return {name: {variant: times[paths[name, variant]]["median_ms"] for variant in VARIANTS} for name in names}
