"""The accuracy-latency plane of issue 30: the width family, NSE's picks and the random control.

A thin entry point; the flags and the work live in ``nse_tf/cli/plane.py``.
"""

from nse_tf.cli.plane import run

if __name__ == "__main__":
    run()
