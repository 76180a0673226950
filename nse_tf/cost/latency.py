"""Latency lookup table for the latency-constrained search (section 5): what each operation costs in each cell.

The released latency search charges an architecture the table entry of every operation it uses, one
element-wise add per residual branch (N cell) and per extra branch of an R/E cell, and a fixed part for
stem and head. We measure every entry here with LiteRT on this CPU: each distinct (cell shape, operation)
becomes its own one-operation ``.tflite`` (batch 1, XNNPACK, ``num_threads`` threads, BN folded as in
exported models), timed by its median invoke (over interleaved rounds of all pieces, so the machine's
drift hits every piece alike) minus that of a one-element model, so the interpreter's per-call overhead
is charged once (in the fixed part), not once per operation. The table is
of one TFLite form (``tflite_format``): ``float32``, or ``int8`` as phones run the zoo's int8 files (full
integer quantization; int8 tensors between operations, the stem taking uint8 pixels and the head giving
float logits, like the exported files). A table measured on a phone in the same JSON format can replace
the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from typing import Any, Callable, Iterator, Sequence

from nse_tf.space.macro import CellSpec, MacroSpace
from nse_tf.space.ops import out_size
from nse_tf.utils.atomic import atomic_write_json

TABLE_FORMAT = "nse_tf.latency_table"
TABLE_VERSION = 1
TFLITE_FORMATS = ("float32", "int8")


class LatencyTableError(ValueError):
    """A latency table file that cannot be read or was measured for another space."""


@dataclasses.dataclass(frozen=True)
class LatencyTable:
    """Milliseconds per (cell, pool operation), per cell add, and for the fixed part of one space."""

    space: dict[str, Any]
    op_ms: list[list[float]]
    add_ms: list[float]
    fixed_ms: float
    device: str
    num_threads: int
    runs: int
    tflite_format: str = "float32"
    rounds: int = 1  # interleaved rounds of ``runs`` invokes per piece (tables before rounds: one window)

    def to_json(self) -> dict[str, Any]:
        return {"format": TABLE_FORMAT, "version": TABLE_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: Any, source: str) -> "LatencyTable":
        if not isinstance(data, dict) or data.get("format") != TABLE_FORMAT:
            raise LatencyTableError(f"{source}: not an nse_tf latency table")
        if data.get("version") != TABLE_VERSION:
            raise LatencyTableError(f"{source}: latency table version {data.get('version')!r} is not {TABLE_VERSION}")
        try:
            table = cls(space=dict(data["space"]), op_ms=[[float(v) for v in row] for row in data["op_ms"]],
                        add_ms=[float(v) for v in data["add_ms"]], fixed_ms=float(data["fixed_ms"]),
                        device=str(data["device"]), num_threads=int(data["num_threads"]), runs=int(data["runs"]),
                        tflite_format=str(data.get("tflite_format", "float32")),  # tables before int8: float32
                        rounds=int(data.get("rounds", 1)))
        except (KeyError, TypeError, ValueError) as err:
            raise LatencyTableError(f"{source}: corrupted latency table ({type(err).__name__}: {err})") from None
        if table.tflite_format not in TFLITE_FORMATS:
            raise LatencyTableError(f"{source}: tflite_format {table.tflite_format!r} is not one of "
                                    f"{', '.join(TFLITE_FORMATS)}")
        values = [v for row in table.op_ms for v in row] + table.add_ms + [table.fixed_ms]
        if any(not v >= 0 for v in values):  # also catches NaN
            raise LatencyTableError(f"{source}: latencies must be finite and >= 0")
        return table

    def check_matches(self, space: MacroSpace, source: str) -> None:
        """Refuse a table measured for other cells or another pool: its numbers would silently be wrong."""
        if self.space != space.to_dict():
            diffs = sorted(k for k in set(self.space) | set(space.to_dict())
                           if self.space.get(k) != space.to_dict().get(k))
            raise LatencyTableError(f"{source}: measured for another space ({', '.join(diffs)} differ); "
                                    "delete it to measure this space, or pass another --latency_table")
        cells, pool = space.cells(), space.get_pool()
        if len(self.op_ms) != len(cells) or len(self.add_ms) != len(cells):
            raise LatencyTableError(f"{source}: {len(self.op_ms)} cells in the table, {len(cells)} in the space")
        for cell, row in zip(cells, self.op_ms):
            if len(row) != len(pool):
                raise LatencyTableError(f"{source}: {cell.name} has {len(row)} operations, the pool {len(pool)}")


def load(path: str, space: MacroSpace, tflite_format: str | None = None) -> LatencyTable:
    """The table at ``path``, checked against the space (and the TFLite form, when given)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as err:
        raise LatencyTableError(f"{path}: cannot read ({err.strerror})") from None
    except json.JSONDecodeError as err:
        raise LatencyTableError(f"{path}: not JSON ({err})") from None
    table = LatencyTable.from_json(data, path)
    table.check_matches(space, path)
    if tflite_format is not None and table.tflite_format != tflite_format:
        raise LatencyTableError(f"{path}: measured for {table.tflite_format} TFLite files, not {tflite_format} "
                                "(--latency_format); pass a table of that form, or a new path to measure one")
    return table


