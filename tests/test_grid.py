from __future__ import annotations

from collections import Counter

from ablations.config import validate_space
from ablations.grid import Cell, cells_of, grid_fingerprint, schedule

SPACE = {
    "name": "g",
    "seeds": 3,
    "factors": {"norm": ["none", "batch", "layer"], "init": ["default", "kaiming"], "train.lr": [0.1, 0.01]},
}


def test_full_factorial_has_every_combination_once():
    cells = cells_of(validate_space(SPACE))
    assert len(cells) == 3 * 2 * 2
    assert len({c.id for c in cells}) == 12
    assert {(c.values["model.norm"], c.values["model.init"], c.values["train.lr"]) for c in cells} == {
        (n, i, lr) for n in ["none", "batch", "layer"] for i in ["default", "kaiming"] for lr in [0.1, 0.01]
    }


def test_cell_id_ignores_factor_order():
    assert Cell({"a": 1, "b": "x"}).id == Cell({"b": "x", "a": 1}).id != Cell({"a": 2, "b": "x"}).id


def test_schedule_runs_each_cell_and_seed_once_seed_by_seed():
    space = validate_space(SPACE)
    tasks = schedule(space, "study-a")
    assert Counter(t.key for t in tasks) == Counter({f"{c.id}/{s}": 1 for c in cells_of(space) for s in range(3)})
    assert [t.seed for t in tasks] == sorted(t.seed for t in tasks), "all cells of seed 0 come first"
    assert [t.key for t in tasks] == [t.key for t in schedule(space, "study-a")], "order fixed by the study"
    assert [t.key for t in tasks] != [t.key for t in schedule(space, "study-b")]
    first_norms = [t.cell.values["model.norm"] for t in tasks[:12]]
    assert set(first_norms) == {"none", "batch", "layer"}


def test_fingerprint_changes_with_the_grid_not_the_pruner():
    base = validate_space(SPACE)
    assert grid_fingerprint(base) == grid_fingerprint(validate_space({**SPACE, "pruner": {"name": "none"}}))
    assert grid_fingerprint(base) != grid_fingerprint(validate_space({**SPACE, "seeds": 4}))
    assert grid_fingerprint(base) != grid_fingerprint(validate_space({**SPACE, "train": {"epochs": 3}}))
