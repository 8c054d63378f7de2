"""`ablate check` shows everything it can without the data: parameter counts and cost first,
then the missing-data line (exit 2); files that `ablate run` will download are only a note."""

from __future__ import annotations

import re

from tests.conftest import ROOT

CIFAR_RESNET = str(ROOT / "search_spaces" / "cifar10_resnet.yaml")


def test_check_without_the_cifar_files_prints_the_resnet_parameter_counts_then_exits_2(ablate, tmp_path):
    result = ablate("check", CIFAR_RESNET)
    assert result.code == 2
    # He et al. 2015, Table 6: ResNet-20 has 0.27M parameters, ResNet-56 0.85M (option A shortcuts
    # have no parameters, so plain and residual nets count the same).
    counts = dict(re.findall(r"depth=(\d+) model\.residual=True\s*│\s*([\d,]+)", result.out))
    assert counts == {"20": "269,722", "32": "464,154", "44": "658,586", "56": "853,018"}, result.out
    assert "model variants on cifar10 (3, 32, 32)" in result.out
    assert "cost without pruning (the worst case): 1,456 epochs" in result.out
    assert result.err.count("\n") == 1 and "data_batch_1" in result.err and "data/cifar-10-batches-py/" in result.err
    assert not (tmp_path / "data").exists(), "check looks, it never writes"


def test_check_never_downloads_what_run_would_download(ablate, tmp_path):
    result = ablate("check", CIFAR_RESNET, "--set", "data.download=true", "--set", "depth=20")
    assert result.code == 0, result.err
    assert "269,722" in result.out
    assert "data: cifar10 is not in data/ yet; `ablate run` downloads it first" in result.out
    assert not (tmp_path / "data").exists()


def test_check_of_a_missing_image_folder_shows_the_plan_then_exits_2(ablate, write_space, tmp_path):
    space = write_space(
        """
        name: folder
        data: {name: image_folder, path: no_such_folder}
        model: {arch: cnn}
        train: {epochs: 4}
        factors: {norm: [none, batch]}
        """
    )
    result = ablate("check", str(space))
    assert result.code == 2
    assert "parameter counts need the data's shape and classes" in result.out
    assert "cost without pruning (the worst case): 8 epochs" in result.out
    assert "no_such_folder" in result.err and result.err.count("\n") == 1
