"""The best cell as a ready-to-run search space: the stored base config with its levels filled in."""

from __future__ import annotations

import copy
from typing import Any

import pandas as pd
import yaml

from ablations.config import short_key
from ablations.report.stats import leaderboard

BASE_SECTIONS = ("data", "model", "train", "program", "program_grace_seconds")  # program: script mode


def best_space(trials: pd.DataFrame, space: dict[str, Any]) -> dict[str, Any] | None:
    """A search space with no factors that re-runs the top cell of the leaderboard over the same seeds:
    a cell with finished trials, fewer than half of whose seeds diverged or failed."""
    board = leaderboard(trials, space["objective"]["direction"])
    board = board[(board["n"] > 0) & (board["broke"] < board["trials"] / 2)]
    if board.empty:
        return None
    row = trials[trials["cell"] == board["cell"].iloc[0]].iloc[0]
    best = {
        "name": f"{space['study']}-best",
        "description": f"Best cell of study {space['study']}: {row['cell']}",
        "seeds": int(space.get("seeds", 1)),
        "objective": dict(space["objective"]),
        "pruner": {"name": "none"},  # nothing to compare against: run every seed to the end
        **{s: copy.deepcopy(space[s]) for s in BASE_SECTIONS if s in space},
    }
    for key in space["factors"]:
        section, *path, leaf = key.split(".")
        node = best.setdefault(section, {})
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = _plain(row[short_key(key)])
    return best


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def best_section(trials: pd.DataFrame, space: dict[str, Any]) -> list[str]:
    best = best_space(trials, space)
    if best is None:
        return []
    text = yaml.safe_dump(best, sort_keys=False, allow_unicode=True).strip()
    return [
        "## Best configuration",
        "",
        f"The top cell of the leaderboard as a search space of its own; save it as `{best['name']}.yaml` "
        f"(it is also written next to this report) and run `ablate run {best['name']}.yaml`.",
        "",
        "```yaml",
        text,
        "```",
        "",
    ]
