"""The NSE search: rounds of supernet training and evolution, resumable: ``python tools/search.py --help`` (installed: ``nse-search``).

A thin entry point; the flags and the work live in ``nse_tf/cli/search.py``.
"""

from nse_tf.cli.search import run

if __name__ == "__main__":
    run()
