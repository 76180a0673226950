"""Does the supernet rank architectures as training them alone does?

A thin entry point; the flags and the work live in ``nse_tf/cli/ranking.py``.
"""

from nse_tf.cli.ranking import run

if __name__ == "__main__":
    run()
