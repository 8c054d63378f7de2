"""`ablate check SPACE`: what a sweep would run and cost, shown before anything is trained or
downloaded; and the data check that `ablate run` makes before it queues anything.

Everything that needs no data files is shown first (factors, cells, parameter counts, cost);
missing files are reported last, as the one bad-input line (exit 2).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ablations.config import ProgramSpaceConfig, SpaceConfig, incompatible_cells, short_key
from ablations.errors import AblationError
from ablations.grid import DESIGNS, Cell, cells_of
from ablations.pruners import pruner_setting


def show(space: SpaceConfig, space_file: Path, console: Console) -> None:
    """Print the plan of `space`, then check its data (DataMissingError when files are missing)."""
    cells = cells_of(space)
    console.print(f"[bold]{space.name}[/bold]  {space.description.strip()}")
    factors = Table("factor", "config key", "levels", title="factors")
    for key, levels in space.factors.items():
        factors.add_row(short_key(key), key, ", ".join(str(v) for v in levels))
    console.print(factors)
    trials = len(cells) * space.seeds
    print_exclusions(space, console)
    console.print(f"cells: {len(cells)}  x  seeds: {space.seeds}  =  trials: {trials}")
    console.print(f"objective: {space.objective.direction} {space.objective.metric}  ·  pruner: {pruner_text(space)}")
    if isinstance(space, ProgramSpaceConfig):  # script mode: the script builds its own model and data
        console.print(f"program: {shlex.join(space.program)}  (once per trial, in the folder `ablate run` starts in)")
        return
    print_model_variants(space, cells, console)
    print_cost(space, trials, console)
    _check_data_for_plan(space, space_file, console)


def pruner_text(space: SpaceConfig) -> str:
    args = ", ".join(f"{k}={v}" for k, v in space.pruner.args.items())
    return f"{space.pruner.name}({args})"


def print_exclusions(space: SpaceConfig, console: Console) -> None:
    """The `exclude` rules, how many cells each drops, and why a dropped cell makes no sense."""
    if not space.exclude:
        return
    problems = [(part, reason) for _, part, reason in incompatible_cells(space)]
    table = Table("rule", "cells left out", "why (first cell)", title="excluded", show_lines=True)
    full = list(DESIGNS[space.design.name](space))
    for rule in space.exclude:
        matched = [c for c in full if all(c.values.get(k) == v for k, v in rule.items())]
        why = next(
            (
                reason
                for c in matched
                for part, reason in problems
                if all(c.values.get(k) == v for k, v in part.items())
            ),
            "excluded by the space",
        )
        table.add_row(", ".join(f"{short_key(k)}={v}" for k, v in rule.items()), str(len(matched)), why)
    console.print(table)


def print_model_variants(space: SpaceConfig, cells: list[Cell], console: Console) -> None:
    """One row per distinct model of the grid with its parameter count (models built, not trained)
    and, for a user's model, what each applied level swapped. A user's model that cannot be built,
    or whose output does not fit the data, is bad input: the table is shown, then the first error."""
    from ablations.data import DataMissingError, dataset_info

    try:
        input_shape, num_classes = dataset_info(space.data)  # published datasets: known without files
    except DataMissingError:
        console.print("model variants: parameter counts need the data's shape and classes (see below)")
        return
    variants: dict[str, tuple[str, str, str]] = {}
    errors: list[str] = []
    for cell in cells:
        model_cfg = space.trial_config(cell.values).model
        key = model_cfg.model_dump_json()
        if key in variants:
            continue
        label = " ".join(f"{short_key(k)}={v}" for k, v in cell.values.items() if k.startswith("model."))
        try:
            params, swaps = _variant(space, model_cfg, input_shape, num_classes)
        except Exception as err:  # noqa: BLE001 - the user's builder raised: shown, then refused below
            message = str(err) if isinstance(err, AblationError) else f"{type(err).__name__}: {err}"
            errors.append(f"model variant {label or 'base model'}: {message}")
            params, swaps = "error", message.splitlines()[0][:80] if message else ""
        variants[key] = (label or "base model", params, swaps)
    table = Table("model variant", "parameters", title=f"model variants on {space.data.name} {input_shape}")
    user = any(swaps for _, _, swaps in variants.values())
    if user:
        table.add_column("applied to your model")
    for label, params, swaps in variants.values():
        table.add_row(label, params, *([swaps] if user else []))
    console.print(table)
    if errors:
        raise AblationError(errors[0])


def _variant(space: SpaceConfig, model_cfg: object, input_shape: tuple, num_classes: int) -> tuple[str, str]:
    """(parameter count, what was swapped) of one model variant."""
    import torch

    from ablations.models import ARCHITECTURES, count_parameters
    from ablations.plugins.imports import is_import_path
    from ablations.plugins.user_model import build_user_model, signature_of, swap_summary

    if not is_import_path(model_cfg.arch):
        # Uninitialised: the count does not depend on the init, and lsuv would need a batch.
        return f"{count_parameters(ARCHITECTURES[model_cfg.arch](model_cfg, input_shape, num_classes)):,}", ""
    batch = torch.zeros(2, *input_shape)  # shapes only; the init (which may need real data) is left out
    chosen = space.chosen_model_keys()
    built = build_user_model(model_cfg.model_copy(update={"init": "default"}), input_shape, num_classes, batch, chosen)
    names, _ = signature_of(model_cfg.arch)
    from_data = ("num_classes", "input_shape", "in_channels")
    passed = ", ".join(f"{k}={v}" for k, v in built.passed.items() if k not in from_data)
    lines = ([f"passed: {passed}"] if passed else []) + swap_summary(built, batch, chosen, names)
    return f"{count_parameters(built.model):,}", "; ".join(lines) or "as built"


def print_cost(space: SpaceConfig, trials: int, console: Console) -> None:
    epochs = space.train.epochs
    worst = trials * epochs
    console.print(f"cost without pruning (the worst case): {worst:,} epochs ({trials} trials x {epochs} epochs)")
    name, args = space.pruner.name, space.pruner.args
    if name == "none":
        return
    startup = int(pruner_setting(name, args, "n_startup_trials", 0))
    min_resource = pruner_setting(name, args, "min_resource", 1)  # "auto" for successive halving
    first_step = max(
        int(pruner_setting(name, args, "n_warmup_steps", 0)) + 1, min_resource if isinstance(min_resource, int) else 1
    )
    best = min(trials, startup) * epochs + max(0, trials - startup) * min(first_step, epochs)
    console.print(
        f"cost with pruning: between {best:,} epochs (every trial after the first {startup} pruned as soon "
        f"as allowed) and {worst:,}"
    )


def require_data(space: SpaceConfig, space_file: Path | str, download: bool = True) -> None:
    """Every dataset the grid uses is in place (downloaded first where `data.download` allows and
    `download` is true). Missing files are bad input, not a failure of every trial."""
    from ablations.data import require_datasets

    configs = [space.trial_config(cell.values).data for cell in cells_of(space)]
    if not download:
        configs = [cfg.model_copy(update={"download": False}) for cfg in configs]
    try:
        require_datasets(configs)
    except AblationError:
        raise
    except (OSError, ValueError) as err:
        raise AblationError(
            f"{space_file}: data.name: dataset {space.data.name!r} cannot be loaded ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); put its files in place or choose another dataset"
        ) from None


def _check_data_for_plan(space: SpaceConfig, space_file: Path, console: Console) -> None:
    """`check` never downloads: files that `ablate run` will download are a note, not an error."""
    from ablations.data import DataMissingError

    try:
        require_data(space, space_file, download=False)
    except DataMissingError:
        if not space.data.download:
            raise
        console.print(f"data: {space.data.name} is not in {space.data.root}/ yet; `ablate run` downloads it first")
