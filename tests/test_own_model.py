"""Ablating a user's own model and data: import paths in the YAML, levels passed to a builder or
applied to an unmodified model by swapping its layers (issue: own model and data)."""

from __future__ import annotations

import re
import textwrap

import optuna
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ablations.models.layers import LayerOptions
from ablations.plugins.swap import SwapReport, swap_activations, swap_norms
from tests.test_config import assert_one_clear_line
from tests.user_code import write_user_package


def load_study(name: str) -> optuna.Study:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend("runs/ablate.journal"))
    return optuna.load_study(study_name=name, storage=storage)


def space(pkg: str, body: str, name: str = "own") -> str:
    return f"name: {name}\nseeds: 2\npruner: {{name: none}}\n" + textwrap.dedent(body).replace("PKG", pkg)


# ------------------------------------------------------------------ numerics of a swapped model


def test_batchnorm_swapped_for_one_group_norm_is_layer_norm_over_c_h_w():
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6))
    x = torch.randn(4, 3, 9, 9)
    swap_norms(model, "group", LayerOptions(groups=1), x, SwapReport())
    assert isinstance(model[1], nn.GroupNorm) and model[1].num_groups == 1
    conv_out = model[0](x)
    expected = F.layer_norm(conv_out, conv_out.shape[1:], eps=model[1].eps)
    torch.testing.assert_close(model(x), expected)


def test_layer_norm_over_tokens_is_swapped_per_position():
    model = nn.Sequential(nn.Linear(5, 8), nn.LayerNorm(8))
    x = torch.randn(3, 7, 5)  # (N, T, features): a Transformer's layout
    swap_norms(model, "batch", LayerOptions(), x, SwapReport())
    model.train()
    out = model(x)
    hidden = model[0](x).reshape(-1, 8)
    expected = (hidden - hidden.mean(0)) / torch.sqrt(hidden.var(0, unbiased=False) + 1e-5)
    torch.testing.assert_close(out, expected.reshape(3, 7, 8), atol=1e-5, rtol=1e-4)


def test_relu_swapped_for_gelu_computes_gelu():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(inplace=True), nn.Linear(4, 2), nn.ReLU())
    report = SwapReport()
    swap_activations(model, "gelu", LayerOptions(), report)
    x = torch.randn(8, 4)
    torch.testing.assert_close(model[1](x), F.gelu(x))
    torch.testing.assert_close(model(x), F.gelu(model[2](F.gelu(model[0](x)))))
    assert report.lines() == ["2 ReLU → GELU"]


# ------------------------------------------------------------------ through the CLI


def test_unmodified_user_cnn_over_norm_and_activation(ablate, write_space, tmp_path):
    pkg = write_user_package(tmp_path)
    path = write_space(
        space(
            pkg,
            """
            data: {name: digits}
            model: {arch: "PKG.nets:SmallCNN", args: {channels: 8}}
            train: {epochs: 1, batch_size: 128}
            factors:
              norm: [batch, group, none]
              activation: [relu, gelu]
            """,
        )
    )
    check = ablate("check", str(path))
    assert check.code == 0, check.err
    out = re.sub(r"[│\s]+", " ", check.out)
    # 2 convs (8*1*9+8, 8*8*9+8) + head (8*10+10) = 754; the two norms add 2x8 each.
    assert "norm=batch activation=relu 786" in out and "norm=none activation=gelu 754" in out
    assert "2 BatchNorm2d → GroupNorm(8)" in out and "2 BatchNorm2d → Identity" in out
    assert "2 ReLU → GELU" in out and "1 Dropout" not in out
    result = ablate("run", str(path), "--wandb", "disabled")
    assert result.code == 0, result.err
    study = load_study("own")
    done = [t for t in study.trials if t.user_attrs.get("outcome") == "complete"]
    assert len(done) == 12
    # Per-layer diagnostics found the swapped activations and every weighted layer.
    diag = done[0].user_attrs["diagnostics"]
    assert len(diag["layers"]) == 2 and len(diag["weights"]) == 3


