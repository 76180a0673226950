"""LiteRT invoke times on this CPU, and the guard that refuses to time a busy machine."""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Any, Sequence

import numpy as np

from nse_tf.export.runtimes import litert_interpreter, quantize_input


class _InvokeTimer:
    """One file's interpreter, loaded and warmed once, with a single random image as input (batch 1)."""

    def __init__(self, path: str, num_threads: int, xnnpack: bool, warmup: int):
        self.interpreter = litert_interpreter(path, num_threads=num_threads, xnnpack=xnnpack)
        inp = self.interpreter.get_input_details()[0]
        shape = [1, *[int(d) for d in inp["shape"][1:]]]
        self.interpreter.resize_tensor_input(inp["index"], shape)
        self.interpreter.allocate_tensors()
        pixels = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
        self.interpreter.set_tensor(inp["index"], quantize_input(pixels, inp))
        self.invoke_ms(warmup)

    def invoke_ms(self, runs: int) -> list[float]:
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self.interpreter.invoke()
            times.append((time.perf_counter() - start) * 1e3)
        return times


def tflite_latency_ms(path: str, runs: int = 100, warmup: int = 10, num_threads: int = 1,
                      xnnpack: bool = True) -> dict[str, Any]:
    """Single-image invoke time of a .tflite on this CPU, in milliseconds. ``xnnpack`` keeps LiteRT's
    default delegate (as phones run it); False measures the builtin kernels alone, which on x86 can be
    faster for int8 files."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    times = sorted(_InvokeTimer(path, num_threads, xnnpack, warmup).invoke_ms(runs))
    return {"median_ms": statistics.median(times), "mean_ms": statistics.fmean(times),
            "p90_ms": times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))], "min_ms": times[0],
            "runs": runs, "num_threads": num_threads, "xnnpack": xnnpack}


INT8_SIMD_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def cpu_description(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's name, cores and the SIMD extensions XNNPACK's int8 kernels use: whether an int8 file beats its
    float32 one depends on them (the zoo's ratios moved between a Xeon with VNNI and AMX and an AVX2-only EPYC)."""
    name, features = "", set()
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and not name:
                    name = value.strip()
                elif key in ("flags", "Features"):
                    features.update(value.split())
    except OSError:
        pass
    name = name or platform.processor() or platform.machine()
    present = [f for f in INT8_SIMD_FEATURES if f in features]
    return f"{name} ({os.cpu_count()} cores" + (f"; {' '.join(present)})" if present else ")")


class BusyMachineError(RuntimeError):
    """Other work is running: LiteRT times taken now would not compare with anything."""


def other_cpu_load(seconds: float = 1.0) -> float:
    """Cores kept busy by other processes during the next ``seconds`` (Linux ``/proc/stat`` minus this
    process's own CPU time); elsewhere the 1-minute load average, which lags a minute behind."""

    def busy_ticks() -> int:
        with open("/proc/stat", encoding="ascii") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)  # minus idle and iowait

    try:
        start, own, wall = busy_ticks(), time.process_time(), time.perf_counter()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0]
    time.sleep(seconds)
    busy = (busy_ticks() - start) / os.sysconf("SC_CLK_TCK") - (time.process_time() - own)
    return max(0.0, busy) / (time.perf_counter() - wall)


def require_quiet_machine(max_load: float) -> None:
    """Refuse to time while other work keeps the CPU busy (the zoo's figures were once 3x too high because
    training runs shared the cores)."""
    load = other_cpu_load()
    if load > max_load:
        raise BusyMachineError(f"other processes keep {load:.2f} cores busy (over {max_load:g}): times taken "
                               "beside them mislead; stop them and rerun")


def interleaved_latency_ms(paths: Sequence[str], rounds: int, runs: int, xnnpack: bool = True, num_threads: int = 1,
                           warmup: int = 10) -> dict[str, dict[str, Any]]:
    """Each file's median invoke time (XNNPACK unless ``xnnpack`` is False), timed back to back in this
    process: ``rounds`` interleaved rounds of ``runs`` invokes over all files, so a change of load hits every file
    alike; the median of the rounds' medians, with the rounds' own. Every file's interpreter is loaded and warmed
    once and kept for all rounds, so short rounds cost nothing extra: the machine's speed can drift over
    seconds (a shared VM: ``benchmarks/README.md``, ``latency``), and many short rounds spread every file over the
    same mix of its moods."""
    if rounds < 1 or runs < 1:
        raise ValueError(f"need rounds >= 1 and runs >= 1, got {rounds} and {runs}")
    timers = {p: _InvokeTimer(p, num_threads, xnnpack, warmup) for p in paths}
    per_round: dict[str, list[float]] = {p: [] for p in paths}
    for _ in range(rounds):
        for path, timer in timers.items():
            per_round[path].append(statistics.median(timer.invoke_ms(runs)))
    return {p: {"median_ms": statistics.median(v), "round_medians_ms": v, "rounds": rounds, "runs": runs,
                "num_threads": num_threads, "xnnpack": xnnpack} for p, v in per_round.items()}
