"""Retrain a network from scratch (any Keras backend), resumable: ``python tools/train.py --help`` (installed: ``nse-train``).

A thin entry point; the flags and the work live in ``nse_tf/cli/train.py``.
"""

from nse_tf.cli.train import run

if __name__ == "__main__":
    run()
