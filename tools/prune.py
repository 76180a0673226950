"""Magnitude pruning of a zoo entry: ``python tools/prune.py --model=<zoo entry> [--sparsity=0.5] [--epochs=3]``.

A thin entry point; the flags and the work live in ``nse_tf/cli/prune.py``.
"""

from nse_tf.cli.prune import run

if __name__ == "__main__":
    run()