def test_builder_taking_depth_norm_and_an_args_factor(ablate, write_space, tmp_path):
    pkg = write_user_package(tmp_path)
    path = write_space(
        space(
            pkg,
            """
            model: {arch: "PKG.nets:mlp"}
            train: {epochs: 1}
            factors:
              depth: [1, 3]
              norm: [none, batch]
              model.args.hidden: [8, 16]
            """,
        )
    )
    check = ablate("check", str(path))
    assert check.code == 0, check.err
    out = re.sub(r"[│\s]+", " ", check.out)
    # depth 1, hidden 8, no norm: 64*8+8 + 8*10+10 = 610; batch norm adds 2*8 per layer.
    assert "depth=1 norm=none model.args.hidden=8 610" in out
    assert "depth=3 norm=batch model.args.hidden=16" in out and "passed: norm=batch, depth=3, hidden=16" in out
    result = ablate("run", str(path), "--wandb", "disabled", "--no-report")
    assert result.code == 0, result.err
    assert len([t for t in load_study("own").trials if t.user_attrs.get("outcome") == "complete"]) == 16


def test_torchvision_resnet18_by_import_path_with_norm_swapped(ablate, write_space):
    path = write_space(
        """
        name: tv
        seeds: 1
        pruner: {name: none}
        diagnostics: false
        data: {name: synthetic, synthetic_shape: [3, 32, 32], synthetic_size: 160, synthetic_classes: 4}
        model: {arch: "torchvision.models:resnet18"}
        train: {epochs: 1, batch_size: 32}
        factors:
          norm: [batch, group]
        """
    )
    check = ablate("check", str(path))
    assert check.code == 0, check.err
    out = re.sub(r"[│\s]+", " ", check.out)
    assert "20 BatchNorm2d → GroupNorm(32)" in out and "passed: num_classes=4" not in out
    # resnet18 with a 4-class head: 11,178,564 parameters (torchvision's 1000-class model has 11,689,512).
    assert "norm=batch 11,178,564" in out and "norm=group 11,178,564" in out
    result = ablate("run", str(path), "--wandb", "disabled", "--no-report")
    assert result.code == 0, result.err
    assert sorted(t.user_attrs["outcome"] for t in load_study("tv").trials) == ["complete", "complete"]


@pytest.mark.parametrize(
    ("function", "memory_limit"), [("digits", None), ("digit_datasets", None), ("digit_datasets", 0.01)]
)
def test_dataset_function_returning_tensors_or_datasets(ablate, write_space, tmp_path, function, memory_limit):
    pkg = write_user_package(tmp_path)
    limit = f", memory_limit_mb: {memory_limit}, workers: 0" if memory_limit else ""
    path = write_space(
        space(
            pkg,
            f"""
            data: {{name: "PKG.nets:{function}"{limit}}}
            model: {{width: 16, depth: 1}}
            train: {{epochs: 2, batch_size: 128}}
            factors:
              norm: [none, batch]
            """,
        )
    )
    check = ablate("check", str(path))
    assert check.code == 0, check.err
    assert f"model variants on {pkg}.nets:{function} (1, 8, 8)" in check.out
    result = ablate("run", str(path), "--wandb", "disabled", "--no-report")
    assert result.code == 0, result.err
    trials = [t for t in load_study("own").trials if t.user_attrs.get("outcome") == "complete"]
    assert len(trials) == 4
    assert all(t.value > 0.5 for t in trials), [t.value for t in trials]  # it learned the digits


def test_dataset_args_are_a_factor(ablate, write_space, tmp_path):
    pkg = write_user_package(tmp_path)
    path = write_space(
        space(
            pkg,
            """
            data: {name: "PKG.nets:digits"}
            model: {width: 16, depth: 1}
            train: {epochs: 2, batch_size: 128}
            factors:
              data.args.noise: [0.0, 8.0]
            """,
        )
    )
    result = ablate("run", str(path), "--wandb", "disabled", "--no-report")
    assert result.code == 0, result.err
    by_noise = {}
    for t in load_study("own").trials:
        by_noise.setdefault(t.user_attrs["cell"]["data.args.noise"], []).append(t.value)
    assert min(by_noise[0.0]) > max(by_noise[8.0]), by_noise  # the noise the args asked for was applied


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ('model: {arch: "nosuchpkg.nets:Net"}', ("model.arch", "no module named 'nosuchpkg'")),
        ('model: {arch: "PKG.nets:Nope"}', ("model.arch", "has no attribute 'Nope'", "SmallCNN")),
        ('model: {arch: "PKG.nets:SmallCNN"}\nfactors: {depth: [1, 2]}', ("factors.depth", "does not take `depth`")),
        ('model: {arch: "PKG.nets:SmallCNN", args: {kernel: 3}}', ("model.args", "kernel", "channels")),
        ('data: {name: "PKG.nets:bad_shapes"}', ("data.name", "shape (10, 4)", "(9,)")),
        ('data: {name: "PKG.nets:failing_data"}', ("data.name", "FileNotFoundError", "/data/mine.npz")),
        ("model: {arch: mlp, args: {a: 1}}", ("model.args", "arch mlp takes none")),
    ],
)
def test_bad_user_code_gives_one_clear_line(ablate, write_space, tmp_path, body, fragments):
    pkg = write_user_package(tmp_path)
    path = write_space(space(pkg, body + "\ntrain: {epochs: 1}\n"))
    assert_one_clear_line(ablate("check", str(path)), *fragments)
    assert_one_clear_line(ablate("run", str(path), "--wandb", "disabled"), *fragments)
    assert not (tmp_path / "runs" / "ablate.journal").exists(), "bad input never creates a study"


