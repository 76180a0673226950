"""Which zoo files XNNPACK runs in one piece, and what the pieces cost (issue 18, int8 on the fast path).

    python benchmarks/xnnpack_partitions.py [--models=mobilenetv2-style-fmnist,nse-fmnist-6m,nse-fmnist-7m]
        [--formats=float32,int8] [--rounds=3] [--runs=200] [--max_load=0.3]

For each entry and form: the zoo's own file (exported with a free batch dimension) and the same network
converted at batch 1 (``latency.convert_network``, as the latency table's whole-network check does). For
each file: its LiteRT op kinds, how many pieces XNNPACK took it in (``DELEGATE`` nodes: every op XNNPACK
leaves to the builtin kernels ends one piece and starts another), and its median invoke time (1 thread,
XNNPACK), all files timed back to back in this process. Needs the machine to itself (``--max_load``). The
last line of stdout is JSON: per file, pieces and median ms.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from nse_tf.utils.cli import flags_parser  # noqa: E402

MODELS = flags.DEFINE_list("models", ["mobilenetv2-style-fmnist", "nse-fmnist-6m", "nse-fmnist-7m"],
                           "Zoo entries with weights.")
FORMATS = flags.DEFINE_list("formats", ["float32", "int8"], "TFLite forms.")
ROUNDS = flags.DEFINE_integer("rounds", 3, "Interleaved timing rounds over all files.")
RUNS = flags.DEFINE_integer("runs", 200, "Invokes per file and round.")
MAX_LOAD = flags.DEFINE_float("max_load", 0.3, "Refuse to time while other processes keep more cores busy.")


def op_kinds(path: str) -> collections.Counter:
    """The file's op kinds as LiteRT builds it with XNNPACK; each ``DELEGATE`` is one piece XNNPACK runs."""
    from nse_tf.export.runtimes import litert_interpreter

    interpreter = litert_interpreter(path, num_threads=1)
    interpreter.allocate_tensors()
    return collections.Counter(op["op_name"] for op in interpreter._get_ops_details())


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"xnnpack_partitions.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    import nse_tf
    from nse_tf.cost import latency
    from nse_tf.export.timing import BusyMachineError, interleaved_latency_ms, require_quiet_machine
    from nse_tf.zoo import registry

    formats = [fmt.strip() for fmt in FORMATS.value]
    for fmt in formats:
        if fmt not in registry.TFLITE_VARIANTS or fmt == "int8_qat":
            print(f"xnnpack_partitions.py: error: --formats: {fmt!r} is not float32 or int8", file=sys.stderr)
            return 2
    for name in MODELS.value:
        if not registry.is_entry(name):
            print(f"xnnpack_partitions.py: error: --models: no zoo entry {name!r}", file=sys.stderr)
            return 2
    workdir = tempfile.mkdtemp(prefix="xnnpack_partitions_")
    files: dict[str, str] = {}
    for name in MODELS.value:
        model = nse_tf.create_model(name, pretrained=True)
        for fmt in formats:
            files[f"{name} {fmt} zoo file"] = registry.tflite_path(name, fmt)
            path = os.path.join(workdir, f"{name}_{fmt}_batch1.tflite")
            with open(path, "wb") as f:
                f.write(latency.convert_network(model, fmt))
            files[f"{name} {fmt} batch 1"] = path
    try:
        require_quiet_machine(MAX_LOAD.value)
    except BusyMachineError as err:
        print(f"xnnpack_partitions.py: error: {err}", file=sys.stderr)
        return 2
    times = interleaved_latency_ms(list(files.values()), ROUNDS.value, RUNS.value)
    summary = {}
    print(f"XNNPACK pieces and LiteRT medians (1 thread; {ROUNDS.value} interleaved rounds of {RUNS.value} invokes)")
    for label, path in files.items():
        kinds = op_kinds(path)
        pieces = kinds.pop("DELEGATE", 0)
        ms = times[path]["median_ms"]
        summary[label] = {"pieces": pieces, "median_ms": round(ms, 4)}
        print(f"  {label:<48} {pieces:>3} pieces {ms:8.3f} ms  {dict(sorted(kinds.items()))}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("xnnpack_partitions.py"))
