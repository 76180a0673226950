"""The search's verification stage: a shortlist trained alone, and the pick taken from those trainings.

Inside a cost window, shared weights do not rank architectures as training them alone does (Kendall tau
-0.17 over 12 of our latency search's window; Yu et al. 2020), so practitioners verify a shortlist. After
the last round, the shortlist (the final front, the top ``top`` of the last round by shared-weight top-1, and
the seed architectures, all at or under the budget) is trained alone with the short stand-alone recipe on the
training images minus the last round's held-out split, ``seeds`` times each, and scored on that split (the
test split is never read). The pick is the shortlisted architecture with the best mean. Each training is its
own resumable run directory under ``run_dir/verify/``, named by the architecture, so reruns and shards
(the ``verify_shard`` setting, ``i/n``: several processes or machines) share them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Callable, Sequence

import numpy as np

from nse_tf.search.evolution import ArchPoint
from nse_tf.utils.settings import ANY_TIME, at_least, check_fields, setting

VERIFY_DIR = "verify"
RESULT_FILE = "verification.json"


@dataclasses.dataclass(frozen=True)
class VerifyConfig:
    """How the shortlist is made and trained; ``top == 0`` switches the stage off (the method's pick). Only the
    verification reads these, after the last round: they may change at any time, even once a search is done
    (trainings of another recipe are refused by their run directories)."""

    top: int = setting(0, "After the last round, train alone a shortlist (the final front, this many best of the "
                       "last round by shared weights, the seed architectures) and pick the best mean held-out top-1; "
                       "0: no verification, the pick by shared weights (the method's).", flag="verify_top",
                       when=ANY_TIME, check=at_least(0), label="top (shortlisted by shared weights)", missing=0)
    seeds: int = setting(2, "Seeds of each shortlisted architecture's stand-alone training.",
                         flag="verify_seeds", when=ANY_TIME, check=at_least(1), missing=2)
    epochs: int = setting(3, "Epochs of the verification's stand-alone recipe (standalone.SHORT_RECIPE).",
                          flag="verify_epochs", when=ANY_TIME, check=at_least(1), missing=3)
    # Further network JSONs of the space trained beside the shortlist under the same recipe (say, the hand-designed
    # network at the budget, for a search run without seed architectures): references, never picked.
    archs: tuple[str, ...] = setting((), "Further network JSONs of this space trained beside the verification's "
                                     "shortlist with the same recipe (e.g. the hand-designed network at the budget); "
                                     "references, never picked.", flag="verify_archs", when=ANY_TIME,
                                     parse=tuple, missing=[])

    def __post_init__(self) -> None:
        check_fields(self)
        object.__setattr__(self, "archs", tuple(str(a) for a in self.archs))

    @property
    def enabled(self) -> bool:
        return self.top > 0


@dataclasses.dataclass
class Candidate:
    """One shortlisted architecture: why it is there, its shared-weight figure and its stand-alone ones."""

    point: ArchPoint
    reasons: list[str]
    proxy: dict[int, float] = dataclasses.field(default_factory=dict)  # seed -> held-out top-1

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.proxy.values()))) if self.proxy else float("nan")


def arch_label(cells: Sequence[Sequence[int]], pool_names: Sequence[str]) -> str:
    """A run directory name that depends only on the architecture (its operations by name)."""
    text = json.dumps([[pool_names[i] for i in sorted(cell)] for cell in cells])
    return "arch_" + hashlib.sha1(text.encode()).hexdigest()[:10]


def shortlist(front: Sequence[ArchPoint], last_round: Sequence[ArchPoint], seeds: Sequence[ArchPoint],
              top: int, budget: float, given: Sequence[ArchPoint] = ()) -> list[Candidate]:
    """The final front, the ``top`` best of the last round's window by shared weights and the seeds, at or under
    ``budget`` (only those can be picked), then the ``given`` architectures (``VerifyConfig.archs``: references,
    whatever they cost), each once, in that order."""
    out: dict[tuple, Candidate] = {}

    def add(point: ArchPoint, reason: str) -> None:
        if point.cost > budget and reason != "given":
            return
        if point.key() in out:
            out[point.key()].reasons.append(reason)
        else:
            out[point.key()] = Candidate(point, [reason])

    for point in front:
        add(point, "front")
    window = [p for p in last_round if not p.extra and p.cost <= budget]
    for point in sorted(window, key=lambda p: (-p.accuracy, p.cost))[:top]:
        add(point, "top")
    for point in seeds:
        add(point, "seed")
    for point in given:
        add(point, "given")
    return list(out.values())


def verify(candidates: list[Candidate], config: VerifyConfig, train_one: Callable[..., list[Any]],
           pool_names: Sequence[str], out_dir: str) -> bool:
    """Train the shortlist (``train_one(jobs)`` -> each job's result or None, jobs as ``(index, seed,
    run_dir)``) and fill each candidate's ``proxy``; whether every training has finished."""
    jobs = [(i, seed, os.path.join(out_dir, f"{arch_label(c.point.cells, pool_names)}_seed{seed}"))
            for i, c in enumerate(candidates) for seed in range(config.seeds)]
    results = train_one(jobs)
    for (i, seed, _), result in zip(jobs, results):
        if result is not None:
            candidates[i].proxy[seed] = float(result["top1"])
    return all(result is not None for result in results)


def pick(candidates: Sequence[Candidate], budget: float) -> Candidate:
    """The best mean stand-alone top-1 of the searched candidates at or under ``budget`` (never a reference
    that is only ``given``); ties go to the cheaper architecture, a non-finite mean (a diverged run) ranks last."""
    eligible = [c for c in candidates if c.point.cost <= budget and c.reasons != ["given"]]
    if not eligible:
        raise ValueError("no shortlisted architecture of the search is within the budget")
    return max(eligible, key=lambda c: (c.mean if np.isfinite(c.mean) else -np.inf, -c.point.cost))


def summary(candidates: Sequence[Candidate], chosen: Candidate, config: VerifyConfig, pool_names: Sequence[str],
            macs: Callable[[Sequence[Sequence[int]]], float], heldout: dict[str, Any]) -> dict[str, Any]:
    """verification.json: every candidate's figures, the pick, and Kendall tau of shared-weight against
    stand-alone top-1 over the shortlist."""
    from nse_tf.utils.metrics import kendall_tau

    ranked = [c for c in candidates if np.isfinite(c.point.accuracy)]  # given archs have no shared-weight figure
    shared = [c.point.accuracy for c in ranked]
    alone = [c.mean for c in ranked]
    tau = kendall_tau(shared, alone) if len(ranked) >= 3 else None
    return {
        "format": "nse_tf.verification", "version": 1,
        "settings": dataclasses.asdict(config), "heldout": heldout,
        "kendall_tau": tau, "n": len(candidates), "n_ranked": len(ranked),
        "chosen": arch_label(chosen.point.cells, pool_names),
        "candidates": [{"label": arch_label(c.point.cells, pool_names), "reasons": c.reasons,
                        "cells": [[pool_names[i] for i in cell] for cell in c.point.cells],
                        "cost": c.point.cost, "macs": int(round(macs(c.point.cells) * 1e6)),
                        "shared_top1": c.point.accuracy if np.isfinite(c.point.accuracy) else None,
                        "proxy_top1": {str(s): v for s, v in sorted(c.proxy.items())}, "proxy_mean": c.mean}
                       for c in candidates]}
