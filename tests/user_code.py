"""A user's own package, written into the test's folder: plain PyTorch, no import of ours."""

from __future__ import annotations

import itertools
import sys
import textwrap
from pathlib import Path

_counter = itertools.count()

NETS = '''
import torch
from torch import nn


class SmallCNN(nn.Module):
    """A user's CNN: Conv -> BatchNorm2d -> ReLU, twice, pooled, classified."""

    def __init__(self, num_classes=10, channels=8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Dropout(0.1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


def functional_net(num_classes):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(64, 32), nn.Linear(32, num_classes)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x.flatten(1))))

    return Net()


def mlp(depth, norm, num_classes, input_shape, hidden=16):
    """A builder that takes depth and norm and builds the norm itself."""
    layers, width = [nn.Flatten()], int(torch.tensor(input_shape).prod())
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden) if norm == "batch" else nn.Identity(), nn.ReLU()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, num_classes))


def wrong_classes():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))


def broken(num_classes):
    raise RuntimeError("cannot build this one")


def digits(noise=0.0):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1)
    x = x + noise * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    y = torch.tensor(bunch.target)
    return {"train": (x[:1300], y[:1300]), "test": (x[1300:].numpy(), y[1300:].numpy())}


class Pairs(torch.utils.data.Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def digit_datasets():
    got = digits()
    x, y = got["train"]
    return {"train": Pairs(x[:1000], y[:1000]), "val": Pairs(x[1000:], y[1000:])}


def bad_shapes():
    return {"train": (torch.zeros(10, 4), torch.zeros(9, dtype=torch.long))}


def failing_data():
    raise FileNotFoundError("no such file: /data/mine.npz")
'''


def write_user_package(folder: Path, text: str = NETS) -> str:
    """A uniquely named package holding `nets.py`; returns its name. Unique, because imported
    modules stay in sys.modules across the tests of one process."""
    name = f"userpkg{next(_counter)}"
    package = folder / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(textwrap.dedent(text))
    sys.modules.pop(name, None)
    return name


TRANSFORMER = '''
from torch import nn


class Encoder(nn.Module):
    """torch's own TransformerEncoder (LayerNorm modules, GELU called functionally)."""

    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.inp = nn.Linear(input_shape[-1], 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, activation="gelu", batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.head(self.enc(self.inp(x)).mean(1))
'''
