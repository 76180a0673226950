"""The phone kit (issue 18): export the table's models, run them with a stand-in adb, import the outputs.

The fixtures in tests/fixtures/benchmark_model/ are benchmark_model outputs in the tool's own format (its
BenchmarkLoggingListener lines: two ``count=`` lines, warm-up then timed runs, and the "Inference timings
in us" summary), one as TensorFlow 2.x builds print it and one with LiteRT's ``INFO:`` prefixes and the
percentiles newer builds add.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nse_tf.cost import latency_table
from nse_tf.cost import phone_kit as latency_kit
from nse_tf.cost.pieces import table_pieces
from nse_tf.space.macro import MacroSpace

# One N cell, then one R cell (28 -> 14): two cell shapes, as in tests/test_latency.py.
SPACE = MacroSpace(layout="R", counts=(1, 0), channels=(8, 16), pool=("mb_k3_t1", "mb_k3_t3"), input_size=28,
                   input_channels=1, num_classes=10, stem_stride=1, head_channels=32, mean=(72.9,), std=(90.0,))

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "benchmark_model")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fixture(name: str) -> str:
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        return f.read()


def test_parses_the_timed_runs_of_both_output_styles():
    assert latency_kit.parse_benchmark_output(fixture("tflite_2_x.txt"), "x") == pytest.approx(0.06425)  # avg
    assert latency_kit.parse_benchmark_output(fixture("litert_info_median.txt"), "x") == pytest.approx(0.049)
    summary_only = "Inference timings in us: Init: 3118, First inference: 412, Warmup (avg): 66, Inference (avg): 80.5"
    assert latency_kit.parse_benchmark_output(summary_only, "x") == pytest.approx(0.0805)


def test_a_failed_run_is_one_error_naming_the_output_file():
    with pytest.raises(latency_kit.KitError, match=r"outputs/shape01_op00\.txt: no benchmark_model timings.*"
                                                   r"Benchmarking failed"):
        latency_kit.parse_benchmark_output(fixture("failed_to_load.txt"), "outputs/shape01_op00.txt")


FAKE_ADB = r'''#!/usr/bin/env python3
"""Stand-in for adb: shell commands of the kit's script, benchmark_model answered from a fixture."""
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_ADB_LOG"], "a") as log:
    log.write(" ".join(args) + "\n")
if args[0] == "push":
    assert os.path.exists(args[1]), args[1]
elif args[:2] == ["shell", "getprop"]:
    print("Pixel 7")
elif args[0] == "shell" and any(a.startswith("--graph=") for a in args):
    graph = next(a for a in args if a.startswith("--graph="))[len("--graph="):]
    name = os.path.basename(graph)[:-len(".tflite")]
    us = json.load(open(os.environ["FAKE_TIMES"]))[name]
    text = open(os.environ["FAKE_TEMPLATE"]).read()
    print(text.replace("avg=64.25", f"avg={us}").replace("Inference (avg): 64.25", f"Inference (avg): {us}"))
