"""What a trial trains: data and model built from the config, then per-epoch records from the
training loop (`train.loop`: `builtin` or your function by import path).

Every loop has one contract: it yields one dict of metrics per epoch (or per evaluation step),
holding the objective's metric; `epoch` (1, 2, ...) is added when a record has none. The trial
layer closes the iterator when the trial is pruned or diverged. Your function is called with the
arguments its signature names among `model`, `data` (an `ablations.data.Dataset`: `train`, `val`,
`test` splits with `.batches(batch_size, generator)`, `num_classes`, `input_shape`, `device`),
`config` (the resolved config as a dict), `seed` and `device`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ablations.data import Dataset, load_dataset
from ablations.diagnostics import Diagnostics, first_batch
from ablations.models import build_model
from ablations.plugins.imports import PluginError, call_with, is_import_path, resolve
from ablations.registry import Registry
from ablations.train import evaluate, fit

if TYPE_CHECKING:
    from ablations.config import SpaceConfig, TrialConfig

Records = Iterator[dict[str, float]]
Loop = Callable[..., Iterator[Mapping[str, Any]]]
LOOPS: Registry[Loop] = Registry("training loop")


@LOOPS.register("builtin")
def builtin_loop(model: nn.Module, data: Dataset, config: dict[str, Any], seed: int) -> Records:
    """The suite's own loop (ablations.train.fit) under the common contract."""
    from ablations.config import TrainConfig

    for record in fit(model, data, TrainConfig.model_validate(config["train"]), seed):
        yield record.metrics()


@dataclass
class Training:
    """A trial's training, ready to iterate: its records, the probe watching it, and the test score."""

    records: Records
    model: nn.Module | None = None  # None when the training runs elsewhere (a script)
    probe: Diagnostics | None = None
    test_acc: Callable[[dict[str, float] | None], float | None] = field(default=lambda last: None)


def start_training(space: SpaceConfig, config: TrialConfig, seed: int, device: torch.device) -> Training:
    """Build the data and the model of one trial and start its training loop (lazily: nothing
    trains until the records are iterated)."""
    data = load_dataset(config.data, device)
    batch_x, batch_y = first_batch(data.train)  # for LSUV, a user model's shapes and the diagnostics
    model = build_model(config.model, data.input_shape, data.num_classes, batch_x, space.chosen_model_keys())
    model = model.to(device)
    probe = Diagnostics(model, batch_x, batch_y) if space.diagnostics else None
    loop = (
        LOOPS[config.train.loop] if not is_import_path(config.train.loop) else resolve(config.train.loop, "train.loop")
    )
    offered = {"model": model, "data": data, "config": config.model_dump(mode="json"), "seed": seed, "device": device}
    records = checked(call_with(loop, offered, {}, "train.loop"), config.train.loop, space.objective.metric)

    def test_acc(last: dict[str, float] | None) -> float | None:
        if last is not None and "test_acc" in last:  # the loop measured it itself
            return last["test_acc"]
        return evaluate(model, data.test, precision=config.train.precision)[1]

    return Training(records, model, probe, test_acc)


def checked(records: Any, loop: str, metric: str) -> Records:
    """The loop's records as plain float dicts with an `epoch`; one clear error when the contract breaks."""
    if not hasattr(records, "__iter__") or isinstance(records, (Mapping, str)):
        raise PluginError(f"train.loop: {loop} returned {type(records).__name__}; yield one dict of metrics per epoch")
    iterator = iter(records)
    try:
        for number, record in enumerate(iterator, start=1):
            if not isinstance(record, Mapping):
                raise PluginError(f"train.loop: {loop} yielded {type(record).__name__}; yield dicts of metrics")
            if metric not in record:
                raise PluginError(
                    f"train.loop: {loop} yielded a record without {metric!r} (the objective's metric); "
                    f"it has: {', '.join(map(str, record)) or '(nothing)'}"
                )
            out = {str(k): _number(v, k, loop) for k, v in record.items()}
            out["epoch"] = int(out.get("epoch", number))
            yield out
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # a pruned trial stops the loop (its generator's finally blocks run)


def _number(value: Any, key: Any, loop: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    try:
        return float(value)
    except (TypeError, ValueError):
        raise PluginError(f"train.loop: {loop} yielded {key}={value!r}; metrics must be numbers") from None


def diverged(record: Mapping[str, float], metric: str) -> bool:
    """A non-finite objective, or a non-finite loss: the run cannot recover (a result, not a crash)."""
    watched = [metric, *(k for k in record if k.endswith("loss"))]
    return any(not math.isfinite(record[k]) for k in watched)
