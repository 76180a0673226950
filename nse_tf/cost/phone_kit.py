"""The phone kit: a latency table measured on an Android device instead of this CPU.

``export_kit`` writes every piece the table times (``pieces.table_pieces``) as its own ``.tflite``, a
``manifest.json`` that says which piece each file is, and ``run_on_device.sh``, which pushes the files with
``adb`` and runs LiteRT's ``benchmark_model`` binary over each one on the device, collecting every output as
``outputs/<piece>.txt`` (resumable: finished outputs are kept). ``import_kit`` parses those outputs and
assembles the same table JSON that ``--latency_table`` reads, so a search can penalise what the phone pays.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from typing import Any

from nse_tf.cost.conversion import convert_piece
from nse_tf.cost.latency_table import TFLITE_FORMATS, LatencyTable
from nse_tf.cost.measurement import assemble
from nse_tf.cost.pieces import TablePiece, build_piece, table_pieces
from nse_tf.space.macro import MacroSpace
from nse_tf.utils.atomic import atomic_write_bytes, atomic_write_json

KIT_FORMAT = "nse_tf.latency_kit"
KIT_VERSION = 1
MANIFEST = "manifest.json"
SCRIPT = "run_on_device.sh"


class KitError(ValueError):
    """A kit directory or a benchmark_model output that cannot be read; the message names the file."""


def _script(num_threads: int, runs: int, warmup: int) -> str:
    return f"""#!/usr/bin/env bash
