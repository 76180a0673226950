"""Print the zoo table of README.md from the entries' metadata: ``python tools/zoo_table.py [--write_readme]``.

A thin entry point; the flags and the work live in ``nse_tf/cli/zoo_table.py``.
"""

from nse_tf.cli.zoo_table import run

if __name__ == "__main__":
    run()
