"""Print the published NSE architectures with their MACs and parameters, built as Keras models.

A thin entry point; the flags and the work live in ``nse_tf/cli/list_models.py``.
"""

from nse_tf.cli.list_models import run

if __name__ == "__main__":
    run()
