"""Seed architectures of a search (its ``seed_archs`` setting): network JSONs of the search's own space, as pool
indices.

A seed (for example the hand-designed family member at the budget, and its one-change neighbours) is a point
of the space the search must compare with: its operations stay in every round's sub-spaces and it is
evaluated every round beside the front.
"""

from __future__ import annotations

from typing import Sequence

from nse_tf.search.schema import flag_text
from nse_tf.space.architecture import ArchitectureError, NetworkSpec
from nse_tf.space.macro import MacroSpace


class SeedArchError(ValueError):
    """A seed architecture that cannot be read or is not a point of the search's space."""


def resolve_seed_archs(paths: Sequence[str], space: MacroSpace,
                       excluded: Sequence[Sequence[str]] = ()) -> list[list[list[int]]]:
    """Each file's cells as indices into ``space``'s pool; its skeleton must be the search's (all but the
    pool), its operations in the pool and not excluded from their cell."""
    pool = space.get_pool()
    skeleton = {k: v for k, v in space.to_dict().items() if k != "pool"}
    out = []
    for path in paths:
        try:
            spec = NetworkSpec.load(path)
        except OSError as err:
            raise SeedArchError(f"{path}: cannot read it ({err.strerror})") from None
        except ArchitectureError as err:
            raise SeedArchError(str(err)) from None
        theirs = {k: v for k, v in spec.space.to_dict().items() if k != "pool"}
        differ = sorted(k for k in set(skeleton) | set(theirs) if skeleton.get(k) != theirs.get(k))
        if differ:
            raise SeedArchError(f"{path}: not a point of the search's space: its {', '.join(differ)} differ")
        cells = []
        for c, names in enumerate(spec.arch.names(spec.space.get_pool())):
            missing = [n for n in names if n not in pool.names]
            if missing:
                raise SeedArchError(f"{path}: cell {c}: operation {missing[0]} is not in the search's pool")
            banned = [n for n in names if excluded and n in excluded[c]]
            if banned:
                raise SeedArchError(f"{path}: cell {c}: operation {banned[0]} is excluded from that cell "
                                    f"({flag_text('evolution.excluded_ops')})")
            cells.append(sorted(pool.index(n) for n in names))
        out.append(cells)
    return out