def save(table: LatencyTable, path: str) -> None:
    atomic_write_json(path, table.to_json())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The converter prints each model's signature and logs at INFO: noise, hundreds of times per table."""
    from absl import logging as absl_logging

    verbosity = absl_logging.get_verbosity()
    with open(os.devnull, "w", encoding="utf-8") as devnull, contextlib.redirect_stdout(devnull):
        absl_logging.set_verbosity(absl_logging.WARNING)
        try:
            yield
        finally:
            absl_logging.set_verbosity(verbosity)


def _converter(model: Any, tflite_format: str, pixels_in: bool = False, logits_out: bool = False,
               tile: bool = True) -> Any:
    """The TFLite converter of one measured piece; for int8, calibrated on random inputs (pixels for the stem,
    unit-scale activations elsewhere: the timing does not depend on the scales). ``tile``: large depthwise
    kernels in the form the zoo's files run them (``export.tiling``)."""
    import numpy as np
    import tensorflow as tf

    from nse_tf.export.tiling import tile_large_depthwise

    if tile:
        model = tile_large_depthwise(model)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if tflite_format == "int8":
        rng = np.random.default_rng(0)
        shapes = [tuple(1 if d is None else int(d) for d in x.shape) for x in model.inputs]  # a network: batch None

        def representative() -> Iterator[list[Any]]:
            for _ in range(8):
                yield [(rng.uniform(0, 255, shape) if pixels_in else rng.normal(size=shape)).astype(np.float32)
                       for shape in shapes]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8 if pixels_in else tf.int8
        converter.inference_output_type = tf.float32 if logits_out else tf.int8
    elif tflite_format != "float32":
        raise ValueError(f"tflite_format must be one of {', '.join(TFLITE_FORMATS)}, got {tflite_format!r}")
    return converter


def _write_piece(model: Any, piece: TablePiece, tflite_format: str, workdir: str) -> str:
    """The piece converted into ``workdir``; its path."""
    path = os.path.join(workdir, f"{piece.name}.tflite")
    with open(path, "wb") as f:
        f.write(convert_piece(model, piece, tflite_format))
    return path


def _interleaved_ms(paths: Sequence[str], num_threads: int, runs: int, warmup: int, rounds: int) -> dict[str, float]:
    """Each file's median over ``rounds`` interleaved rounds (``nse_tf.export.timing.interleaved_latency_ms``)."""
    from nse_tf.export.timing import interleaved_latency_ms

    timed = interleaved_latency_ms(paths, rounds, runs, num_threads=num_threads, warmup=warmup)
    return {path: timed[path]["median_ms"] for path in paths}


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


def convert_piece(model: Any, piece: TablePiece, tflite_format: str) -> bytes:
    """The piece's .tflite, in the table's form (see ``_converter``)."""
    with _quiet():
        return _converter(model, tflite_format, piece.pixels_in, piece.logits_out).convert()


def convert_piece_model(model: Any, tflite_format: str, tile: bool = True) -> bytes:
    """Any Keras model's .tflite in the table's form for a piece inside a network (int8 in and out for int8);
    ``tile=False`` keeps large depthwise kernels whole, to measure what tiling gives."""
    with _quiet():
        return _converter(model, tflite_format, tile=tile).convert()


def convert_network(model: Any, tflite_format: str, tile: bool = True) -> bytes:
    """A whole child network's .tflite in the table's form (uint8 pixels in and float logits out for int8, as the
    zoo's files): what a table's prediction is checked against."""
    with _quiet():
        return _converter(model, tflite_format, pixels_in=True, logits_out=True, tile=tile).convert()


