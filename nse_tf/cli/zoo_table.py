"""Print the zoo table of README.md from the entries' metadata: ``python tools/zoo_table.py [--write_readme]``.

The README's table is this script's output verbatim (a test checks it), so its numbers are the
measured ones in zoo/*/metadata.json. It leads with what a user picks (``registry.listed_models``: a
comparison's seeds once, by their recipe's name), then lists the seeds themselves.

``python tools/zoo_table.py --retime [--rounds=50] [--runs=20] [--max_load=0.3]`` re-times the float32 and
int8 files of every entry back to back in this one process (short interleaved rounds, 1 thread, XNNPACK) and
writes the medians into each entry's metadata (``tflite.<variant>.litert_latency_ms``), so every figure
of the table's latency column was taken in the same conditions. It refuses to run while other processes
keep more than ``--max_load`` cores busy (``nse_tf.export.timing.other_cpu_load``): times taken beside them mislead.
"""

from __future__ import annotations

import os
import sys


HEADER = ("| name | dataset | top-1 | MACs | params | float32 / int8 .tflite | int8 top-1 (post-training / QAT) | "
          "LiteRT latency float32 / int8 (this CPU, 1 thread) |\n|---|---|---|---|---|---|---|---|")


def _row(meta: dict, label: str | None = None) -> str:
    top1 = "-" if meta["top1"] is None else f"{100 * meta['top1']:.2f}%"
    tflite = meta.get("tflite") or {}
    if tflite:
        sizes = " / ".join(f"{tflite[v]['size_bytes'] / 1024:.0f} KiB" for v in ("float32", "int8"))
        qat = tflite.get("int8_qat")
        int8 = f"{100 * tflite['int8']['top1']:.2f}% / " + ("-" if qat is None else f"{100 * qat['top1']:.2f}%")
        latency = " / ".join(f"{tflite[v]['litert_latency_ms']['median_ms']:.2f} ms" for v in ("float32", "int8"))
    else:
        sizes = int8 = latency = "-"
    return (f"| {label or meta['name']} | {meta['dataset']} | {top1} | {meta['macs'] / 1e6:.2f}M | "
            f"{meta['params'] / 1e6:.3f}M | {sizes} | {int8} | {latency} |")


def timing_note(metas: list[dict]) -> str:
    """Where and when the latency column was taken: int8 against float32 differs between CPUs, so a reader
    must know which one."""
    records = {(r.get("retimed"), r.get("cpu")) for meta in metas for variant in ("float32", "int8")
               if (r := ((meta.get("tflite") or {}).get(variant) or {}).get("litert_latency_ms"))}
    if len(records) != 1 or None in next(iter(records)):
        return "LiteRT latency: taken at different times or places; each entry's metadata says when and how."
    when, cpu = next(iter(records))
    return (f"LiteRT latency: every file re-timed together on {when}, on {cpu},\n"
            "by `python tools/zoo_table.py --retime`; compare within this table only.")


SEEDS_NOTE = ("The seeds of the comparisons: a recipe's name above loads its lowest seed; each seed loads by its "
              "name\n(`nse_tf.list_models(include_seeds=True)` lists them).")


def readable_entries(broken: dict[str, str]) -> dict[str, tuple[dict, bool]]:
    """Each name of ``registry.listed_models(include_seeds=True)`` whose metadata reads: its metadata and whether
    it has weights; why each other one does not goes into ``broken`` (one damaged entry does not hide the rest)."""
    from nse_tf.zoo import registry as zoo

    entries = {}
    for name in zoo.listed_models(include_seeds=True):
        try:
            entries[name] = zoo.metadata(name), zoo.get_entry(name).has_weights
        except ValueError as err:  # ZooError, ArchitectureError: the line names the file
            broken[name] = " ".join(str(err).split())
    return entries


def zoo_table(broken: dict[str, str] | None = None) -> str:
    """What a user picks from first (trained entries, then architectures without weights; a comparison's seeds
    once, by their recipe's name), then the seeds themselves. Entries that do not read are left out, each
    with its reason in ``broken``."""
    from nse_tf.zoo import registry as zoo

    readable = readable_entries({} if broken is None else broken)
    metas = {name: meta for name, (meta, _) in readable.items()}
    groups = zoo.seed_groups()
    picks = sorted((name for name in zoo.listed_models() if name in metas),
                   key=lambda name: (not readable[name][1], name))
    rows = []
    for name in picks:
        meta = metas[name]
        default = meta["name"] != name  # a recipe's name: its lowest seed
        label = f"{name} ({meta['name'][len(name):]} of {len(groups[name])} seeds)" if default else None
        rows.append(_row(meta, label))
    seeds = sorted(seed for members in groups.values() for seed in members if seed in metas)
    entries = [metas[name] for name in zoo.list_models() if name in metas]
    seed_part = ["", SEEDS_NOTE, "", HEADER] + [_row(metas[name]) for name in seeds] if seeds else []
    return "\n".join([HEADER] + rows + seed_part + ["", timing_note(entries)])


