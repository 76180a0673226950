"""Write the MobileNetV2-style baseline matched to a searched network:

A thin entry point; the flags and the work live in ``nse_tf/cli/make_baseline.py``.
"""

from nse_tf.cli.make_baseline import run

if __name__ == "__main__":
    run()
