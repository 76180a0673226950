"""The comparison table of issue 14: NSE's pick, the random-search pick and the baseline, several seeds each.

A thin entry point; the flags and the work live in ``nse_tf/cli/compare.py``.
"""

from nse_tf.cli.compare import run

if __name__ == "__main__":
    run()
