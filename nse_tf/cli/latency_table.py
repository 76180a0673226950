"""The LiteRT latency lookup table of a latency search: measured here, or on a phone with the kit.

    python tools/latency_table.py measure --search_flags=configs/<search>.flags [--out=TABLE.json]
    python tools/latency_table.py export --search_flags=configs/<search>.flags --out=DIR
    python tools/latency_table.py import DIR --out=TABLE.json

``--search_flags`` names a search flagfile: its space flags (``--space``, ``--pool``, ``--counts``,
``--channels``, ...) give the space, its ``--latency_format`` the TFLite form, its ``--latency_table`` the
default ``--out`` of ``measure``. ``measure`` times the table on this CPU (run it with nothing else on the
machine; ``--max_load`` refuses a busy CPU), as the search would before its first round. ``export`` writes
the phone kit (``nse_tf.cost.phone_kit``): one ``.tflite`` per (cell shape, operation), the adds, stem and
head, a ``manifest.json`` and ``run_on_device.sh``, which runs LiteRT's ``benchmark_model`` over them on an
``adb`` device; ``import`` turns the outputs it collected into the table JSON that ``--latency_table`` reads.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

from nse_tf.utils.cli import FlagError, flags_parser  # noqa: E402
from nse_tf.utils.output_paths import OutputError, check_dir, check_file, output_error_line  # noqa: E402

F = flags.FLAGS
flags.DEFINE_string("search_flags", None, "measure/export: the search flagfile whose space the table prices.")
flags.DEFINE_string("out", None, "measure: the table JSON (default: the flagfile's --latency_table); export: the "
                    "kit directory; import: the table JSON to write.")
flags.DEFINE_enum("latency_format", None, ["float32", "int8"], "TFLite form (default: the flagfile's, else float32).")
flags.DEFINE_integer("threads", 1, "Threads of each timed invoke (here, or benchmark_model's --num_threads).")
flags.DEFINE_integer("runs", None, "Timed invokes per model (measure: per round; default 20 for measure, 100 for "
                     "the phone kit).")
flags.DEFINE_integer("rounds", 50, "measure: short interleaved rounds over all models (each model's median over "
                     "them), so that the machine's drift hits every model alike.")
flags.DEFINE_float("max_load", 0.3, "measure: refuse to start while other processes keep more cores than this busy.")
flags.DEFINE_boolean("overwrite", False, "measure/export: replace an existing table or kit.")


OUT = {"path": None}  # where this command writes (--out, or the flagfile's table): named by a refused write


def check_out(path: str, directory: bool = False) -> str:
    """--out as a file (a directory: ``directory``) this process can write, checked before the work."""
    OUT["path"] = path
    try:
        return check_dir(path, create=False) if directory else check_file(path)
    except OutputError as err:
        raise FlagError("out", str(err)) from None


def search_settings():
    """(space, TFLite form, the flagfile's table path) of --search_flags."""
    from nse_tf.space.macro import space_from_flags
    from nse_tf.utils.flagfiles import FlagfileError, read_flagfile

    if not F.search_flags:
        raise FlagError("search_flags", "is required")
    try:
        values = read_flagfile(F.search_flags)
    except FlagfileError as err:
        raise FlagError("search_flags", str(err)) from None
    if values.get("cost", "macs") != "latency":
        raise FlagError("search_flags", f"{F.search_flags} is not a latency search (--cost=latency)")
    tflite_format = F.latency_format or values.get("latency_format", "float32")
    try:
        space = space_from_flags(values)
    except ValueError as err:
        raise FlagError("search_flags", f"{F.search_flags}: {err}") from None
    return space, tflite_format, values.get("latency_table")


def measure() -> int:
    from nse_tf.cost import latency_table, measurement
    from nse_tf.export.timing import BusyMachineError, require_quiet_machine

    space, tflite_format, default_out = search_settings()
    out = F.out or default_out
    if not out:
        raise FlagError("out", f"is required ({F.search_flags} names no --latency_table)")
    if os.path.exists(out) and not F.overwrite:
        raise FlagError("out", f"{out} exists (a search may price with it); pass --overwrite to measure it again")
    check_out(out)  # written after the whole measurement
    try:
        require_quiet_machine(F.max_load)
    except BusyMachineError as err:
        raise FlagError("max_load", str(err)) from None

    def progress(done: int, total: int) -> None:
        if done == 1 or done == total or done % 20 == 0:
            print(f"{done}/{total} models converted", flush=True)

    table = measurement.measure(space, num_threads=F.threads, runs=F.runs or 20, progress=progress,
                                tflite_format=tflite_format, rounds=F.rounds)
    latency_table.save(table, out)
    print(f"{tflite_format} table of {len(table.op_ms)} cells x {len(table.op_ms[0])} operations -> {out}")
    return 0


def export() -> int:
    from nse_tf.cost import phone_kit as latency_kit

    space, tflite_format, _ = search_settings()
    if not F.out:
        raise FlagError("out", "is required: the kit's directory")
    if os.path.exists(os.path.join(F.out, latency_kit.MANIFEST)) and not F.overwrite:
        raise FlagError("out", f"{F.out} already holds a kit; pass --overwrite to write it again")
    check_out(F.out, directory=True)
    pieces = latency_kit.export_kit(space, F.out, tflite_format, num_threads=F.threads, runs=F.runs or 100)
    print(f"{len(pieces)} {tflite_format} models -> {F.out}; on a machine with adb: {F.out}/{latency_kit.SCRIPT}, "
          f"then python tools/latency_table.py import {F.out} --out=<table.json>")
    return 0


def import_(kit_dir: str) -> int:
    from nse_tf.cost import latency_table
    from nse_tf.cost import phone_kit as latency_kit

    if not F.out:
        raise FlagError("out", "is required: the table JSON to write")
    check_out(F.out)
    try:
        table = latency_kit.import_kit(kit_dir)
    except latency_kit.KitError as err:
        raise FlagError("kit", str(err)) from None
    latency_table.save(table, F.out)
    print(f"table of {len(table.op_ms)} cells from {table.device} -> {F.out}")
    return 0


def main(argv: list[str]) -> int:
    usage = "usage: latency_table.py measure|export --search_flags=FILE [--out=...] | import DIR --out=FILE"
    try:
        if len(argv) < 2 or argv[1] not in ("measure", "export", "import"):
            raise FlagError("command", f"expected measure, export or import; {usage}")
        if argv[1] == "import":
            if len(argv) != 3:
                raise FlagError("command", f"import takes one kit directory; {usage}")
            return import_(argv[2])
        if len(argv) != 2:
            raise FlagError("command", f"unexpected arguments {argv[2:]}; {usage}")
        if F.threads < 1 or (F.runs is not None and F.runs < 1):
            raise FlagError("threads" if F.threads < 1 else "runs", "must be >= 1")
        if F.rounds < 1:
            raise FlagError("rounds", f"must be >= 1, got {F.rounds}")
        return measure() if argv[1] == "measure" else export()
    except FlagError as err:
        message = str(err).removeprefix("--kit: ")
        print(f"latency_table.py: error: {message}", file=sys.stderr)
        return 2
    except Exception as err:  # the disk filled, or --out became unwritable, while writing: one line
        if OUT["path"] is None or (line := output_error_line(err, "out", OUT["path"])) is None:
            raise
        print(f"latency_table.py: error: {line}", file=sys.stderr)
        return 2


def run() -> None:
    """``python tools/latency_table.py``."""
    app.run(lambda argv: sys.exit(main(argv)), flags_parser=flags_parser("latency_table.py"))
