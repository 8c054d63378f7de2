"""Per-layer diagnostics: why a design choice trains or fails, seen layer by layer.

At initialisation, on one fixed batch of real training data: per activation layer, the mean and
std of its input (the pre-activation) and output, and the fraction of dead units (zero for the
whole batch; a unit of a conv layer is a channel); per weight layer, the gradient norm after one
backward pass. After every epoch: the weight-gradient norms again, on the same batch, and the
ratio of the first layer's to the last layer's (vanishing < 1 < exploding).

A probe never changes the trial it watches: it runs under a forked random stream, restores batch
norm's running statistics, and clears the gradients it made, so a run with diagnostics on gives
the same numbers as one with them off. The record is plain JSON (4 significant digits, None for
non-finite values) for the study storage; `scalars` flattens it for the tracker.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ablations.models.init import weighted_layers
from ablations.models.layers import NORM_TYPES
from ablations.models.steps import StepBatchNorm

BATCH_SIZE = 256  # examples in the diagnostic batch: enough for stable per-layer statistics
INIT_STATS = ("pre_mean", "pre_std", "act_mean", "act_std", "dead")
NORM_STATS = ("norm_mean", "norm_std")  # of each norm layer's output


def compact(x: float) -> float | None:
    """4 significant digits; None for NaN/inf, which JSON has no standard spelling for."""
    return float(f"{x:.4g}") if math.isfinite(x) else None


def first_batch(split: Any, size: int = BATCH_SIZE) -> tuple[Tensor, Tensor]:
    """The first `size` examples of a split (a `Batches`), in order, normalised and not augmented:
    the same batch for every cell and seed of a study. Under a forked random stream: a streamed
    split's DataLoader draws a seed from the global one, which would change the model's init."""
    device = split.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        return next(iter(split.batches(size)))


def activation_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The activation layers, marked by models.layers.make_activation, in forward order."""
    return [(name, m) for name, m in model.named_modules() if getattr(m, "is_activation", False)]


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    layers = set(map(id, weighted_layers(model)))
    return [(name, m) for name, m in model.named_modules() if id(m) in layers]


