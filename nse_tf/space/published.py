"""The published architectures (section 7 of the method), as named network specs."""

from __future__ import annotations

from nse_tf.space.architecture import Architecture, NetworkSpec
from nse_tf.space.macro import MacroSpace

_PUBLISHED_CELLS: dict[str, tuple[MacroSpace, list[list[int]]]] = {
    "NSENet-27": (
        MacroSpace(layout="NER", counts=(1, 2, 2, 2, 2, 3), channels=(16, 24, 40, 80, 96, 192, 320), scale=1.04,
                   pool="mac27"),
        [[0], [6], [3], [0], [16], [3], [9], [11, 17], [9, 2], [12], [1, 6], [9, 12], [9], [17, 14], [21], [3],
         [13], [19, 3, 14]],
    ),
    "NSENet": (
        MacroSpace(layout="NER", counts=(1, 1, 2, 3, 2, 3), channels=(16, 24, 40, 80, 96, 192, 320), scale=1.045,
                   pool="mac72"),
        [[0], [34], [3], [52], [35], [38], [17, 11, 49], [41], [35], [12], [1, 10, 6], [9], [0, 9], [35, 52, 61],
         [10, 32], [3, 57], [13], [3, 19, 44]],
    ),
    "NSENet-GPU": (
        MacroSpace(layout="NR", counts=(0, 1, 3, 4, 2), channels=(16, 32, 64, 128, 256), scale=1.0, pool="mb19"),
        [[15], [11], [1, 17], [16, 1], [11], [11], [2, 7], [3], [1, 6], [11], [11, 6], [8, 2], [0, 1, 8, 11],
         [2, 6, 8, 12, 14]],
    ),
}
# Figures of the method's section 7 (224x224, 1000 classes), used by the tests as ground truth.
PUBLISHED_COST = {"NSENet-27": (326e6, 4.57e6), "NSENet": (331e6, 4.56e6), "NSENet-GPU": (1.47e9, 15.7e6)}


def published_names() -> list[str]:
    return list(_PUBLISHED_CELLS)


def published_spec(name: str) -> NetworkSpec:
    if name not in _PUBLISHED_CELLS:
        raise ValueError(f"unknown published architecture {name!r}; known: {', '.join(_PUBLISHED_CELLS)}")
    space, cells = _PUBLISHED_CELLS[name]
    return NetworkSpec(space, Architecture.from_cells(cells, space.get_pool()), name)
