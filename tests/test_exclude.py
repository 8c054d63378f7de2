"""Levels that make no sense for an architecture: refused with the fix, or left out by `exclude:`."""

from __future__ import annotations

import pytest

from ablations.config import load_space
from ablations.errors import ConfigError
from ablations.grid import cells_of, grid_fingerprint, schedule
from tests.test_config import assert_one_clear_line

SPACE = """
name: ex
seeds: 2
pruner: {name: none}
model: {width: 8, depth: 3}
train: {epochs: 1, batch_size: 128}
factors:
  model.arch: [mlp, cnn]
  norm: [batch, instance, group]
"""


def test_instance_norm_on_the_flat_mlp_is_refused_with_the_rule_to_add(ablate, write_space):
    path = write_space(SPACE)
    result = ablate("check", str(path))
    assert_one_clear_line(
        result,
        str(path),
        "exclude",
        "model.arch=mlp norm=instance",
        "spatial positions",
        "{norm: instance, model.arch: mlp}",
    )


def test_exclude_leaves_the_rest_of_the_grid_to_run(ablate, write_space):
    path = write_space(SPACE + "exclude:\n  - {model.arch: mlp, norm: instance}\n")
    space = load_space(path)
    cells = cells_of(space)
    assert len(cells) == 5
    assert all(not (c.values["model.arch"] == "mlp" and c.values["model.norm"] == "instance") for c in cells)
    assert len(schedule(space, "ex")) == 10

    shown = ablate("check", str(path))
    assert shown.code == 0, shown.err
    assert "cells: 5" in shown.out and "excluded" in shown.out and "spatial positions" in shown.out
    ran = ablate("run", str(path), "--wandb", "disabled", "--no-report")
    assert ran.code == 0 and "ran 10 trial(s)" in ran.out and "10 complete" in ran.out, ran


def test_exclude_changes_the_grid_fingerprint(write_space):
    with_rule = load_space(write_space(SPACE + "exclude:\n  - {model.arch: mlp, norm: instance}\n", "a.yaml"))
    wider = load_space(write_space(SPACE + "exclude:\n  - {norm: instance}\n", "b.yaml"))
    assert grid_fingerprint(with_rule) != grid_fingerprint(wider)
    assert len(cells_of(wider)) == 4


@pytest.mark.parametrize(
    ("rule", "fragments"),
    [
        ("{dropout: 0.1}", ("exclude[0].dropout", "not a factor", "model.arch, norm")),
        ("{norm: layer}", ("exclude[0].norm", "'layer' is not a level", "batch, instance, group")),
        ("{}", ("exclude[0]", "empty rule")),
    ],
)
def test_bad_exclude_rules_name_the_key_and_the_allowed_values(write_space, rule, fragments):
    path = write_space(SPACE + f"exclude:\n  - {rule}\n")
    with pytest.raises(ConfigError) as err:
        load_space(path)
    assert str(path) in str(err.value) and all(f in str(err.value) for f in fragments), err.value


def test_other_rules_resnet_depth_and_zero_init_on_a_plain_net(write_space):
    with pytest.raises(ConfigError, match="6n\\+2"):
        load_space(write_space(SPACE.replace("[mlp, cnn]", "[resnet]").replace("[batch, instance, group]", "[batch]")))
    zero = SPACE.replace("  norm: [batch, instance, group]\n", "  model.residual: [false, true]\n")
    zero = zero.replace("[mlp, cnn]", "[mlp]").replace("depth: 3}", "depth: 3, zero_init_residual: true}")
    with pytest.raises(ConfigError, match="model.residual: False"):
        load_space(write_space(zero))


def test_check_shows_parameter_counts_of_every_model_variant(ablate, write_space):
    path = write_space(
        SPACE.replace("[mlp, cnn]", "[resnet]")
        .replace("depth: 3", "depth: 20, norm: batch")
        .replace("norm: [batch, instance, group]", "model.residual: [false, true]")
    )
    shown = ablate("check", str(path))
    assert shown.code == 0, shown.err
    # ResNet-20 on 1-channel 8x8 digits: 269,722 - 2 * 9 * 16 (the stem sees 1 channel, not 3).
    assert shown.out.count("269,434") == 2


def test_a_base_config_that_makes_no_sense_is_refused(write_space):
    path = write_space("name: b\nmodel: {arch: mlp, norm: instance}\n")
    with pytest.raises(ConfigError, match="model: arch mlp: instance norm .* change the base config"):
        load_space(path)
