"""Which combinations of levels make no sense, and why: read by the validator and `ablate check`.

A rule looks at one model config and returns the reason it makes no sense, or None. It also names
the config keys involved, so a space can be told exactly which partial cell to `exclude:`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ablations.models.layers import INSTANCE_ON_VECTORS
from ablations.models.resnet import blocks_per_stage
from ablations.models.steps import SEQUENCE_NORMS

SEQUENCE_ARCHS = ("lstm", "gru", "transformer")
RECURRENT_ARCHS = ("lstm", "gru")
# Conv nets need images; every other built-in model reads any input (sequence models read an
# image (C, H, W) as H steps of C * W features, the mlp flattens).
IMAGE_ARCHS = ("cnn", "resnet")


@dataclass(frozen=True)
class Rule:
    keys: tuple[str, ...]  # the full config keys whose levels together make no sense
    check: Callable[[Any], str | None]


def _resnet_depth(cfg: Any) -> str | None:
    if cfg.arch != "resnet":
        return None
    try:
        blocks_per_stage(cfg.depth)
    except ValueError as err:
        return str(err)
    return None


def input_mismatch(arch: str, data_kind: str) -> str | None:
    """Why `arch` cannot read data of `data_kind` (a dataset Source's kind), or None."""
    if arch in IMAGE_ARCHS and data_kind == "sequence":
        return (
            f"arch {arch} convolves images (C, H, W) and cannot read sequences (T, F); "
            f"use arch {', '.join(SEQUENCE_ARCHS)} or mlp, or an image dataset"
        )
    return None


def _sequence_norm(cfg: Any) -> str | None:
    if cfg.arch in SEQUENCE_ARCHS and cfg.norm not in SEQUENCE_NORMS:
        return (
            f"arch {cfg.arch}: norm {cfg.norm} normalises over spatial positions, which a sequence's "
            f"features have none of; use one of {', '.join(SEQUENCE_NORMS)}"
        )
    return None


RULES = (
    Rule(("model.norm", "model.arch"), _sequence_norm),
    Rule(
        ("model.residual", "model.arch"),
        lambda c: (
            f"{c.arch} stacks plain recurrent layers; residual connections are the transformer's option"
            if c.residual and c.arch in RECURRENT_ARCHS
            else None
        ),
    ),
    Rule(
        ("model.heads", "model.width", "model.arch"),
        lambda c: (
            f"transformer: width {c.width} does not split into {c.heads} heads; make width a multiple of heads"
            if c.arch == "transformer" and c.width % c.heads
            else None
        ),
    ),
    Rule(
        ("model.norm", "model.arch"),
        lambda c: f"arch {c.arch}: {INSTANCE_ON_VECTORS}" if c.norm == "instance" and c.arch == "mlp" else None,
    ),
    Rule(("model.depth", "model.arch"), _resnet_depth),
    Rule(
        ("model.residual", "model.arch"),
        lambda c: (
            "cnn is the plain VGG-style net; its residual counterpart is arch resnet"
            if c.residual and c.arch == "cnn"
            else None
        ),
    ),
    Rule(
        ("model.zero_init_residual", "model.residual"),
        lambda c: (
            "zero_init_residual zeroes residual branches; a plain net (residual: false) would output a constant"
            if c.zero_init_residual and not c.residual
            else None
        ),
    ),
)


def incompatibilities(cfg: Any) -> list[tuple[tuple[str, ...], str]]:
    """(keys involved, reason) for each rule the model config breaks."""
    found = []
    for rule in RULES:
        reason = rule.check(cfg)
        if reason:
            found.append((rule.keys, reason))
    return found