def test_a_model_whose_output_does_not_fit_the_classes(ablate, write_space, tmp_path):
    pkg = write_user_package(tmp_path)
    path = write_space(space(pkg, 'model: {arch: "PKG.nets:wrong_classes"}\ntrain: {epochs: 1}\n'))
    assert_one_clear_line(ablate("check", str(path)), "outputs shape (2, 3)", "10 classes")
    result = ablate("run", str(path), "--wandb", "disabled", "--no-report")
    assert result.code == 1  # at run time, each trial fails with the same message
    errors = {t.user_attrs["error"] for t in load_study("own").trials}
    assert len(errors) == 1 and "outputs shape (2, 3)" in errors.pop()


def test_a_builder_that_raises_fails_its_trials_and_the_sweep_goes_on(ablate, write_space, tmp_path):
    pkg = write_user_package(tmp_path)
    path = write_space(
        space(
            pkg,
            """
            model: {width: 16, depth: 1}
            train: {epochs: 1}
            factors:
              model.arch: [mlp, "PKG.nets:broken"]
            """,
        )
    )
    result = ablate("run", str(path), "--wandb", "disabled", "--no-report")
    assert result.code == 1
    outcomes = {}
    for t in load_study("own").trials:
        outcomes.setdefault(t.user_attrs["cell"]["model.arch"], []).append(t.user_attrs["outcome"])
    assert outcomes["mlp"] == ["complete", "complete"]
    assert outcomes[f"{pkg}.nets:broken"] == ["failed", "failed"]
    errors = [t.user_attrs["error"] for t in load_study("own").trials if t.user_attrs["outcome"] == "failed"]
    assert all("cannot build this one" in e for e in errors)


def test_functional_activations_are_named_in_check(ablate, write_space, tmp_path):
    pkg = write_user_package(tmp_path)
    body = 'model: {arch: "PKG.nets:functional_net"}\ntrain: {epochs: 1}\nfactors: {activation: [relu, gelu]}'
    path = write_space(space(pkg, body))
    result = ablate("check", str(path))
    assert result.code == 0, result.err
    out = re.sub(r"[│\s]+", " ", result.out)
    assert "activation swapped nothing" in out
    assert "functional activations in forward() are not swapped: relu ×1" in out


def test_torch_transformer_layers_get_their_norms_swapped_per_position(ablate, write_space, tmp_path):
    from tests.user_code import TRANSFORMER

    pkg = write_user_package(tmp_path, TRANSFORMER)
    body = f"""
        data: {{name: digits_rows}}
        model: {{arch: "{pkg}.nets:Encoder"}}
        train: {{epochs: 1, optimizer: adam, lr: 0.003}}
        factors:
          norm: [batch, rms, none]
        """
    path = write_space(space(pkg, body).replace("seeds: 2", "seeds: 1"))
    check = ablate("check", str(path))
    assert check.code == 0, check.err
    out = re.sub(r"[│\s]+", " ", check.out)
    assert "2 LayerNorm → BatchNorm1d per position" in out and "2 LayerNorm → RMSNorm" in out
    result = ablate("run", str(path), "--wandb", "disabled")
    assert result.code == 0, result.err  # the report copes with a model without activation modules
    assert sorted(t.user_attrs["outcome"] for t in load_study("own").trials) == ["complete"] * 3