def norm_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The norm layers, in forward order: their outputs are what the next layer reads. A norm
    inside another (StepBatchNorm's statistics) is part of the outer one and not listed."""
    found: list[tuple[str, nn.Module]] = []
    for name, m in model.named_modules():
        inner = any(name.startswith(outer + ".") for outer, _ in found)
        if isinstance(m, (*NORM_TYPES, StepBatchNorm)) and not inner:
            found.append((name, m))
    return found


def dead_fraction(act: Tensor, unit_dim: int = 1) -> float:
    """Fraction of units that are zero for every example (a conv unit is a channel at all positions;
    a sequence model's unit is a feature at all steps: its modules set `unit_dim = -1`)."""
    act = act.detach().movedim(unit_dim, 0)
    alive = act.ne(0).reshape(act.shape[0], -1).any(1)
    return 1.0 - alive.float().mean().item()


@contextmanager
def _untouched(model: nn.Module) -> Iterator[None]:
    """Run a probe without leaving a trace: random streams, buffers, grads and mode as they were."""
    device = next(model.parameters()).device
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    was_training = model.training
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        try:
            yield
        finally:
            with torch.no_grad():
                for name, b in model.named_buffers():
                    b.copy_(buffers[name])
            model.zero_grad(set_to_none=True)
            model.train(was_training)


class Diagnostics:
    """Probes one model on one batch; `record()` is what the trial stores."""

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor) -> None:
        self.model, self.x, self.y = model, x, y
        self.activations = activation_modules(model)
        self.weights = weight_layers(model)
        self.norms = norm_modules(model)
        self.init: dict[str, list[float | None]] = {}
        self.epochs: list[list[float | None]] = []  # per epoch, the weight-gradient norm of each layer

    def _grad_norms(self) -> list[float]:
        """Weight-gradient norms after one forward/backward in training mode (what the optimizer sees)."""
        self.model.train()
        self.model.zero_grad(set_to_none=True)
        F.cross_entropy(self.model(self.x), self.y).backward()
        return [m.weight.grad.norm().item() if m.weight.grad is not None else 0.0 for _, m in self.weights]

    def at_init(self) -> dict[str, float]:
        """Activation statistics and gradient norms of the freshly initialised model."""
        # A module may run more than once per forward (a recurrent cell's, once per step): its
        # statistics are over all its calls, the steps stacked like more examples.
        inputs: dict[int, list[Tensor]] = {id(m): [] for _, m in self.activations + self.norms}
        outputs: dict[int, list[Tensor]] = {id(m): [] for _, m in self.activations + self.norms}

        def hook(module: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
            inputs[id(module)].append(args[0].detach().float())
            outputs[id(module)].append(out.detach().float())

        with _untouched(self.model):
            handles = [m.register_forward_hook(hook) for _, m in self.activations + self.norms]
            try:
                grads = self._grad_norms()
            finally:
                for handle in handles:
                    handle.remove()
        stats: dict[str, list[float]] = {k: [] for k in INIT_STATS + NORM_STATS}
        for _, m in self.activations:
            if not outputs[id(m)]:  # not on this forward's path: no statistics, not an error
                for k in INIT_STATS:
                    stats[k].append(math.nan)
                continue
            pre, act = torch.cat(inputs[id(m)]), torch.cat(outputs[id(m)])
            stats["pre_mean"].append(pre.mean().item())
            stats["pre_std"].append(pre.std().item())
            stats["act_mean"].append(act.mean().item())
            stats["act_std"].append(act.std().item())
            stats["dead"].append(dead_fraction(act, getattr(m, "unit_dim", 1)))
        for _, m in self.norms:
            if not outputs[id(m)]:
                stats["norm_mean"].append(math.nan)
                stats["norm_std"].append(math.nan)
                continue
            out = torch.cat(outputs[id(m)])
            stats["norm_mean"].append(out.mean().item())
            stats["norm_std"].append(out.std().item())
        self.init = {k: [compact(v) for v in values] for k, values in stats.items()}
        self.init["grad_norm"] = [compact(g) for g in grads]
        return self.scalars_init()

    def after_epoch(self) -> dict[str, float]:
        """Weight-gradient norms of the current model on the diagnostic batch, and the first/last ratio."""
        with _untouched(self.model):
            grads = self._grad_norms()
        self.epochs.append([compact(g) for g in grads])
        return self.scalars_epoch(-1)

    @staticmethod
    def ratio(norms: list[float | None]) -> float | None:
        if not norms or norms[0] is None or not norms[-1]:
            return None
        return compact(norms[0] / norms[-1])

    def record(self) -> dict[str, Any]:
        return {
            "layers": [name for name, _ in self.activations],
            "weights": [name for name, _ in self.weights],
            "norms": [name for name, _ in self.norms],
            "init": {**self.init, "grad_ratio": self.ratio(self.init.get("grad_norm", []))},
            "epoch_grad_norm": self.epochs,
            "epoch_grad_ratio": [self.ratio(g) for g in self.epochs],
        }

    def scalars_init(self) -> dict[str, float]:
        """Flat `init/<stat>/<layer>` scalars for a tracker."""
        out: dict[str, float] = {}
        for stat in INIT_STATS:
            for (name, _), value in zip(self.activations, self.init[stat], strict=True):
                if value is not None:
                    out[f"init/{stat}/{name}"] = value
        for stat in NORM_STATS:
            for (name, _), value in zip(self.norms, self.init.get(stat, []), strict=True):
                if value is not None:
                    out[f"init/{stat}/{name}"] = value
        for (name, _), value in zip(self.weights, self.init["grad_norm"], strict=True):
            if value is not None:
                out[f"init/grad_norm/{name}"] = value
        ratio = self.ratio(self.init["grad_norm"])
        if ratio is not None:
            out["init/grad_ratio"] = ratio
        return out

    def scalars_epoch(self, index: int) -> dict[str, float]:
        norms = self.epochs[index]
        out = {f"grad_norm/{name}": v for (name, _), v in zip(self.weights, norms, strict=True) if v is not None}
        ratio = self.ratio(norms)
        if ratio is not None:
            out["grad_ratio"] = ratio
        return out
