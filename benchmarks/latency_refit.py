"""Refit and rescore the latency predictor on networks already exported and timed (issue 18), without exporting again.

    python benchmarks/latency_refit.py --data=DIR [--folds=5] [--retime_rounds=0] [--runs=10] [--max_load=0.3]

``DIR`` is what ``python tools/benchmark.py latency --latency_out=DIR`` kept: per TFLite form, the table
(``<form>_table.json``), the networks (``<form>_networks/``) and their timings (``<form>_networks.json``). Per form,
this scores, on the same networks:

- the table's plain sum, and the benchmark's own split (the correction fitted on the first ``fit_archs``, scored on
  the rest), which must reproduce the benchmark's figures;
- k-fold cross-validation (``--folds``; every network predicted by a fit that never saw it) of the correction's
  five features and of its two-weight form (table sum and a constant);
- the timing against itself (odd rounds' medians against even rounds'): what the measurement allows a target.

With ``--retime_rounds=N`` the kept files, the table's pieces (``<form>_pieces/``) and the networks together, are
timed again first (N interleaved rounds of ``--runs`` invokes, 1 thread, XNNPACK, back to back in this process; it
needs the machine to itself), the table is assembled again from the pieces' new times, and everything is scored
against the new medians; it also prints how the new medians agree with the kept ones (the drift between sittings).
The last line of stdout is JSON.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from nse_tf.utils.cli import FlagError, flags_parser  # noqa: E402

DATA = flags.DEFINE_string("data", None, "The folder tools/benchmark.py latency --latency_out wrote.")
FOLDS = flags.DEFINE_integer("folds", 5, "Folds of the cross-validation.")
RETIME_ROUNDS = flags.DEFINE_integer("retime_rounds", 0, "Time the kept files again in this many interleaved rounds "
                                     "first (0: score the kept timings).")
RUNS = flags.DEFINE_integer("runs", 10, "Invokes per file and round when re-timing.")
MAX_LOAD = flags.DEFINE_float("max_load", 0.3, "Refuse to re-time while other processes keep more cores busy.")

NETWORKS_FORMAT = "nse_tf.latency_benchmark_networks"
TWO_WEIGHTS = ("table_sum", "constant")


def load_form(data: str, fmt: str):
    """The space, table and timed networks of one form, checked."""
    from nse_tf.cost import latency_table
    from nse_tf.space.macro import get_space

    path = os.path.join(data, f"{fmt}_networks.json")
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    if record.get("format") != NETWORKS_FORMAT or record.get("version") != 1:
        raise FlagError("data", f"{path}: not a {NETWORKS_FORMAT} file of version 1")
    quick = record["quick_space"]
    space = get_space(quick["space"], pool=quick["pool"], counts=tuple(quick["counts"]),
                      channels=tuple(quick["channels"]))
    table = latency_table.load(os.path.join(data, f"{fmt}_table.json"), space, fmt)
    return space, table, record


def fit_weights(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares on relative error, as ``latency_prediction.fit``."""
    weights, *_ = np.linalg.lstsq(x / y[:, None], np.ones_like(y), rcond=None)
    return weights


def cross_validated(x: np.ndarray, y: np.ndarray, folds: int) -> np.ndarray:
    """Each network's prediction by the fit on the other folds (folds are contiguous: the networks are random)."""
    predicted = np.empty_like(y)
    for part in np.array_split(np.arange(len(y)), folds):
        rest = np.setdiff1d(np.arange(len(y)), part)
        predicted[part] = x[part] @ fit_weights(x[rest], y[rest])
    return predicted


