"""Random search, the control a weight-sharing search must beat (Yu et al., 2019).

A thin entry point; the flags and the work live in ``nse_tf/cli/random_search.py``.
"""

from nse_tf.cli.random_search import run

if __name__ == "__main__":
    run()