'''


def run_script(kit, tmp_path, times_us):
    adb = tmp_path / "adb"
    adb.write_text(FAKE_ADB)
    adb.chmod(0o755)
    (tmp_path / "times.json").write_text(json.dumps(times_us))
    env = dict(os.environ, ADB=str(adb), FAKE_ADB_LOG=str(tmp_path / "adb.log"), FAKE_TIMES=str(tmp_path / "times.json"),
               FAKE_TEMPLATE=os.path.join(FIXTURES, "tflite_2_x.txt"))
    return subprocess.run([os.path.join(kit, latency_kit.SCRIPT), "/data/local/tmp/benchmark_model"], env=env,
                          capture_output=True, text=True, check=True)


def test_export_run_on_a_device_and_import_give_the_table(tmp_path):
    kit = str(tmp_path / "kit")
    pieces = latency_kit.export_kit(SPACE, kit, "float32", num_threads=1, runs=50)
    names = sorted(os.listdir(os.path.join(kit, "models")))
    assert names == sorted(f"{p.name}.tflite" for p in pieces) and len(pieces) == 1 + 2 * (2 + 1) + 2
    # every model loads in LiteRT and takes the input the table's piece expects
    from ai_edge_litert.interpreter import Interpreter

    stem = Interpreter(model_path=os.path.join(kit, "models", "stem.tflite"))
    assert list(stem.get_input_details()[0]["shape"]) == [1, 28, 28, 1]
    times_us = {p.name: 10.0 + 3 * k for k, p in enumerate(pieces)}
    run_script(kit, tmp_path, times_us)
    calls = (tmp_path / "adb.log").read_text().splitlines()
    bench = [c for c in calls if "--graph=" in c]
    assert len(bench) == len(pieces) and all("--num_threads=1" in c and "--num_runs=50" in c for c in bench)
    table = latency_kit.import_kit(kit)
    overhead = times_us["overhead"] / 1000
    assert table.op_ms[0][1] == pytest.approx(times_us["shape00_op01"] / 1000 - overhead)
    assert table.add_ms[1] == pytest.approx(times_us["shape01_add"] / 1000 - overhead)
    assert table.fixed_ms == pytest.approx((times_us["stem"] + times_us["head"]) / 1000 - overhead)
    assert table.device.startswith("Pixel 7") and table.tflite_format == "float32" and table.runs == 50
    path = str(tmp_path / "phone.json")
    latency_table.save(table, path)
    assert latency_table.load(path, SPACE, "float32") == table  # what --latency_table reads
    # rerunning the script keeps finished outputs: nothing is benchmarked again
    run_script(kit, tmp_path, times_us)
    assert len([c for c in (tmp_path / "adb.log").read_text().splitlines() if "--graph=" in c]) == len(pieces)
    # a kit written again (another form, say) starts without the old outputs, which the script would reuse
    latency_kit.export_kit(SPACE, kit, "float32", num_threads=1, runs=50)
    assert not os.path.exists(os.path.join(kit, "outputs"))


def test_cli_measure_refuses_a_search_that_is_not_a_latency_search_and_import_names_a_missing_output(tmp_path):
    flagfile = tmp_path / "s.flags"
    flagfile.write_text("--run_dir=x\n--cost=macs\n")
    tool = [sys.executable, os.path.join(ROOT, "tools", "latency_table.py")]
    out = subprocess.run(tool + ["measure", f"--search_flags={flagfile}"], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"latency_table.py: error: --search_flags: {flagfile} is not a latency search (--cost=latency)"]
    kit = tmp_path / "kit"
    (kit / "outputs").mkdir(parents=True)
    (kit / latency_kit.MANIFEST).write_text(json.dumps({
        "format": latency_kit.KIT_FORMAT, "version": 1, "space": SPACE.to_dict(), "tflite_format": "float32",
        "num_threads": 1, "runs": 50, "warmup": 10,
        "pieces": [{"name": p.name} for p in table_pieces(SPACE)]}))
    out = subprocess.run(tool + ["import", str(kit), f"--out={tmp_path / 't.json'}"], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"latency_table.py: error: {kit}/outputs/overhead.txt: missing; run run_on_device.sh (again) to time "
        "every model"]


def test_space_flags_are_read_from_a_search_flagfile_with_its_includes(tmp_path):
    from nse_tf.space.macro import space_from_flags
    from nse_tf.utils.flagfiles import FlagfileError, read_flagfile

    (tmp_path / "base.flags").write_text("# shared\n--pool=mb19\n--channels=8,16,24,32,48,64,128\n")
    (tmp_path / "s.flags").write_text(f"--flagfile={tmp_path / 'base.flags'}\n--counts=0,1,1,1,0,0\n"
                                      "--channels=8,16,28,36,52,72,144\n--cost=latency\n")
    space = space_from_flags(read_flagfile(str(tmp_path / "s.flags")))
    assert space.channels == (8, 16, 28, 36, 52, 72, 144) and space.counts == (0, 1, 1, 1, 0, 0)
    assert len(space.get_pool()) == 19
    (tmp_path / "loop.flags").write_text(f"--flagfile={tmp_path / 'loop.flags'}\n")
    with pytest.raises(FlagfileError, match="includes itself"):
        read_flagfile(str(tmp_path / "loop.flags"))
    with pytest.raises(ValueError, match="--counts=a,b is not valid"):
        space_from_flags({"counts": "a,b"})
