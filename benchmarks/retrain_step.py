"""Retraining step time with glibc's default allocator behaviour vs ``nse_tf.utils.memory.keep_freed_memory``.

    python benchmarks/retrain_step.py [--arch=configs/archs/mobilenetv2_style_fmnist.json] [--steps=40]
        [--batch_size=128] [--repeats=2] [--threads=0]

Each measurement is a fresh process (the allocator setting is process-wide and cannot be undone):
it builds the network and the real retraining input (``training.make_training_dataset`` over
Fashion-MNIST), compiles it as ``tools/train.py`` does, runs one untimed epoch of ``--steps`` steps
(tracing), then times a second one and counts the minor page faults it took. The two variants
alternate ``--repeats`` times; medians and the ratio are printed. Compare ratios from one run only:
the machine is shared and noisy.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from absl import app, flags  # noqa: E402

ARCH = flags.DEFINE_string("arch", "configs/archs/mobilenetv2_style_fmnist.json", "Network to train.")
STEPS = flags.DEFINE_integer("steps", 40, "Steps of the timed epoch (and of the untimed one before it).")
BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Batch size.")
REPEATS = flags.DEFINE_integer("repeats", 2, "Alternating measurements of each variant.")
THREADS = flags.DEFINE_integer("threads", 0, "TensorFlow CPU threads (0: its default).")
CHILD = flags.DEFINE_enum("child", None, ["default", "keep"], "Internal: measure one variant in this process.")


def measure_here(keep: bool) -> dict[str, float]:
    from nse_tf.utils.memory import keep_freed_memory

    if keep and not keep_freed_memory():
        raise SystemExit("keep_freed_memory() is not supported here (not glibc)")
    from nse_tf import resolve_spec
    from nse_tf.data.arrays import load_arrays
    from nse_tf.nets.child import build_child
    from nse_tf.train.augment import make_training_dataset
    from nse_tf.train.config import TrainConfig
    from nse_tf.train.device import set_cpu_threads
    from nse_tf.train.optimizers import compile_model

    set_cpu_threads(THREADS.value)
    config = TrainConfig(batch_size=BATCH_SIZE.value)
    data = load_arrays("fashion_mnist")
    model = build_child(resolve_spec(ARCH.value), dropout=config.dropout)
    compile_model(model, config, STEPS.value)
    dataset = make_training_dataset(data.x_train, data.y_train, data.num_classes, config)
    model.fit(dataset, epochs=1, steps_per_epoch=STEPS.value, shuffle=False, verbose=0)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    model.fit(dataset, epochs=2, initial_epoch=1, steps_per_epoch=STEPS.value, shuffle=False, verbose=0)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"ms_per_step": 1000 * seconds / STEPS.value, "faults_per_step": (after.ru_minflt - usage.ru_minflt) / STEPS.value,
            "system_share": (after.ru_stime - usage.ru_stime) / max(1e-9, (after.ru_stime - usage.ru_stime)
                                                                    + (after.ru_utime - usage.ru_utime))}


def main(argv: list[str]) -> None:
    if CHILD.value:
        print(json.dumps(measure_here(CHILD.value == "keep")))
        return
    results: dict[str, list[dict[str, float]]] = {"default": [], "keep": []}
    for _ in range(REPEATS.value):
        for variant in results:
            out = subprocess.run([sys.executable, __file__, f"--child={variant}", f"--arch={ARCH.value}",
                                  f"--steps={STEPS.value}", f"--batch_size={BATCH_SIZE.value}",
                                  f"--threads={THREADS.value}"], capture_output=True, text=True, cwd=REPO)
            if out.returncode != 0:
                raise SystemExit(f"{variant} measurement failed:\n{out.stderr[-3000:]}")
            results[variant].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{'allocator':<22} {'ms/step':>9} {'faults/step':>12} {'kernel share':>13}")
    medians = {}
    for variant, label in (("default", "glibc default"), ("keep", "keep_freed_memory()")):
        med = {k: statistics.median(r[k] for r in results[variant]) for k in results[variant][0]}
        medians[variant] = med
        print(f"{label:<22} {med['ms_per_step']:9.0f} {med['faults_per_step']:12.0f} {med['system_share']:13.0%}")
    print(f"speed-up: {medians['default']['ms_per_step'] / medians['keep']['ms_per_step']:.2f}x "
          f"({ARCH.value}, batch {BATCH_SIZE.value}, {STEPS.value} timed steps, {REPEATS.value} runs each)")
    print(json.dumps({"speedup": medians["default"]["ms_per_step"] / medians["keep"]["ms_per_step"],
                      **{f"{v}_ms_per_step": m["ms_per_step"] for v, m in medians.items()}}))


if __name__ == "__main__":
    app.run(main)
