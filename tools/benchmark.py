"""Benchmarks of the search machinery, each measured in one process on synthetic data.

A thin entry point; the flags and the work live in ``nse_tf/cli/benchmark.py``.
"""

from nse_tf.cli.benchmark import run

if __name__ == "__main__":
    run()
