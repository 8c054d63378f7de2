"""A PyTorch Lightning script, ablated in script mode (examples/scripts/lightning.yaml).

The only ablation-specific parts: the config comes from `ablations.config()`, and a callback
reports each validation epoch with `ablations.report()` and stops the trainer when the trial is
pruned. Standalone: `python examples/scripts/train_lightning.py` (needs `pip install lightning`,
or `pip install -e ".[lightning]"`).
"""

import os

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ablations

DEFAULTS = {
    "model": {"hidden": 64, "dropout": 0.0},
    "train": {"lr": 1e-3, "epochs": 5, "batch_size": 64},
    "seed": 0,
}


class Classifier(L.LightningModule):
    def __init__(self, hidden: int, dropout: float, lr: float) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 10))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class ReportToAblate(L.Callback):
    """Each validation epoch goes to the sweep; a pruned trial stops at the end of the epoch."""

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        if ablations.report(trainer.current_epoch + 1, **metrics):
            trainer.should_stop = True


def loaders(batch_size: int) -> tuple[DataLoader, DataLoader]:
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32) / 16.0, torch.tensor(y)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, val = order[: int(0.8 * len(x))], order[int(0.8 * len(x)) :]
    return (
        DataLoader(TensorDataset(x[train], y[train]), batch_size=batch_size, shuffle=True),
        DataLoader(TensorDataset(x[val], y[val]), batch_size=512),
    )


def main() -> None:
    cfg = ablations.config(DEFAULTS)
    L.seed_everything(cfg["seed"], verbose=False)
    model = Classifier(cfg["model"]["hidden"], cfg["model"]["dropout"], cfg["train"]["lr"])
    trainer = L.Trainer(
        max_epochs=cfg["train"]["epochs"],
        accelerator="gpu" if os.environ.get("ABLATE_DEVICE") == "cuda" else "cpu",
        devices=1,
        callbacks=[ReportToAblate()],
        logger=False,  # the sweep streams the reported metrics to W&B itself
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, *loaders(cfg["train"]["batch_size"]))


if __name__ == "__main__":
    main()
