"""Write one zoo entry from a finished training run: ``python tools/make_zoo_entry.py --help`` (installed: ``nse-zoo``).

A thin entry point; the flags and the work live in ``nse_tf/cli/zoo_entry.py``.
"""

from nse_tf.cli.zoo_entry import run

if __name__ == "__main__":
    run()
