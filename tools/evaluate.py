"""Measure a zoo entry or a training run on the whole test split: ``python tools/evaluate.py --help`` (installed: ``nse-evaluate``).

A thin entry point; the flags and the work live in ``nse_tf/cli/evaluate.py``.
"""

from nse_tf.cli.evaluate import run

if __name__ == "__main__":
    run()