# Times every model of this kit on an Android device with LiteRT's benchmark_model (one after another, XNNPACK,
# {num_threads} thread(s), {runs} runs after {warmup} warm-up runs) and keeps each output in outputs/<model>.txt.
# Usage: ./{SCRIPT} [PATH_OF_BENCHMARK_MODEL_ON_THE_DEVICE]   (default /data/local/tmp/benchmark_model)
# Environment: ADB (default adb; add -s SERIAL for one of several devices), KIT_DEVICE_DIR (default
# /data/local/tmp/nse_latency_kit). Rerun after an interruption: finished outputs are kept.
# Then, on the host: python tools/latency_table.py import <this directory> --out=<table.json>
set -euo pipefail
cd "$(dirname "$0")"
BENCHMARK="${{1:-/data/local/tmp/benchmark_model}}"
ADB="${{ADB:-adb}}"
DEVICE_DIR="${{KIT_DEVICE_DIR:-/data/local/tmp/nse_latency_kit}}"
mkdir -p outputs
$ADB shell mkdir -p "$DEVICE_DIR"
$ADB shell getprop ro.product.model > outputs/device.part && mv outputs/device.part outputs/device.txt
for model in models/*.tflite; do
  name="$(basename "$model" .tflite)"
  if [ -s "outputs/$name.txt" ]; then continue; fi
  $ADB push "$model" "$DEVICE_DIR/$name.tflite" > /dev/null
  $ADB shell "$BENCHMARK" --graph="$DEVICE_DIR/$name.tflite" --num_threads={num_threads} --use_xnnpack=true \\
      --warmup_runs={warmup} --num_runs={runs} --min_secs=0 > "outputs/$name.part" 2>&1
  mv "outputs/$name.part" "outputs/$name.txt"
  echo "$name"
done
$ADB shell rm -r "$DEVICE_DIR"
"""


def export_kit(space: MacroSpace, out_dir: str, tflite_format: str = "float32", num_threads: int = 1,
               runs: int = 100, warmup: int = 10) -> list[TablePiece]:
    """Write the kit for ``space``: models/<piece>.tflite, manifest.json and run_on_device.sh."""
    import keras

    if tflite_format not in TFLITE_FORMATS:
        raise ValueError(f"tflite_format must be one of {', '.join(TFLITE_FORMATS)}, got {tflite_format!r}")
    pieces = table_pieces(space)
    for folder in ("models", "outputs"):  # a kit written again starts clean: old outputs would be reused
        shutil.rmtree(os.path.join(out_dir, folder), ignore_errors=True)
    os.makedirs(os.path.join(out_dir, "models"), exist_ok=True)
    for piece in pieces:
        atomic_write_bytes(os.path.join(out_dir, "models", f"{piece.name}.tflite"),
                           convert_piece(build_piece(space, piece), piece, tflite_format))
        keras.backend.clear_session(free_memory=False)
    script = os.path.join(out_dir, SCRIPT)
    atomic_write_bytes(script, _script(num_threads, runs, warmup).encode())
    os.chmod(script, 0o755)
    atomic_write_json(os.path.join(out_dir, MANIFEST), {
        "format": KIT_FORMAT, "version": KIT_VERSION, "space": space.to_dict(), "tflite_format": tflite_format,
        "num_threads": num_threads, "runs": runs, "warmup": warmup,
        "pieces": [{"name": p.name, "kind": p.kind, "shape": p.shape, "op": p.op} for p in pieces]})
    return pieces


_STATS = re.compile(r"count=(\d+)((?:\s+\w+=[-+\d.eE]+)+)")
_AVERAGE = re.compile(r"Inference timings in us:.*Inference \(avg\):\s*([-+\d.eE]+)")


def parse_benchmark_output(text: str, source: str) -> float:
    """Milliseconds per invoke in one ``benchmark_model`` output: the median of the timed runs where the tool
    prints one (``median=``, newer versions), else their average. The last ``count=`` line is the timed runs
    (the first is the warm-up)."""
    stats = _STATS.findall(text)
    if stats:
        fields = dict(field.split("=") for field in stats[-1][1].split())
        value = fields.get("median", fields.get("avg"))
        if value is not None:
            return float(value) / 1000.0
    average = _AVERAGE.search(text)
    if average:
        return float(average.group(1)) / 1000.0
    last = next((line for line in reversed(text.strip().splitlines()) if line.strip()), "(empty)")
    raise KitError(f"{source}: no benchmark_model timings (no 'count=... avg=...' line); its last line: {last[:120]}")


def read_manifest(kit_dir: str) -> dict[str, Any]:
    path = os.path.join(kit_dir, MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise KitError(f"{path}: missing (not a kit written by tools/latency_table.py export)") from None
    except json.JSONDecodeError as err:
        raise KitError(f"{path}: not JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != KIT_FORMAT:
        raise KitError(f"{path}: not an nse_tf latency kit manifest")
    if manifest.get("version") != KIT_VERSION:
        raise KitError(f"{path}: kit version {manifest.get('version')!r} is not {KIT_VERSION}")
    return manifest


def import_kit(kit_dir: str) -> LatencyTable:
    """The latency table of a kit whose ``outputs/`` the device script has filled."""
    manifest = read_manifest(kit_dir)
    space = MacroSpace.from_dict(manifest["space"])
    expected = [p.name for p in table_pieces(space)]
    if [p.get("name") for p in manifest.get("pieces", [])] != expected:
        raise KitError(f"{os.path.join(kit_dir, MANIFEST)}: its pieces are not those of its space "
                       "(written by another version?); export the kit again")
    times: dict[str, float] = {}
    for name in expected:
        path = os.path.join(kit_dir, "outputs", f"{name}.txt")
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                times[name] = parse_benchmark_output(f.read(), path)
        except FileNotFoundError:
            raise KitError(f"{path}: missing; run {SCRIPT} (again) to time every model") from None
    try:
        with open(os.path.join(kit_dir, "outputs", "device.txt"), encoding="utf-8") as f:
            device = f.read().strip() or "Android device"
    except FileNotFoundError:
        device = "Android device"
    return assemble(space, times,
                    device=f"{device}, LiteRT benchmark_model {manifest['tflite_format']}, XNNPACK, batch 1",
                    num_threads=int(manifest["num_threads"]), runs=int(manifest["runs"]),
                    tflite_format=str(manifest["tflite_format"]))
