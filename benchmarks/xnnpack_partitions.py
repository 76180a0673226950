"""Which zoo files XNNPACK runs in one piece, and what the pieces cost (issue 18, int8 on the fast path).

    python benchmarks/xnnpack_partitions.py [--models=mobilenetv2-style-fmnist,nse-fmnist-6m,nse-fmnist-7m]
        [--formats=float32,int8] [--rounds=3] [--runs=200] [--op_space_of=nse-fmnist-6m] [--op_shapes=0]
        [--max_load=0.3]

For each entry and form: the zoo's own file (exported with a free batch dimension) and the same network with
its input fixed at batch 1, converted by ``conversion.convert_network`` (int8 calibrated on random pixels). For
each file: its LiteRT op kinds, how many pieces XNNPACK took it in (``DELEGATE`` nodes: every op XNNPACK
leaves to the builtin kernels ends one piece and starts another), and its median invoke time (1 thread)
with XNNPACK and with LiteRT's builtin kernels alone, all files timed back to back in this process. Then, unless
``--op_space_of`` is empty, every pool op of that entry's space alone (the latency table's pieces) at the
``--op_shapes`` cells, float32 and int8, XNNPACK against builtin (each op's XNNPACK rounds, then its builtin
ones): which operations XNNPACK runs slower. Needs the machine to itself (``--max_load``). The last line of
stdout is JSON: per file, pieces and the two medians in ms; under ``"ops"``, the per-op medians.
"""

from __future__ import annotations

import collections
import json
import os
import statistics
import sys
import tempfile
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from nse_tf.utils.cli import flags_parser  # noqa: E402

MODELS = flags.DEFINE_list("models", ["mobilenetv2-style-fmnist", "nse-fmnist-6m", "nse-fmnist-7m"],
                           "Zoo entries with weights.")
FORMATS = flags.DEFINE_list("formats", ["float32", "int8"], "TFLite forms.")
ROUNDS = flags.DEFINE_integer("rounds", 3, "Interleaved timing rounds over all files.")
RUNS = flags.DEFINE_integer("runs", 200, "Invokes per file and round.")
OP_SPACE_OF = flags.DEFINE_string("op_space_of", "nse-fmnist-6m", "Zoo entry whose space's pool ops are timed one by "
                                  "one (empty: skip that part).")
OP_SHAPES = flags.DEFINE_list("op_shapes", ["0"], "Indices into that space's latency-table shapes "
                              "(pieces.table_shapes) at which every pool op is timed.")
MAX_LOAD = flags.DEFINE_float("max_load", 0.3, "Refuse to time while other processes keep more cores busy.")


def op_kinds(path: str) -> collections.Counter:
    """The file's op kinds as LiteRT builds it with XNNPACK; each ``DELEGATE`` is one piece XNNPACK runs."""
    from nse_tf.export.runtimes import litert_interpreter

    interpreter = litert_interpreter(path, num_threads=1)
    interpreter.allocate_tensors()
    return collections.Counter(op["op_name"] for op in interpreter._get_ops_details())


def median_ms(path: str, xnnpack: bool) -> float:
    """The median of ``--rounds`` medians of ``--runs`` invokes, one file in one configuration."""
    from nse_tf.export.timing import interleaved_latency_ms

    return interleaved_latency_ms([path], ROUNDS.value, RUNS.value, xnnpack=xnnpack)[path]["median_ms"]


def profile_ops(entry: str, space: Any, shapes: list[int], workdir: str) -> dict[str, dict[str, float]]:
    """Every pool op of ``entry``'s ``space`` alone (the latency table's pieces), float32 and int8, with XNNPACK
    and with the builtin kernels: which operations XNNPACK's int8 path runs slower than the builtin kernels."""
    from nse_tf.cost import conversion, pieces

    table_shapes = pieces.table_shapes(space)
    pool = space.get_pool()
    out: dict[str, dict[str, float]] = {}
    for s in shapes:
        cell = table_shapes[s]
        print(f"pool ops alone at shape {s} of {entry}'s space ({cell.input_hw[0]}x{cell.input_hw[1]}, {cell.cin} -> "
              f"{cell.cout}, stride {cell.stride}): ms with XNNPACK / builtin kernels")
        for i, op in enumerate(pool.ops):
            piece = pieces.TablePiece(f"shape{s:02d}_op{i:02d}", "op", s, i)
            model = pieces.build_piece(space, piece)
            row: dict[str, float] = {}
            for fmt in ("float32", "int8"):
                path = os.path.join(workdir, f"{piece.name}_{fmt}.tflite")
                with open(path, "wb") as f:
                    f.write(conversion.convert_piece(model, piece, fmt))
                row[f"{fmt}_xnnpack_ms"], row[f"{fmt}_builtin_ms"] = median_ms(path, True), median_ms(path, False)
            out[f"shape{s}:{op.name}"] = {k: round(v, 4) for k, v in row.items()}
            print(f"  {op.name:<14} float32 {row['float32_xnnpack_ms']:7.3f} / {row['float32_builtin_ms']:7.3f}   "
                  f"int8 {row['int8_xnnpack_ms']:7.3f} / {row['int8_builtin_ms']:7.3f}"
                  f"{'   <- int8 XNNPACK slower' if row['int8_xnnpack_ms'] > row['int8_builtin_ms'] else ''}")
    return out


