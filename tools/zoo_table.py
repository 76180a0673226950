"""Print the zoo table of README.md from the entries' metadata: ``python tools/zoo_table.py [--write_readme]``.

The README's table is this script's output verbatim (a test checks it), so its numbers are the
measured ones in zoo/*/metadata.json.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HEADER = ("| name | dataset | top-1 | MACs | params | float32 / int8 .tflite | int8 top-1 | "
          "LiteRT latency float32 / int8 (this CPU, 1 thread) |\n|---|---|---|---|---|---|---|---|")


def _row(meta: dict) -> str:
    top1 = "-" if meta["top1"] is None else f"{100 * meta['top1']:.2f}%"
    tflite = meta.get("tflite") or {}
    if tflite:
        sizes = " / ".join(f"{tflite[v]['size_bytes'] / 1024:.0f} KiB" for v in ("float32", "int8"))
        int8 = f"{100 * tflite['int8']['top1']:.2f}%"
        latency = " / ".join(f"{tflite[v]['litert_latency_ms']['median_ms']:.2f} ms" for v in ("float32", "int8"))
    else:
        sizes = int8 = latency = "-"
    return (f"| {meta['name']} | {meta['dataset']} | {top1} | {meta['macs'] / 1e6:.2f}M | "
            f"{meta['params'] / 1e6:.3f}M | {sizes} | {int8} | {latency} |")


def zoo_table() -> str:
    from nse_tf import zoo

    return "\n".join([HEADER] + [_row(zoo.metadata(name)) for name in zoo.list_models()])


START, END = "<!-- zoo-table: output of tools/zoo_table.py -->", "<!-- /zoo-table -->"
README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def readme_table(readme: str = README) -> str:
    """The table as it stands between the markers in README.md."""
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    return text[text.index(START) + len(START):text.index(END)].strip()


def write_readme(readme: str = README) -> None:
    from nse_tf.io_utils import atomic_write_text

    with open(readme, encoding="utf-8") as f:
        text = f.read()
    head, rest = text.split(START, 1)
    atomic_write_text(readme, f"{head}{START}\n{zoo_table()}\n{END}{rest.split(END, 1)[1]}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write_readme"]:
        write_readme()
    elif sys.argv[1:]:
        sys.exit("usage: python tools/zoo_table.py [--write_readme]")
    print(zoo_table())
