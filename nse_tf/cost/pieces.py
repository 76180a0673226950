"""The models a latency table times (its pieces), as Keras models at batch 1.

Each distinct (cell shape, pool operation) is its own one-operation model; cells of one shape share their
pieces. Beside them: one element-wise add per cell shape (what a cell's branches pay to be summed), the stem
and the head (the table's fixed part, as exported models run them), and a one-element model whose time is the
interpreter's per-call overhead. The list is data (``table_pieces``): the same pieces are timed on this CPU
(``measurement``) or written for a phone (``phone_kit``), and their names are the files' stems.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nse_tf.space.macro import CellSpec, MacroSpace
from nse_tf.space.ops import out_size


def _op_model(space: MacroSpace, cell: CellSpec, op_index: int) -> Any:
    import keras

    from nse_tf.nets.layers import Namespace, op_layers

    op = space.get_pool().ops[op_index]
    inputs = keras.Input((*cell.input_hw, cell.cin), batch_size=1)
    layers = op_layers(Namespace.keras3(), op, cell.cin, cell.cout, cell.stride, "op", se=space.se,
                       activation=space.activation)
    return keras.Model(inputs, layers(inputs, training=False))


def _add_model(hw: tuple[int, int], channels: int) -> Any:
    import keras

    a, b = keras.Input((*hw, channels), batch_size=1), keras.Input((*hw, channels), batch_size=1)
    return keras.Model([a, b], keras.layers.Add()([a, b]))


def _fixed_models(space: MacroSpace) -> list[Any]:
    """Preprocessing + stem, and head + classifier at the last cell's output size (as exported models run)."""
    import keras

    from nse_tf.nets.child import entry_layers, exit_layers
    from nse_tf.nets.layers import Namespace

    ns = Namespace.keras3()
    inputs = keras.Input((space.input_size, space.input_size, space.input_channels), batch_size=1)
    x = inputs
    for layer in entry_layers(ns, space):
        x = layer(x)
    stem = keras.Model(inputs, x)
    size, channels = space.stem_hw, space.scaled_channels[0]
    for cell in space.cells():
        size, channels = out_size(cell.input_hw[0], cell.stride), cell.cout
    head_in = keras.Input((size, size, channels), batch_size=1)
    x = head_in
    for layer in exit_layers(ns, space):
        x = layer(x)
    return [stem, keras.Model(head_in, x)]


def _cell_key(cell: CellSpec) -> tuple:
    return cell.input_hw, cell.cin, cell.cout, cell.stride


@dataclasses.dataclass(frozen=True)
class TablePiece:
    """One timed model of a table: the invoke overhead, one operation or one add of a distinct cell shape, the
    stem or the head. ``name`` is its file stem wherever the pieces are written (the phone kit)."""

    name: str
    kind: str  # overhead | op | add | stem | head
    shape: int | None = None  # index into table_shapes(space)
    op: int | None = None  # pool index
    pixels_in: bool = False
    logits_out: bool = False


def table_shapes(space: MacroSpace) -> list[CellSpec]:
    """One cell per distinct (input size, channels in and out, stride): cells of one shape share entries."""
    shapes: dict[tuple, CellSpec] = {}
    for cell in space.cells():
        shapes.setdefault(_cell_key(cell), cell)
    return list(shapes.values())


def cell_shapes(space: MacroSpace) -> list[int]:
    """Each cell's index into ``table_shapes(space)``: the shape whose pieces price it."""
    index = {_cell_key(cell): s for s, cell in enumerate(table_shapes(space))}
    return [index[_cell_key(cell)] for cell in space.cells()]


def table_pieces(space: MacroSpace) -> list[TablePiece]:
    """Every model a table times, in measuring order: overhead; each shape's operations, then its add; stem, head."""
    pieces = [TablePiece("overhead", "overhead")]
    for s, _ in enumerate(table_shapes(space)):
        pieces += [TablePiece(f"shape{s:02d}_op{i:02d}", "op", s, i) for i in range(len(space.get_pool()))]
        pieces.append(TablePiece(f"shape{s:02d}_add", "add", s))
    return pieces + [TablePiece("stem", "stem", pixels_in=True), TablePiece("head", "head", logits_out=True)]


def build_piece(space: MacroSpace, piece: TablePiece) -> Any:
    """The Keras model of one piece (batch 1)."""
    if piece.kind == "overhead":
        return _add_model((1, 1), 1)
    if piece.kind in ("stem", "head"):
        return _fixed_models(space)[piece.kind == "head"]
    cell = table_shapes(space)[piece.shape]
    if piece.kind == "op":
        return _op_model(space, cell, piece.op)
    return _add_model((out_size(cell.input_hw[0], cell.stride), out_size(cell.input_hw[1], cell.stride)), cell.cout)
