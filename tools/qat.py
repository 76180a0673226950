"""Quantization-aware fine-tuning of a zoo entry: ``python tools/qat.py --model=<zoo entry> [--epochs=3]``.

A thin entry point; the flags and the work live in ``nse_tf/cli/qat.py``.
"""

from nse_tf.cli.qat import run

if __name__ == "__main__":
    run()
