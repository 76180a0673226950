"""A latency table measured with LiteRT on this CPU, and a table assembled from its pieces' times.

Every piece (``pieces``) becomes its own ``.tflite`` in the table's form (``conversion``: batch 1, BN folded as
in exported models), and all are timed with XNNPACK on ``num_threads`` threads by their median invoke, over
short interleaved rounds of all pieces, so the machine's drift hits every piece alike. Each operation's and
add's entry is its median minus that of a one-element model, so the interpreter's per-call overhead is charged
once (in the fixed part), not once per operation. A phone's times (``phone_kit``) go through the same
``assemble``.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Callable, Sequence

from nse_tf.cost import conversion
from nse_tf.cost.latency_table import TFLITE_FORMATS, LatencyTable, LatencyTableError, load, save
from nse_tf.cost.pieces import TablePiece, build_piece, cell_shapes, table_pieces
from nse_tf.space.macro import MacroSpace


def _write_piece(model: Any, piece: TablePiece, tflite_format: str, workdir: str) -> str:
    """The piece converted into ``workdir``; its path."""
    path = os.path.join(workdir, f"{piece.name}.tflite")
    with open(path, "wb") as f:
        f.write(conversion.convert_piece(model, piece, tflite_format))
    return path


def _interleaved_ms(paths: Sequence[str], num_threads: int, runs: int, warmup: int, rounds: int) -> dict[str, float]:
    """Each file's median over ``rounds`` interleaved rounds (``nse_tf.export.timing.interleaved_latency_ms``)."""
    from nse_tf.export.timing import interleaved_latency_ms

    timed = interleaved_latency_ms(paths, rounds, runs, num_threads=num_threads, warmup=warmup)
    return {path: timed[path]["median_ms"] for path in paths}


def assemble(space: MacroSpace, times_ms: dict[str, float], *, device: str, num_threads: int, runs: int,
             tflite_format: str, rounds: int = 1) -> LatencyTable:
    """The table from each piece's median invoke time: operations and adds net of the invoke overhead, which
    the fixed part (stem + head) pays once."""
    missing = [p.name for p in table_pieces(space) if p.name not in times_ms]
    if missing:
        raise LatencyTableError(f"no time for {len(missing)} pieces ({', '.join(missing[:3])}, ...)")
    overhead = times_ms["overhead"]
    net = {name: max(0.0, ms - overhead) for name, ms in times_ms.items()}
    n_ops = len(space.get_pool())
    shape_of = cell_shapes(space)
    return LatencyTable(space=space.to_dict(),
                        op_ms=[[net[f"shape{s:02d}_op{i:02d}"] for i in range(n_ops)] for s in shape_of],
                        add_ms=[net[f"shape{s:02d}_add"] for s in shape_of],
                        fixed_ms=times_ms["stem"] + times_ms["head"] - overhead, device=device,
                        num_threads=num_threads, runs=runs, tflite_format=tflite_format, rounds=rounds)


def host_device(tflite_format: str) -> str:
    from nse_tf.export.timing import cpu_description

    return f"{cpu_description()}, LiteRT {tflite_format}, XNNPACK, batch 1"


def measure(space: MacroSpace, *, num_threads: int = 1, runs: int = 20, warmup: int = 10,
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
    return assemble_timed(space, paths, timed, tflite_format=tflite_format, num_threads=num_threads, runs=runs,
                          rounds=rounds)


def assemble_timed(space: MacroSpace, piece_paths: dict[str, str], median_ms: dict[str, float], *,
                   tflite_format: str, num_threads: int, runs: int, rounds: int) -> LatencyTable:
    """The table of this host from its pieces' files (``write_pieces``) and each file's median invoke time."""
    times = {name: median_ms[path] for name, path in piece_paths.items()}
    return assemble(space, times, device=host_device(tflite_format), num_threads=num_threads, runs=runs,
                    tflite_format=tflite_format, rounds=rounds)


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
