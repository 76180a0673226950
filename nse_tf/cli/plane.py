"""The accuracy-latency plane of issue 30: the width family, NSE's picks and the random control.

    python tools/plane.py --flagfile=configs/plane/plane.flags

Each ``--row=method:budget:alpha:zoo_entry:seed`` names a zoo entry with weights (method family, nse or random;
budget a035, a05, a10 or empty; alpha the family's width multiplier, empty for searched rows). Top-1 (10,000 test
images) and MACs come from its metadata, which ``tools/evaluate.py`` re-measures; the float32 and int8 ``.tflite``
files of all rows are timed here, back to back in this one process (LiteRT, 1 thread, XNNPACK, interleaved
rounds). Writes ``--out_dir``/plane.json, plane.md (the table, the verdict per pick, every row's command) and
plane.png (top-1 against float32 ms: the family as a line, the searches' picks as points, seed ranges as bars).
Run it with nothing else on the machine.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from nse_tf.utils.cli import FlagError, flags_parser  # noqa: E402

F = flags.FLAGS
flags.DEFINE_multi_string("row", [], "method:budget:alpha:zoo_entry:seed (method family, nse or random).")
flags.DEFINE_multi_string("search_run", [], "Search run directories behind the nse and random rows (recorded).")
flags.DEFINE_integer("rounds", 50, "Interleaved timing rounds over all files.")
flags.DEFINE_integer("runs", 20, "Invokes per file and round.")
flags.DEFINE_string("out_dir", "results/plane", "Where plane.json, plane.md and plane.png go.")
flags.DEFINE_float("max_load", 0.3, "Refuse to time while other processes keep more cores than this busy.")


def parse_rows(values: list[str]) -> list[dict]:
    from nse_tf.zoo import plane
    from nse_tf.zoo import registry as zoo

    rows = []
    for value in values:
        parts = value.split(":")
        if len(parts) != 5 or parts[0] not in plane.METHODS:
            raise FlagError("row", f"{value!r}: expected method:budget:alpha:zoo_entry:seed with method one of "
                                   f"{', '.join(plane.METHODS)}")
        method, budget, alpha, name, seed = parts
        if not zoo.is_entry(name) or not zoo.get_entry(name).has_weights:
            raise FlagError("row", f"{value!r}: {name} is not a zoo entry with trained weights")
        try:
            rows.append({"method": method, "budget": budget or None, "alpha": float(alpha) if alpha else None,
                         "zoo_entry": name, "seed": int(seed)})
        except ValueError:
            raise FlagError("row", f"{value!r}: alpha must be a number (or empty) and the seed an integer") from None
        if (method == "family") != (alpha != ""):
            raise FlagError("row", f"{value!r}: a family row has an alpha, and only a family row")
    if not rows:
        raise FlagError("row", "give at least one --row")
    if not any(r["method"] == "family" for r in rows):
        raise FlagError("row", "give the family's rows: the searches' picks are judged against its curve")
    return rows


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(f"plane.py: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 2
    from nse_tf.utils.output_paths import OutputError, check_dir, output_error_line

    try:
        specs = parse_rows(F.row)
        if F.rounds < 1 or F.runs < 1:
            raise FlagError("rounds" if F.rounds < 1 else "runs", "must be positive")
        try:  # written after the timing: an existing file or a read-only mount is refused now
            check_dir(F.out_dir, create=False)
        except OutputError as err:
            raise FlagError("out_dir", str(err)) from None
    except FlagError as err:
        print(f"plane.py: error: {err}", file=sys.stderr)
        return 2
    from nse_tf.export.timing import BusyMachineError, cpu_description, require_quiet_machine
    from nse_tf.utils.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
    from nse_tf.zoo import plane
    from nse_tf.zoo import registry as zoo
    from nse_tf.zoo.entry_timing import time_entries

    try:
        require_quiet_machine(F.max_load)
    except BusyMachineError as err:
        print(f"plane.py: error: --max_load: {err}", file=sys.stderr)
        return 2
    times = time_entries([s["zoo_entry"] for s in specs], F.rounds, F.runs)
    rows, commands = [], {}
    for spec in specs:
        meta = zoo.metadata(spec["zoo_entry"])
        rows.append(plane.PlaneRow(**spec, top1=meta["top1"], macs=meta["macs"],
                                   litert_float32_ms=times[spec["zoo_entry"]]["float32"],
                                   litert_int8_ms=times[spec["zoo_entry"]]["int8"]))
        commands[spec["zoo_entry"]] = meta.get("command")
    result = {"rows": [dict(vars(r)) for r in rows], "search_runs": list(F.search_run),
              "verdicts": plane.verdicts(rows),
              "timing": {"rounds": F.rounds, "runs": F.runs, "num_threads": 1, "xnnpack": True,
                         "cpu": cpu_description()},
              "command": " ".join(["python", "tools/plane.py", *sys.argv[1:]])}
    try:
        os.makedirs(F.out_dir, exist_ok=True)
        atomic_write_json(os.path.join(F.out_dir, "plane.json"), result)
        atomic_write_text(os.path.join(F.out_dir, "plane.md"), markdown(result, commands))
        atomic_write_bytes(os.path.join(F.out_dir, "plane.png"), picture(rows))
    except Exception as err:  # the disk filled while writing: one line
        if (line := output_error_line(err, "out_dir", F.out_dir)) is None:
            raise
        print(f"plane.py: error: {line}", file=sys.stderr)
        return 2
    print(markdown(result, commands))
    return 0


def markdown(result: dict, commands: dict[str, str | None]) -> str:
    timing = result["timing"]
    lines = ["# The accuracy-latency plane", "",
             "Top-1 on the 10,000 test images (zoo metadata, re-measured by `tools/evaluate.py`); LiteRT medians "
             f"timed back to back in one process ({timing['rounds']} interleaved rounds of {timing['runs']} "
             f"invokes, 1 thread, XNNPACK, {timing['cpu']}). Search runs: "
             f"{', '.join(f'`{r}`' for r in result['search_runs']) or 'none yet'}.", "",
             "| method | budget | alpha | zoo entry | seed | top-1 | M MACs | float32 ms | int8 ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['method']} | {r['budget'] or '-'} | {'-' if r['alpha'] is None else r['alpha']} | "
                     f"`{r['zoo_entry']}` | {r['seed']} | {100 * r['top1']:.2f}% | {r['macs'] / 1e6:.2f} | "
                     f"{r['litert_float32_ms']:.4f} | {r['litert_int8_ms']:.4f} |")
    if result["verdicts"]:
        lines += ["", "Each searched pick against the family curve (piecewise linear through each member's better "
                  "seed, at the pick's own float32 time; `nse_tf.zoo.plane`):", "",
                  "| method | network | float32 ms | worse seed | family at that time | above the family |",
                  "|---|---|---|---|---|---|"]
        for v in result["verdicts"]:
            curve = "-" if v["family_top1_at_ms"] is None else f"{100 * v['family_top1_at_ms']:.2f}%"
            verdict = "does not count (over 5% slower than the largest member)" if v["above_family"] is None else (
                "yes" if v["above_family"] else "no")
            lines.append(f"| {v['method']} | `{v['network']}` | {v['litert_float32_ms']:.4f} | "
                         f"{100 * v['lower_seed_top1']:.2f}% | {curve} | {verdict} |")
    lines += ["", "| zoo entry | command |", "|---|---|"]
    lines += [f"| `{name}` | `{command}` |" for name, command in commands.items()]
    lines += ["", f"Produced by `{result['command']}`."]
    return "\n".join(lines) + "\n"


def picture(rows) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nse_tf.zoo import plane

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    family = plane.group(rows, "family")
    if family:
        ax.plot([p.ms for p in family], [100 * p.high for p in family], "-", color="black",
                label="MobileNetV2-style width family (better seed)")
    styles = {"family": ("o", "black"), "nse": ("*", "tab:red"), "random": ("s", "tab:blue")}
    for method, (marker, colour) in styles.items():
        points = plane.group(rows, method)
        for k, p in enumerate(points):
            ax.errorbar([p.ms], [100 * p.mean], yerr=[[100 * (p.mean - p.low)], [100 * (p.high - p.mean)]],
                        fmt=marker, color=colour, capsize=3, markersize=8 if marker == "*" else 5,
                        label=f"{method} (mean, seed range)" if k == 0 else None)
    ax.set_xlabel("LiteRT float32 ms (1 thread, XNNPACK)")
    ax.set_ylabel("test top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def run() -> None:
    """``python tools/plane.py``."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("plane.py"))
