"""Architectures: one branch set per cell, and the network spec (space + architecture) as JSON."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Sequence

from nse_tf.space import limits
from nse_tf.space.macro import MacroSpace
from nse_tf.space.ops import Pool, op_cost
from nse_tf.space.space_cost import fixed_cost
from nse_tf.utils import bounded_json

ARCH_FORMAT = "nse_tf.network"
ARCH_VERSION = 1


class ArchitectureError(ValueError):
    """An architecture that does not fit its space; the message names the cell at fault."""


class ArchitectureSizeError(ArchitectureError, limits.SizeLimitError):
    """A network file beyond the limits of ``nse_tf.space.limits``: both an ArchitectureError naming the file
    and a SizeLimitError (a command line catches it by that class to give its own way to override)."""


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Branch sets as sorted pool indices, one tuple per searchable cell."""

    cells: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "cells", tuple(tuple(sorted(int(i) for i in c)) for c in self.cells))

    @classmethod
    def from_cells(cls, cells: Sequence[Sequence[int | str]], pool: Pool) -> "Architecture":
        """Cells given by pool index or op name (mixed is fine)."""
        out = []
        for index, cell in enumerate(cells):
            ids = []
            for op in cell:
                if isinstance(op, str):
                    try:
                        ids.append(pool.index(op))
                    except ValueError:
                        raise ArchitectureError(f"cell {index}: operation {op!r} is not in pool {pool.name!r}") from None
                else:
                    if not 0 <= int(op) < len(pool):
                        raise ArchitectureError(
                            f"cell {index}: operation index {op} is outside pool {pool.name!r} (0..{len(pool) - 1})")
                    ids.append(int(op))
            if len(set(ids)) != len(ids):
                raise ArchitectureError(f"cell {index}: an operation is listed twice in {list(cell)}")
            out.append(tuple(ids))
        return cls(tuple(out))

    def names(self, pool: Pool) -> list[list[str]]:
        return [[pool.ops[i].name for i in cell] for cell in self.cells]

    def validate(self, space: MacroSpace) -> None:
        cells, pool = space.cells(), space.get_pool()
        if len(self.cells) != len(cells):
            raise ArchitectureError(
                f"architecture has {len(self.cells)} cells but the space has {len(cells)} "
                f"(layout {space.layout}, counts {space.counts})")
        for cell, ops in zip(cells, self.cells):
            bad = [i for i in ops if not 0 <= i < len(pool)]
            if bad:
                raise ArchitectureError(f"cell {cell.index} ({cell.kind}): operation index {bad[0]} is outside "
                                        f"pool {pool.name!r} (0..{len(pool) - 1})")
            if len(set(ops)) != len(ops):
                raise ArchitectureError(f"cell {cell.index} ({cell.kind}): an operation is listed twice in {list(ops)}")
            if not ops and not cell.may_be_empty:
                raise ArchitectureError(f"cell {cell.index} ({cell.kind}): an {cell.kind} cell needs at least one "
                                        "operation; only N cells may be empty")

    def __str__(self) -> str:
        return " ".join("[" + ",".join(map(str, c)) + "]" for c in self.cells)


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """A complete, buildable network: the macro space and the chosen branch set of every cell."""

    space: MacroSpace
    arch: Architecture
    name: str = "network"

    def __post_init__(self) -> None:
        self.arch.validate(self.space)

    def replace_space(self, **overrides: Any) -> "NetworkSpec":
        return NetworkSpec(self.space.replace(**overrides), self.arch, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": ARCH_FORMAT,
            "version": ARCH_VERSION,
            "name": self.name,
            "space": self.space.to_dict(),
            "cells": self.arch.names(self.space.get_pool()),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def check_size(self) -> None:
        """ValueError when the space, or the network's MACs or parameters (counted, not built), are beyond
        the limits of ``nse_tf.space.limits``."""
        self.space.check_size()
        space, pool, total = self.space, self.space.get_pool(), fixed_cost(self.space)
        for cell, ops in zip(space.cells(), self.arch.cells):  # the chosen operations only, not the whole table
            for i in ops:
                total += op_cost(pool.ops[i], *cell.input_hw, cell.cin, cell.cout, cell.stride, se=space.se)
        limits.check("MACs", total.macs, limits.MAX_MACS)
        limits.check("parameters", total.params, limits.MAX_PARAMS)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "architecture", check_size: bool = True) -> "NetworkSpec":
        """The network a file describes, its fields checked; one beyond the limits of ``nse_tf.space.limits``
        is refused before anything is built unless ``check_size`` is False."""
        if not isinstance(data, dict):
            raise ArchitectureError(f"{source}: a network file holds one JSON object, got a {type(data).__name__}")
        if data.get("format") != ARCH_FORMAT:
            raise ArchitectureError(f"{source}: not an nse_tf network file (format {data.get('format')!r}, "
                                    f"expected {ARCH_FORMAT!r})")
        if data.get("version") != ARCH_VERSION:
            raise ArchitectureError(f"{source}: unsupported version {data.get('version')!r} (this is {ARCH_VERSION})")
        unknown = sorted(set(data) - {"format", "version", "name", "space", "cells"})
        if unknown:  # nothing in a network file is ever interpreted beyond these (no layer configs, no code)
            raise ArchitectureError(f"{source}: unknown field(s) {', '.join(unknown)}")
        missing = [key for key in ("space", "cells") if key not in data]
        if missing:
            raise ArchitectureError(f"{source}: missing field(s) {', '.join(missing)}")
        if not isinstance(data["space"], dict):
            raise ArchitectureError(f"{source}: field space must be an object, got {data['space']!r}")
        if not isinstance(data["cells"], list) or not all(isinstance(c, list) for c in data["cells"]):
            raise ArchitectureError(f"{source}: field cells must be a list of lists of operations")
        try:
            if check_size:
                limits.check("cells", len(data["cells"]), limits.MAX_CELLS, " cells")
            space = MacroSpace.from_dict(data["space"], check_size=check_size)
            arch = Architecture.from_cells(data["cells"], space.get_pool())
            spec = cls(space, arch, str(data.get("name", "network")))
            if check_size:
                spec.check_size()
            return spec
        except limits.SizeLimitError as err:
            raise err.within(source, ArchitectureSizeError) from None
        except (KeyError, TypeError, ValueError) as err:
            raise ArchitectureError(f"{source}: {err}") from None

    @classmethod
    def load(cls, path: str | os.PathLike, check_size: bool = True) -> "NetworkSpec":
        """``from_dict`` of a file; one that is not UTF-8 JSON, or nests deeper than a network file does, is
        refused with a line naming it."""
        try:
            data = bounded_json.load(path, limits.MAX_JSON_DEPTH)
        except UnicodeDecodeError as err:
            raise ArchitectureError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        except ValueError as err:
            raise ArchitectureError(f"{path}: not valid JSON ({err})") from None
        return cls.from_dict(data, source=str(path), check_size=check_size)

    def save(self, path: str | os.PathLike) -> None:
        from nse_tf.utils.atomic import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")
