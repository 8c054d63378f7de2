"""The diagnostics part of the report: per-layer statistics by factor level, as tables and figures.

Reads the `diagnostics` attribute that `ablations.trial` stores (see `ablations.diagnostics`) into
one tidy table (one row per trial x layer), then draws activation std and gradient norm by layer,
one panel per factor and one line per level, and writes a short markdown section.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from matplotlib.ticker import MaxNLocator

from ablations.config import short_key
from ablations.report.figures import _grid, _save
from ablations.report.table import diagnostics_table, space_of

FIGURES = ("activation_std.png", "grad_norm.png")
STATS = ("pre_mean", "pre_std", "act_mean", "act_std", "dead")


def _num(x: Any) -> float:
    return math.nan if x is None else float(x)


def layer_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial x layer, expanded from the per-trial `diagnostics_table`: `kind` is `act`
    (an activation layer, with its statistics at init) or `weight` (a weight layer, with its
    gradient norm at init and after the last epoch). Failed trials are left out."""
    rows: list[dict[str, Any]] = []
    for trial in diagnostics_table(study).to_dict("records"):
        diag = trial["diagnostics"]
        if not diag or trial["outcome"] == "failed":
            continue
        base = {k: v for k, v in trial.items() if k not in ("seed", "outcome", "diagnostics")}
        init = diag.get("init") or {}
        for i, name in enumerate(diag.get("layers", [])):
            stats = {s: _num((init.get(s) or [None] * (i + 1))[i]) for s in STATS}
            rows.append({**base, "kind": "act", "index": i + 1, "layer": name, **stats})
        last = (diag.get("epoch_grad_norm") or [[]])[-1]
        for i, name in enumerate(diag.get("weights", [])):
            grad = (init.get("grad_norm") or [None] * (i + 1))[i]
            final = last[i] if i < len(last) else None
            rows.append(
                {**base, "kind": "weight", "index": i + 1, "layer": name, "grad_norm": _num(grad), "last": _num(final)}
            )
    table = pd.DataFrame(rows)
    for column in (*STATS, "grad_norm", "last"):  # a model may have no activation (or no weight) modules
        if not table.empty and column not in table:
            table[column] = math.nan
    return table


def _by_layer(table: pd.DataFrame, factors: dict[str, list[Any]], column: str, ylabel: str, out: Path, name: str):
    part = table[table[column].notna()]
    if part.empty:
        return None
    groups = factors or {"all trials": [None]}
    fig, axes = _grid(len(groups))
    for ax, (factor, levels) in zip(axes, groups.items(), strict=True):
        for level in levels:
            rows = part if level is None else part[part[factor] == level]
            if rows.empty:
                continue
            # Cells of one level may differ in depth; averaging layer i of a 3- and a 48-layer net
            # would draw a jump where neither has one, so each level shows its deepest variant.
            layers = rows.groupby("key")["index"].transform("max")
            rows = rows[layers == layers.max()]
            mean = rows.groupby("index")[column].mean()
            label = "mean" if level is None else str(level)
            ax.plot(mean.index, mean.to_numpy(), marker=".", label=f"{label} ({int(layers.max())} layers)")
        values = part[column].to_numpy()
        if (values > 0).all() and values.max() / max(values.min(), 1e-300) > 100:
            ax.set_yscale("log")  # a collapse or an explosion spans orders of magnitude
        ax.set(title=factor, xlabel="layer (input → output)", ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, out, name)


def diagnostics_figures(table: pd.DataFrame, factors: dict[str, list[Any]], out_dir: Path) -> dict[str, str]:
    """caption -> file name of each figure drawn (none when no trial has diagnostics)."""
    for stale in FIGURES:
        (out_dir / stale).unlink(missing_ok=True)
    if table.empty:
        return {}
    acts, weights = table[table["kind"] == "act"], table[table["kind"] == "weight"]
    drawn = {
        "Activation std by layer at initialisation, one batch of real data, mean over the trials of each "
        "level's deepest variant": (_by_layer(acts, factors, "act_std", "activation std", out_dir, FIGURES[0])),
        "Weight-gradient norm by layer at initialisation, after one backward pass, mean over the trials of "
        "each level's deepest variant": (
            _by_layer(weights, factors, "grad_norm", "gradient norm", out_dir, FIGURES[1])
        ),
    }
    return {caption: name for caption, name in drawn.items() if name}


def _fmt(x: float) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.3g}"


def diagnostics_section(table: pd.DataFrame, factors: dict[str, list[Any]], figures: dict[str, str]) -> str:
    """Markdown: per factor level, activation std at the first and last activation layer, dead
    units, and the first/last gradient-norm ratio at init and after the last epoch; then the figures."""
    if table.empty:
        return ""
    acts, weights = table[table["kind"] == "act"], table[table["kind"] == "weight"]
    lines = [
        "## Diagnostics",
        "",
        "Per-layer statistics on one fixed batch of real training data (mean over the level's trials). "
        "Activation std at the first and last activation layer; dead units: share of units zero for the "
        "whole batch, over all layers; gradient ratio: first layer's weight-gradient norm over the last "
        "layer's (≪ 1 vanishing, ≫ 1 exploding), at initialisation and after the last epoch run.",
        "",
        "| factor | level | act std, first layer | act std, last layer | dead units | grad ratio at init "
        "| grad ratio at end |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]

    def per_trial(frame: pd.DataFrame, column: str, pick: str) -> pd.Series:
        ordered = frame.sort_values("index").groupby("key")[column]
        return getattr(ordered, pick)()

    for factor, levels in (factors or {"all trials": [None]}).items():
        for level in levels:
            a = acts if level is None else acts[acts[factor] == level]
            w = weights if level is None else weights[weights[factor] == level]
            if a.empty and w.empty:
                continue
            ratio_init = per_trial(w, "grad_norm", "first") / per_trial(w, "grad_norm", "last")
            ratio_end = per_trial(w, "last", "first") / per_trial(w, "last", "last")
            cells = [
                per_trial(a, "act_std", "first").mean(),
                per_trial(a, "act_std", "last").mean(),
                a["dead"].mean(),
                ratio_init.replace([np.inf, -np.inf], np.nan).mean(),
                ratio_end.replace([np.inf, -np.inf], np.nan).mean(),
            ]
            lines.append(f"| {factor} | {'—' if level is None else level} | " + " | ".join(map(_fmt, cells)) + " |")
    lines.append("")
    for caption, path in figures.items():
        lines += [f"**{caption}**", "", f"![{caption}]({path})", ""]
    return "\n".join(lines)


def write_diagnostics(study: optuna.Study, out_dir: Path) -> str:
    """Write diagnostics.csv and the figures into `out_dir`; return the markdown section ('' if none)."""
    space = space_of(study)
    factors = {short_key(k): levels for k, levels in space["factors"].items()}
    table = layer_table(study)
    (out_dir / "diagnostics.csv").unlink(missing_ok=True)
    if not table.empty:
        table.to_csv(out_dir / "diagnostics.csv", index=False)
    return diagnostics_section(table, factors, diagnostics_figures(table, factors, out_dir))