def main(argv: list[str]) -> int:
    """Check every flag first (one line, exit 2), then measure."""
    if len(argv) > 1:
        print(f"xnnpack_partitions.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    import nse_tf
    from nse_tf.cost import latency_table, pieces
    from nse_tf.zoo import registry

    for flag in (ROUNDS, RUNS):
        if flag.value < 1:
            print(f"xnnpack_partitions.py: error: --{flag.name}: must be >= 1, got {flag.value}", file=sys.stderr)
            return 2
    formats = [fmt.strip() for fmt in FORMATS.value]
    for fmt in formats:
        if fmt not in latency_table.TFLITE_FORMATS:
            print(f"xnnpack_partitions.py: error: --formats: {fmt!r} is not float32 or int8", file=sys.stderr)
            return 2
    for name in MODELS.value:
        try:
            for fmt in formats:
                registry.tflite_path(name, fmt)
        except registry.ZooError as err:
            print(f"xnnpack_partitions.py: error: --models: {name}: {err}", file=sys.stderr)
            return 2
    op_shapes: list[int] = []
    op_space = None
    if OP_SPACE_OF.value:
        if not registry.is_entry(OP_SPACE_OF.value):
            print(f"xnnpack_partitions.py: error: --op_space_of: no zoo entry {OP_SPACE_OF.value!r}", file=sys.stderr)
            return 2
        op_space = nse_tf.resolve_spec(OP_SPACE_OF.value).space
        n_shapes = len(pieces.table_shapes(op_space))
        for index in OP_SHAPES.value:
            if not index.strip().isdigit() or int(index) >= n_shapes:
                print(f"xnnpack_partitions.py: error: --op_shapes: {index!r} is not a shape index of "
                      f"{OP_SPACE_OF.value}'s space (0 to {n_shapes - 1})", file=sys.stderr)
                return 2
            op_shapes.append(int(index))
    with tempfile.TemporaryDirectory(prefix="xnnpack_partitions_") as workdir:
        return measure(formats, op_space, op_shapes, workdir)


def measure(formats: list[str], op_space: Any, op_shapes: list[int], workdir: str) -> int:
    """Convert, time and print (``main`` has checked the flags); the converted files go in ``workdir``."""
    import keras

    import nse_tf
    from nse_tf.cost import conversion
    from nse_tf.export.timing import BusyMachineError, require_quiet_machine, tflite_latency_ms
    from nse_tf.zoo import registry

    files: dict[str, str] = {}
    for name in MODELS.value:
        model = nse_tf.create_model(name, pretrained=True)
        image = keras.Input(model.inputs[0].shape[1:], batch_size=1)
        model_batch1 = keras.Model(image, model(image), name=f"{model.name}_batch1")
        for fmt in formats:
            files[f"{name} {fmt} zoo file"] = registry.tflite_path(name, fmt)
            path = os.path.join(workdir, f"{name}_{fmt}_batch1.tflite")
            with open(path, "wb") as f:
                f.write(conversion.convert_network(model_batch1, fmt))
            files[f"{name} {fmt} batch 1"] = path
    try:
        require_quiet_machine(MAX_LOAD.value)
    except BusyMachineError as err:
        print(f"xnnpack_partitions.py: error: {err}", file=sys.stderr)
        return 2
    # back to back in this process: every round times every file with XNNPACK, then with the builtin kernels
    samples: dict[tuple[str, bool], list[float]] = {(p, x): [] for p in files.values() for x in (True, False)}
    for _ in range(ROUNDS.value):
        for path in files.values():
            for xnnpack in (True, False):
                samples[path, xnnpack].append(tflite_latency_ms(path, runs=RUNS.value, xnnpack=xnnpack)["median_ms"])
    summary = {}
    print(f"XNNPACK pieces and LiteRT medians (1 thread; {ROUNDS.value} interleaved rounds of {RUNS.value} invokes; "
          "XNNPACK / builtin kernels alone)")
    for label, path in files.items():
        kinds = op_kinds(path)
        pieces = kinds.pop("DELEGATE", 0)
        ms, builtin_ms = (statistics.median(samples[path, x]) for x in (True, False))
        summary[label] = {"pieces": pieces, "median_ms": round(ms, 4), "builtin_median_ms": round(builtin_ms, 4)}
        print(f"  {label:<40} {pieces:>3} pieces {ms:8.3f} / {builtin_ms:8.3f} ms  {dict(sorted(kinds.items()))}")
    if op_space is not None:
        summary["ops"] = profile_ops(OP_SPACE_OF.value, op_space, op_shapes, workdir)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("xnnpack_partitions.py"))