def assemble(space: MacroSpace, times_ms: dict[str, float], device: str, num_threads: int, runs: int,
             tflite_format: str, rounds: int = 1) -> LatencyTable:
    """The table from each piece's median invoke time: operations and adds net of the invoke overhead, which
    the fixed part (stem + head) pays once."""
    missing = [p.name for p in table_pieces(space) if p.name not in times_ms]
    if missing:
        raise LatencyTableError(f"no time for {len(missing)} pieces ({', '.join(missing[:3])}, ...)")
    overhead = times_ms["overhead"]
    net = {name: max(0.0, ms - overhead) for name, ms in times_ms.items()}
    n_ops = len(space.get_pool())
    index = {_cell_key(cell): s for s, cell in enumerate(table_shapes(space))}
    cells = space.cells()
    shape_of = [index[_cell_key(cell)] for cell in cells]
    return LatencyTable(space=space.to_dict(),
                        op_ms=[[net[f"shape{s:02d}_op{i:02d}"] for i in range(n_ops)] for s in shape_of],
                        add_ms=[net[f"shape{s:02d}_add"] for s in shape_of],
                        fixed_ms=times_ms["stem"] + times_ms["head"] - overhead, device=device,
                        num_threads=num_threads, runs=runs, tflite_format=tflite_format, rounds=rounds)


def host_device(tflite_format: str) -> str:
    from nse_tf.export.timing import cpu_description

    return f"{cpu_description()}, LiteRT {tflite_format}, XNNPACK, batch 1"


def measure(space: MacroSpace, num_threads: int = 1, runs: int = 20, warmup: int = 10,
            progress: Callable[[int, int], None] | None = None, tflite_format: str = "float32",
            rounds: int = 50) -> LatencyTable:
    """Measure the whole table on this CPU; cells of the same shape share their measurements. Every piece is
    converted first, then all are timed in ``rounds`` short interleaved rounds: one window of invokes per piece
    took the machine's mood of that moment with it (on a shared VM a file's 100-invoke medians move by up to
    1.9x from one window to the next), and the table's sum added them up."""
    if num_threads < 1 or runs < 1 or rounds < 1:
        raise ValueError(f"need num_threads, runs and rounds >= 1, got {num_threads}, {runs} and {rounds}")
    if tflite_format not in TFLITE_FORMATS:
        raise ValueError(f"tflite_format must be one of {', '.join(TFLITE_FORMATS)}, got {tflite_format!r}")
    with tempfile.TemporaryDirectory(prefix="nse-latency-") as workdir:
        paths = write_pieces(space, tflite_format, workdir, progress)
        timed = _interleaved_ms(list(paths.values()), num_threads, runs, warmup, rounds)
    return assemble_timed(space, paths, timed, tflite_format, num_threads, runs, rounds)


def assemble_timed(space: MacroSpace, piece_paths: dict[str, str], median_ms: dict[str, float], tflite_format: str,
                   num_threads: int, runs: int, rounds: int) -> LatencyTable:
    """The table of this host from its pieces' files (``write_pieces``) and each file's median invoke time."""
    times = {name: median_ms[path] for name, path in piece_paths.items()}
    return assemble(space, times, host_device(tflite_format), num_threads, runs, tflite_format, rounds)


def write_pieces(space: MacroSpace, tflite_format: str, workdir: str,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, str]:
    """Every piece of the table converted into ``workdir``: piece name -> path (``measure`` times them; a
    benchmark may time them beside whole networks, so that the table and the networks share the machine's state)."""
    import keras

    paths = {}
    pieces = table_pieces(space)
    for done, piece in enumerate(pieces, 1):
        paths[piece.name] = _write_piece(build_piece(space, piece), piece, tflite_format, workdir)
        keras.backend.clear_session(free_memory=False)
        if progress is not None:
            progress(done, len(pieces))
    return paths


def load_or_measure(path: str, space: MacroSpace, num_threads: int = 1,
                    progress: Callable[[int, int], None] | None = None,
                    tflite_format: str = "float32") -> LatencyTable:
    """The table at ``path``; measured and written there (atomically) first when the file does not exist."""
    if os.path.exists(path):
        return load(path, space, tflite_format)
    table = measure(space, num_threads=num_threads, progress=progress, tflite_format=tflite_format)
    save(table, path)
    return table


def cell_branch_costs(table: LatencyTable, cells: Sequence[CellSpec]) -> tuple[list[list[float]], float]:
    """Per-(cell, op) costs and the fixed part such that an architecture's latency is fixed + sum of its
    ops' costs: each op also pays its cell's add, and each R/E cell gives one add back (k branches, k - 1 adds)."""
    op_costs = [[ms + add for ms in row] for row, add in zip(table.op_ms, table.add_ms)]
    fixed = table.fixed_ms - sum(add for cell, add in zip(cells, table.add_ms) if not cell.may_be_empty)
    return op_costs, fixed
