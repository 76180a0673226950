"""The short stand-alone proxy of network JSONs on a search's held-out split.

A thin entry point; the flags and the work live in ``nse_tf/cli/proxy.py``.
"""

from nse_tf.cli.proxy import run

if __name__ == "__main__":
    run()
