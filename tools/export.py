"""Export a network to SavedModel, TFLite and ONNX, verified: ``python tools/export.py --help`` (installed: ``nse-export``).

A thin entry point; the flags and the work live in ``nse_tf/cli/export.py``.
"""

from nse_tf.cli.export import run

if __name__ == "__main__":
    run()
