"""Sweeps through the CLI on tiny datasets written in the real on-disk formats, read by the real
loading code with `download: false`; and the errors for missing files and devices."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch
import torchvision

from ablations.config import DataConfig
from ablations.data import DataMissingError, load_dataset
from ablations.data.datasets import split_indices
from ablations.study import open_storage
from tests.data_files import write_cifar, write_mnist, write_png_folder

SPACE = """
name: {name}
seeds: 1
pruner: {{name: none}}
data: {data}
model: {{width: 32, depth: 1}}
train: {{epochs: {epochs}, lr: 0.05, batch_size: 32}}
factors: {factors}
"""


def sweep(ablate, write_space, name: str, data: str, factors: str, epochs: int = 3) -> list[optuna.trial.FrozenTrial]:
    space = write_space(SPACE.format(name=name, data=data, factors=factors, epochs=epochs), f"{name}.yaml")
    result = ablate("run", str(space), "--device", "cpu", "--no-report")
    assert result.code == 0, result
    trials = optuna.load_study(study_name=name, storage=open_storage(None)).trials
    assert trials and all(t.user_attrs["outcome"] == "complete" for t in trials), [t.user_attrs for t in trials]
    return trials


@pytest.mark.parametrize(("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_family_from_idx_gz_files(ablate, write_space, tmp_path, name, folder):
    write_mnist(tmp_path / "data", folder)
    data = f"{{name: {name}, root: {tmp_path / 'data'}, download: false}}"
    trials = sweep(ablate, write_space, name, data, "{data.normalize: [train, standard]}")
    assert len(trials) == 2
    for trial in trials:  # the class blocks are learnable only if images and labels were read in step
        assert trial.user_attrs["history"][-1]["val_acc"] > 0.6 and trial.user_attrs["test_acc"] > 0.6
    loaded = load_dataset(DataConfig(name=name, root=str(tmp_path / "data")))
    assert (len(loaded.train), len(loaded.val), len(loaded.test)) == (240, 60, 100)  # test: the t10k files
    assert loaded.input_shape == (1, 28, 28) and loaded.train.x.dtype == torch.uint8
    check = ablate("check", str(tmp_path / f"{name}.yaml"))
    assert check.code == 0 and "(1, 28, 28)" in check.out


def test_cifar10_from_python_batches_with_augmentation(ablate, write_space, tmp_path):
    write_cifar(tmp_path / "data", classes=10)
    data = f"{{name: cifar10, root: {tmp_path / 'data'}, flip: true}}"
    trials = sweep(ablate, write_space, "c10", data, "{data.crop_padding: [0, 2], data.cutout: [0, 4]}")
    assert len(trials) == 4
    plain = next(t for t in trials if t.params == {"data.crop_padding": 0, "data.cutout": 0})
    assert plain.user_attrs["test_acc"] > 0.5
    histories = {tuple(h["train_loss"] for h in t.user_attrs["history"]) for t in trials}
    assert len(histories) == 4  # every augmentation level changes what the network sees
    loaded = load_dataset(DataConfig(name="cifar10", root=str(tmp_path / "data"), subset=0.5))
    assert (len(loaded.train), len(loaded.val), len(loaded.test)) == (120, 30, 25)
    assert loaded.input_shape == (3, 32, 32) and loaded.num_classes == 10


def test_cifar100_reads_the_fine_labels(ablate, write_space, tmp_path):
    write_cifar(tmp_path / "data", classes=100)
    data = f"{{name: cifar100, root: {tmp_path / 'data'}, normalize: standard}}"
    sweep(ablate, write_space, "c100", data, "{train.lr: [0.05]}", epochs=1)
    loaded = load_dataset(DataConfig(name="cifar100", root=str(tmp_path / "data"), normalize="standard"))
    assert loaded.num_classes == 100 and len(loaded.test) == 50
    assert set(loaded.test.y.tolist()) == set(range(50))  # fine labels 0..49 of the 50 test images
    mean = loaded.train.mean.flatten() / 255
    assert torch.allclose(mean, torch.tensor([0.5071, 0.4865, 0.4409]))


def test_image_folder_in_memory_and_streamed_train_identically(ablate, write_space, tmp_path):
    write_png_folder(tmp_path / "pngs", classes=3, per_class=20, size=12)
    data = f"{{name: image_folder, path: {tmp_path / 'pngs'}, image_size: 8, workers: 1, cutout: 2}}"
    trials = sweep(ablate, write_space, "folder", data, "{data.in_memory: [true, false]}", epochs=6)
    memory, stream = (next(t for t in trials if t.params["data.in_memory"] is v) for v in (True, False))
    # Same examples, same order, same normalization, same augmentation: the same run.
    for a, b in zip(memory.user_attrs["history"], stream.user_attrs["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_acc"] == b["val_acc"]
    assert memory.user_attrs["history"][-1]["val_acc"] > 0.6
    check = ablate("check", str(tmp_path / "folder.yaml"))
    assert check.code == 0 and "(3, 8, 8)" in check.out


def test_image_folder_with_train_and_test_subfolders_uses_test_as_the_test_set(tmp_path):
    write_png_folder(tmp_path / "pngs" / "train", classes=2, per_class=10, size=8)
    write_png_folder(tmp_path / "pngs" / "test", classes=2, per_class=3, size=8, seed=1)
    loaded = load_dataset(DataConfig(name="image_folder", path=str(tmp_path / "pngs"), image_size=8))
    assert (len(loaded.train), len(loaded.val), len(loaded.test)) == (16, 4, 6)
    assert loaded.train.x.shape[1:] == (3, 8, 8) and loaded.num_classes == 2


def test_image_folder_subset_decodes_only_the_kept_images_and_matches_the_stream(tmp_path):
    write_png_folder(tmp_path / "pngs", classes=3, per_class=20, size=8)
    cfg = {"name": "image_folder", "path": str(tmp_path / "pngs"), "image_size": 8, "subset": 12, "workers": 0}
    memory = load_dataset(DataConfig(**cfg))
    stream = load_dataset(DataConfig(**cfg, in_memory=False))
    for a, b in ((memory.train, stream.train), (memory.val, stream.val), (memory.test, stream.test)):
        (xa, ya), (xb, yb) = (next(s.batches(100)) for s in (a, b))
        assert len(ya) == len(yb) and torch.equal(ya, yb) and torch.equal(xa, xb)
    assert (len(memory.train), len(memory.val), len(memory.test)) == (8, 2, 2)

    idx = split_indices(60, None, DataConfig(**cfg))
    kept = set(torch.cat([idx.train, idx.val, idx.test]).tolist())
    files = [path for path, _ in torchvision.datasets.ImageFolder(str(tmp_path / "pngs")).samples]
    Path(files[min(set(range(60)) - kept)]).write_bytes(b"not a png")
    reload = DataConfig(**{**cfg, "workers": 1})  # another cache key, the same 12 images
    assert len(load_dataset(reload).train) == 8  # the broken file is not among them, so never read
    broken = files[min(kept)]
    Path(broken).write_bytes(b"not a png")
    with pytest.raises(DataMissingError, match=f"{broken} cannot be read as an image"):
        load_dataset(DataConfig(**{**cfg, "workers": 2}))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("{name: mnist, root: nowhere}", ["train-images-idx3-ubyte", "nowhere/MNIST/raw/", "data.download: true"]),
        ("{name: fashion_mnist, root: nowhere}", ["nowhere/FashionMNIST/raw/", "t10k-labels-idx1-ubyte.gz"]),
        ("{name: cifar10, root: nowhere}", ["data_batch_1", "nowhere/cifar-10-batches-py/", "cifar-10-python.tar.gz"]),
        ("{name: cifar100, root: nowhere}", ["nowhere/cifar-100-python/", "cifar-100-python.tar.gz"]),
        ("{name: image_folder, path: nowhere}", ["data.path=nowhere: no such folder", "<class>"]),
    ],
)
def test_missing_dataset_is_one_line_saying_what_to_put_where(ablate, write_space, data, expected):
    space = write_space(SPACE.format(name="missing", data=data, factors="{}", epochs=1))
    for command in ("run", "check"):
        result = ablate(command, str(space), "--device", "cpu") if command == "run" else ablate(command, str(space))
        assert result.code == 2, result
        assert result.err.startswith("error: ") and len(result.err.strip().splitlines()) == 1
        assert "Traceback" not in result.err
        for text in expected:
            assert text in result.err
    assert not Path("runs/ablate.journal").exists() or "missing" not in Path("runs/ablate.journal").read_text()


def test_missing_cuda_device_is_bad_input(ablate, write_space):
    space = write_space(SPACE.format(name="dev", data="{name: digits}", factors="{}", epochs=1))
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU; the message is for machines without one")
    for device in ("cuda", "cuda:1"):
        result = ablate("run", str(space), "--device", device)
        assert result.code == 2 and "no CUDA device is visible" in result.err and "--device cpu" in result.err
    result = ablate("run", str(space), "--device", "gpu")
    assert result.code == 2 and "expected auto, cpu, cuda or cuda:N" in result.err


def test_failed_download_is_one_line_naming_the_folder(ablate, write_space, monkeypatch, tmp_path):
    # A mirror that refuses connections stands in for a machine without network; the download
    # itself runs through torchvision as it would for a user.
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    data = f"{{name: mnist, root: {tmp_path / 'data'}, download: true}}"
    space = write_space(SPACE.format(name="offline", data=data, factors="{}", epochs=1))
    result = ablate("run", str(space), "--device", "cpu")
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1, result
    assert f"download into {tmp_path / 'data' / 'MNIST' / 'raw'}/ failed" in result.err
    assert "train-images-idx3-ubyte.gz" in result.err
