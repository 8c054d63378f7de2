"""A plain PyTorch training script, ablated in script mode (examples/scripts/plain.yaml).

Run on its own it trains with DEFAULTS: `python examples/scripts/train_plain.py`. Run by
`ablate run examples/scripts/plain.yaml`, each trial gets its cell's config from
`ablations.config()` and reports every epoch with `ablations.report()`, which says when the
pruner has stopped the trial. Nothing else in it knows about the ablation suite.
"""

import os

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ablations

DEFAULTS = {
    "data": {"workers": 0},
    "model": {"hidden": 64, "activation": "relu"},
    "train": {"lr": 0.05, "epochs": 5, "batch_size": 64},
    "seed": 0,
}
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def digits(seed: int) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    """scikit-learn's 8x8 digits (bundled, no download), split 60/20/20."""
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32) / 16.0
    y = torch.tensor(y)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))  # the same split for every seed
    parts = torch.tensor_split(order, [int(0.6 * len(x)), int(0.8 * len(x))])
    return tuple(TensorDataset(x[i], y[i]) for i in parts)


@torch.no_grad()
def evaluate(model: nn.Module, data: TensorDataset) -> tuple[float, float]:
    model.eval()
    x, y = data.tensors
    logits = model(x)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def main() -> None:
    cfg = ablations.config(DEFAULTS)
    torch.manual_seed(cfg["seed"])
    device = os.environ.get("ABLATE_DEVICE", "cpu")  # the worker's device, set by the suite
    train, val, test = digits(cfg["seed"])
    hidden, act = cfg["model"]["hidden"], ACTIVATIONS[cfg["model"]["activation"]]
    model = nn.Sequential(nn.Linear(64, hidden), act(), nn.Linear(hidden, 10)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg["train"]["lr"], momentum=0.9)
    loader = DataLoader(train, batch_size=cfg["train"]["batch_size"], shuffle=True, num_workers=cfg["data"]["workers"])
    epochs = cfg["train"]["epochs"]
    for epoch in range(1, epochs + 1):
        model.train()
        total, seen = 0.0, 0
        for x, y in loader:
            loss = F.cross_entropy(model(x.to(device)), y.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, seen = total + loss.item() * len(x), seen + len(x)
        model.cpu()
        val_loss, val_acc = evaluate(model, val)
        extra = {"test_acc": evaluate(model, test)[1]} if epoch == epochs else {}  # the report's test column
        model.to(device)
        print(f"epoch {epoch}: train_loss {total / seen:.4f} val_acc {val_acc:.4f}")
        if ablations.report(epoch, train_loss=total / seen, val_loss=val_loss, val_acc=val_acc, **extra):
            print(f"pruned after epoch {epoch}")
            return


if __name__ == "__main__":
    main()
