"""The LiteRT latency lookup table of a latency search: measured here, or on a phone with the kit.

A thin entry point; the flags and the work live in ``nse_tf/cli/latency_table.py``.
"""

from nse_tf.cli.latency_table import run

if __name__ == "__main__":
    run()