START, END = "<!-- zoo-table: output of tools/zoo_table.py -->", "<!-- /zoo-table -->"
README = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "README.md")


def readme_table(readme: str = README) -> str:
    """The table as it stands between the markers in README.md."""
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    return text[text.index(START) + len(START):text.index(END)].strip()


def write_readme(table: str, readme: str = README) -> None:
    from nse_tf.utils.atomic import atomic_write_text

    with open(readme, encoding="utf-8") as f:
        text = f.read()
    head, rest = text.split(START, 1)
    atomic_write_text(readme, f"{head}{START}\n{table}\n{END}{rest.split(END, 1)[1]}")


def retime(rounds: int, runs: int, max_load: float) -> list[str]:
    """Re-time every entry's .tflite files together; the names of the entries whose metadata changed."""
    import datetime
    import json

    from nse_tf.export.timing import cpu_description, interleaved_latency_ms, require_quiet_machine
    from nse_tf.utils.atomic import atomic_write_json
    from nse_tf.zoo import registry as zoo

    require_quiet_machine(max_load)
    readable = readable_entries({})  # main() names the broken ones under the table
    variants = {name: [v for v in zoo.TFLITE_VARIANTS if v in (readable[name][0].get("tflite") or {})]
                for name in zoo.list_models() if name in readable}
    entries = [name for name, present in variants.items() if present]
    files = {(name, variant): zoo.tflite_path(name, variant) for name in entries for variant in variants[name]}
    times = interleaved_latency_ms(list(files.values()), rounds, runs)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    cpu = cpu_description()
    for name in entries:
        entry = zoo.get_entry(name)
        meta_path = os.path.join(entry.path, zoo.METADATA_NAME)
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        for variant in variants[name]:
            meta["tflite"][variant]["litert_latency_ms"] = {
                **times[files[name, variant]], "retimed": when, "cpu": cpu,
                "with": f"tools/zoo_table.py --retime: all {len(files)} files of the zoo back to back"}
        atomic_write_json(meta_path, meta)
    return entries


def main(argv: list[str]) -> int:
    options = {"rounds": 50, "runs": 20, "max_load": 0.3}
    write, do_retime = False, False
    for arg in argv:
        key, _, value = arg.removeprefix("--").partition("=")
        if arg == "--write_readme":
            write = True
        elif arg == "--retime":
            do_retime = True
        elif key in options and value:
            try:
                options[key] = type(options[key])(value)
            except ValueError:
                print(f"zoo_table.py: error: --{key}: expected a number, got {value!r}", file=sys.stderr)
                return 2
        else:
            print(f"zoo_table.py: error: {arg}: unknown argument (usage: python tools/zoo_table.py [--write_readme] "
                  "[--retime [--rounds=N] [--runs=N] [--max_load=X]])", file=sys.stderr)
            return 2
    from nse_tf.utils.output_paths import OutputError, check_file, output_error_line

    if write:  # README.md is written last (after a --retime): a read-only checkout is refused now
        try:
            check_file(README)
        except OutputError as err:
            print(f"zoo_table.py: error: --write_readme: {err}", file=sys.stderr)
            return 2
    if do_retime:
        from nse_tf.export.timing import BusyMachineError
        from nse_tf.zoo import registry as zoo

        if options["rounds"] < 1 or options["runs"] < 1:
            print("zoo_table.py: error: --rounds and --runs must be positive", file=sys.stderr)
            return 2
        try:
            retimed = retime(int(options["rounds"]), int(options["runs"]), float(options["max_load"]))
        except BusyMachineError as err:
            print(f"zoo_table.py: error: --max_load: {err}", file=sys.stderr)
            return 2
        except Exception as err:  # an entry's metadata could not be rewritten (a full disk, a read-only zoo)
            if (line := output_error_line(err, "retime", zoo.zoo_dir())) is None:
                raise
            print(f"zoo_table.py: error: {line}", file=sys.stderr)
            return 2
        print(f"re-timed {len(retimed)} entries: {', '.join(retimed)}"
              + ("" if write else " (README.md's table changes with --write_readme)"), file=sys.stderr)
    broken: dict[str, str] = {}
    table = zoo_table(broken)
    if write and not broken:
        try:
            write_readme(table)
        except Exception as err:  # the disk filled: one line, README.md as it was (written atomically)
            if (line := output_error_line(err, "write_readme", README)) is None:
                raise
            print(f"zoo_table.py: error: {line}", file=sys.stderr)
            return 2
    print(table)
    for name, reason in broken.items():  # the rest is listed; the README keeps its table until all read
        print(f"zoo_table.py: error: zoo entry {name} left out: {reason}"
              + (" (README.md not written)" if write else ""), file=sys.stderr)
    return 2 if broken else 0


def run() -> None:
    """``python tools/zoo_table.py``."""
    sys.exit(main(sys.argv[1:]))
