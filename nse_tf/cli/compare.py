"""The comparison table of issue 14: NSE's pick, the random-search pick and the baseline, several seeds each.

    python tools/compare.py --flagfile=configs/comparison_fashion_mnist.flags

Each ``--row=method:zoo_entry:seed`` names a zoo entry with weights. Top-1 (10,000 test images) and MACs come
from its metadata, which ``tools/evaluate.py`` re-measures; the float32 and int8 ``.tflite`` files of all rows
are timed here, back to back in this one process (LiteRT, 1 thread, XNNPACK), in ``--rounds`` interleaved
rounds of ``--runs`` invokes each, the median of the rounds' medians kept. Writes ``--out_dir``/comparison.json
and comparison.md (mean and range per method, the command behind each row). Run it with nothing else on the
machine: the times are only comparable with each other.
"""

from __future__ import annotations

import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from nse_tf.utils.cli import FlagError, flags_parser  # noqa: E402

# "reference": a further network shown beside the three for context (say, the search's own skeleton when the
# baseline is narrowed to the pick's MACs); it takes no part in the verdict.
METHODS = ("nse", "random", "baseline", "reference")
F = flags.FLAGS
flags.DEFINE_multi_string("row", [], "method:zoo_entry:seed, method one of nse, random, baseline, reference "
                          "(a further network for context).")
flags.DEFINE_string("search_run", None, "The search run the NSE rows come from (recorded in the JSON).")
flags.DEFINE_integer("rounds", 5, "Interleaved timing rounds over all files.")
flags.DEFINE_integer("runs", 200, "Invokes per file and round.")
flags.DEFINE_string("out_dir", "results/comparison", "Where comparison.json and comparison.md go.")
flags.DEFINE_float("max_load", 0.3, "Refuse to time while other processes keep more cores than this busy.")


def parse_rows(values: list[str]) -> list[tuple[str, str, int]]:
    from nse_tf.zoo import registry as zoo

    rows = []
    for value in values:
        parts = value.split(":")
        if len(parts) != 3 or parts[0] not in METHODS:
            raise FlagError("row", f"{value!r}: expected method:zoo_entry:seed with method one of {', '.join(METHODS)}")
        method, name, seed = parts
        if not zoo.is_entry(name):
            raise FlagError("row", f"{value!r}: {name} is not a zoo entry")
        if not zoo.get_entry(name).has_weights:
            raise FlagError("row", f"{value!r}: {name} has no trained weights")
        try:
            rows.append((method, name, int(seed)))
        except ValueError:
            raise FlagError("row", f"{value!r}: the seed must be an integer") from None
    if not rows:
        raise FlagError("row", "give at least one --row")
    return rows


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"compare.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    from nse_tf.utils.output_paths import OutputError, check_dir, output_error_line

    try:
        rows = parse_rows(F.row)
        if F.rounds < 1 or F.runs < 1:
            raise FlagError("rounds" if F.rounds < 1 else "runs", "must be positive")
        try:  # written after the timing: an existing file or a read-only mount is refused now
            check_dir(F.out_dir, create=False)
        except OutputError as err:
            raise FlagError("out_dir", str(err)) from None
    except FlagError as err:
        print(f"compare.py: error: {err}", file=sys.stderr)
        return 2
    from nse_tf.export.timing import BusyMachineError, require_quiet_machine
    from nse_tf.utils.atomic import atomic_write_json, atomic_write_text
    from nse_tf.zoo import registry as zoo
    from nse_tf.zoo.entry_timing import time_entries

    try:
        require_quiet_machine(F.max_load)
    except BusyMachineError as err:
        print(f"compare.py: error: --max_load: {err}", file=sys.stderr)
        return 2
    times = time_entries([name for _, name, _ in rows], F.rounds, F.runs)
    out = []
    for method, name, seed in rows:
        meta = zoo.metadata(name)
        out.append({"method": method, "zoo_entry": name, "seed": seed, "top1": meta["top1"], "macs": meta["macs"],
                    "litert_float32_ms": times[name]["float32"], "litert_int8_ms": times[name]["int8"],
                    "command": meta.get("command")})
    result = {"search_run": F.search_run, "rows": [{k: v for k, v in r.items() if k != "command"} for r in out],
              "timing": {"rounds": F.rounds, "runs": F.runs, "num_threads": 1, "xnnpack": True},
              "command": " ".join(["python", "tools/compare.py", *sys.argv[1:]])}
    try:
        os.makedirs(F.out_dir, exist_ok=True)
        atomic_write_json(os.path.join(F.out_dir, "comparison.json"), result)
        atomic_write_text(os.path.join(F.out_dir, "comparison.md"), markdown(out, result))
    except Exception as err:  # the disk filled while writing: one line
        if (line := output_error_line(err, "out_dir", F.out_dir)) is None:
            raise
        print(f"compare.py: error: {line}", file=sys.stderr)
        return 2
    print(markdown(out, result))
    return 0


def markdown(rows: list[dict], result: dict) -> str:
    lines = ["# NSE vs random search vs the MobileNetV2-style baseline", "",
             f"Search run: `{result['search_run']}`. Top-1 on the 10,000 test images (zoo metadata, re-measured by "
             "`tools/evaluate.py`); LiteRT medians timed back to back in one process "
             f"({result['timing']['rounds']} interleaved rounds of {result['timing']['runs']} invokes, 1 thread).", "",
             "| method | seeds | mean top-1 | range | M MACs | LiteRT float32 ms | LiteRT int8 ms |",
             "|---|---|---|---|---|---|---|"]
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        top1 = [r["top1"] for r in mine]
        lines.append(f"| {method} | {len(mine)} | {100 * statistics.fmean(top1):.2f}% | {100 * min(top1):.2f}-"
                     f"{100 * max(top1):.2f}% | {statistics.fmean(r['macs'] for r in mine) / 1e6:.2f} | "
                     f"{statistics.fmean(r['litert_float32_ms'] for r in mine):.3f} | "
                     f"{statistics.fmean(r['litert_int8_ms'] for r in mine):.3f} |")
    lines += ["", "| method | zoo entry | seed | top-1 | command |", "|---|---|---|---|---|"]
    lines += [f"| {r['method']} | `{r['zoo_entry']}` | {r['seed']} | {100 * r['top1']:.2f}% | `{r['command']}` |"
              for r in rows]
    lines += ["", f"Produced by `{result['command']}`."]
    return "\n".join(lines) + "\n"


def run() -> None:
    """``python tools/compare.py``."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("compare.py"))