def score_form(data: str, fmt: str, folds: int, retime_rounds: int, runs: int) -> dict:
    from nse_tf.cost import latency_prediction, measurement
    from nse_tf.cost.pieces import table_pieces
    from nse_tf.export.timing import interleaved_latency_ms

    space, table, record = load_form(data, fmt)
    networks = record["networks"]
    cells = [n["cells"] for n in networks]
    rounds = [n["round_medians_ms"] for n in networks]
    y = np.array([n["median_ms"] for n in networks], dtype=np.float64)
    result: dict = {}
    if retime_rounds:
        pieces = {piece.name: os.path.join(data, f"{fmt}_pieces", f"{piece.name}.tflite")
                  for piece in table_pieces(space)}
        paths = [os.path.join(data, f"{fmt}_networks", f"arch{i:03d}.tflite") for i in range(len(networks))]
        missing = [p for p in [*pieces.values(), *paths] if not os.path.exists(p)]
        if missing:
            raise FlagError("data", f"{missing[0]} is missing ({len(missing)} files): nothing to re-time")
        timed = interleaved_latency_ms([*pieces.values(), *paths], retime_rounds, runs)
        table = measurement.assemble_timed(space, pieces, {path: t["median_ms"] for path, t in timed.items()},
                                           tflite_format=fmt, num_threads=1, runs=runs, rounds=retime_rounds)
        new = np.array([timed[p]["median_ms"] for p in paths])
        result["retimed_vs_kept"] = latency_prediction.accuracy(list(new), list(y))
        y, rounds = new, [timed[p]["round_medians_ms"] for p in paths]
    x = np.stack([latency_prediction.features(table, space, c) for c in cells])
    two = [latency_prediction.FEATURES.index(f) for f in TWO_WEIGHTS]
    split = int(record["fit_archs"])
    check = slice(split, None)
    split_fit = latency_prediction.fit(table, space, cells[:split], list(y[:split]))
    predictions = {
        "table_sum": x[:, 0],
        "correction_split": x @ np.asarray(split_fit.weights),
    }
    scores = {name: latency_prediction.accuracy(list(p[check]), list(y[check])) for name, p in predictions.items()}
    scores["correction_cv"] = latency_prediction.accuracy(list(cross_validated(x, y, folds)), list(y))
    scores["two_weights_cv"] = latency_prediction.accuracy(list(cross_validated(x[:, two], y, folds)), list(y))
    scores["repeat"] = latency_prediction.repeat_agreement(rounds)
    result.update({k: {m: round(v, 4) if isinstance(v, float) else v for m, v in s.items()}
                   for k, s in scores.items() if s is not None})
    result["measured_ms_range"] = [round(float(y.min()), 4), round(float(y.max()), 4)]
    return result


def checked_forms() -> list[str]:
    """The forms kept in --data, after checking the flags."""
    if not DATA.value or not os.path.isdir(DATA.value):
        raise FlagError("data", f"{DATA.value!r} is not a folder that tools/benchmark.py latency --latency_out wrote")
    if FOLDS.value < 2:
        raise FlagError("folds", f"need at least 2, got {FOLDS.value}")
    if RETIME_ROUNDS.value < 0:
        raise FlagError("retime_rounds", f"must be >= 0, got {RETIME_ROUNDS.value}")
    if RUNS.value < 1:
        raise FlagError("runs", f"must be >= 1, got {RUNS.value}")
    forms = [f for f in ("float32", "int8") if os.path.exists(os.path.join(DATA.value, f"{f}_networks.json"))]
    if not forms:
        raise FlagError("data", f"{DATA.value}: no float32_networks.json or int8_networks.json in it")
    return forms


def main(argv: list[str]) -> int:
    from nse_tf.cost.latency_table import LatencyTableError
    from nse_tf.export.timing import BusyMachineError, require_quiet_machine

    if len(argv) > 1:
        print(f"latency_refit.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    try:
        forms = checked_forms()
        if RETIME_ROUNDS.value:
            try:
                require_quiet_machine(MAX_LOAD.value)
            except BusyMachineError as err:
                raise FlagError("max_load", str(err)) from None
        results = {}
        for fmt in forms:
            try:
                results[fmt] = score_form(DATA.value, fmt, FOLDS.value, RETIME_ROUNDS.value, RUNS.value)
            except (LatencyTableError, KeyError, json.JSONDecodeError) as err:
                raise FlagError("data", f"{DATA.value}: {fmt} files unusable ({err})") from None
    except FlagError as err:
        print(f"latency_refit.py: error: {err}", file=sys.stderr)
        return 2
    for fmt, result in results.items():
        lo, hi = result["measured_ms_range"]
        print(f"{fmt} ({lo:.3f}-{hi:.3f} ms):")
        for name in ("table_sum", "correction_split", "correction_cv", "two_weights_cv", "repeat",
                     "retimed_vs_kept"):
            if name in result:
                s = result[name]
                print(f"  {name:18s} within +-10% {s['within_10pct']:.3f}  RMSE {s['rmse_ms']:.4f} ms  "
                      f"Kendall tau {s['kendall_tau']:.3f}  (n={s['n']})")
    sys.stdout.flush()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("latency_refit.py"))
