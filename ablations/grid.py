"""Designs: a search space -> cells (one value per factor) with stable ids, and the run order.

A cell's id is a hash of its factor values, so it does not change when the YAML is reordered or
another study holds the same cell. Seeds are shared across cells (common random numbers): two
cells with the same seed start from the same data order, which makes their comparison paired.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ablations.config import SpaceConfig, short_key
from ablations.registry import Registry


@dataclass(frozen=True)
class Cell:
    values: dict[str, Any]  # full dotted key -> level, in the space's factor order

    @property
    def id(self) -> str:
        canonical = json.dumps(sorted(self.values.items()), sort_keys=True, default=str)
        return hashlib.sha1(canonical.encode()).hexdigest()[:10]

    @property
    def label(self) -> str:
        return " ".join(f"{short_key(k)}={v}" for k, v in self.values.items()) or "base"


@dataclass(frozen=True)
class Task:
    """One (cell, seed): exactly one finished trial of each is the goal of a sweep."""

    cell: Cell
    seed: int

    @property
    def key(self) -> str:
        return f"{self.cell.id}/{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.cell.label} seed={self.seed}"


DESIGNS: Registry[Callable[[SpaceConfig], list[Cell]]] = Registry("design")


@DESIGNS.register("full")
def full_factorial(space: SpaceConfig) -> list[Cell]:
    """Every combination of every factor's levels."""
    keys = list(space.factors)
    return [Cell(dict(zip(keys, combo, strict=True))) for combo in itertools.product(*(space.factors[k] for k in keys))]


@DESIGNS.register("one_at_a_time")
def one_at_a_time(space: SpaceConfig) -> list[Cell]:
    """The classic ablation table: the baseline cell, then each other level of each factor alone."""
    base = dict(space.design.baseline or {k: levels[0] for k, levels in space.factors.items()})
    cells = [Cell(base)]
    for key, levels in space.factors.items():
        cells.extend(Cell({**base, key: level}) for level in levels if level != base[key])
    return cells


@DESIGNS.register("random")
def random_fraction(space: SpaceConfig) -> list[Cell]:
    """A seeded random subset of the full grid, drawn by index so a huge grid is never listed."""
    keys = list(space.factors)
    sizes = [len(space.factors[k]) for k in keys]
    total = math.prod(sizes)
    picks = sorted(random.Random(space.design.seed).sample(range(total), space.design.size(total)))
    cells = []
    for index in picks:  # mixed-radix digits, last factor fastest: the order of the full factorial
        values = {}
        for key, size in zip(reversed(keys), reversed(sizes), strict=True):
            index, digit = divmod(index, size)
            values[key] = space.factors[key][digit]
        cells.append(Cell({k: values[k] for k in keys}))
    return cells


def cells_of(space: SpaceConfig) -> list[Cell]:
    """The design's cells, less those an `exclude` rule names."""
    return [cell for cell in DESIGNS[space.design.name](space) if not space.excluded(cell.values)]


def schedule(space: SpaceConfig, study_name: str) -> list[Task]:
    """All tasks in run order: seed by seed, each seed's cells in a shuffled order fixed by the
    study name, so the first trials already cover every level and a pruner has peers to compare."""
    cells = cells_of(space)
    rng = random.Random(hashlib.sha1(study_name.encode()).hexdigest())
    order: list[Task] = []
    for seed in range(space.seeds):
        shuffled = cells[:]
        rng.shuffle(shuffled)
        order.extend(Task(cell, seed) for cell in shuffled)
    return order


def grid_fingerprint(space: SpaceConfig) -> str:
    """What must match for a study to be resumed: everything that defines what a trial runs
    (the pruner may change between runs: it decides when to stop, not what a trial is; diagnostics
    only observe a trial; nor how long a pruned script may take to stop)."""
    ignored = {"description", "name", "pruner", "diagnostics", "program_grace_seconds"}
    defining = space.model_dump(mode="json", exclude=ignored)
    return hashlib.sha1(json.dumps(defining, sort_keys=True).encode()).hexdigest()[:12]
