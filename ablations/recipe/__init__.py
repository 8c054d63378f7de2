"""The training recipe: optimizers, learning-rate schedules, regularisers and early stopping.

Each optimizer and schedule is a registered function (ablations.registry), so a level is one
function and `train.optimizer` / `train.schedule` list exactly what is registered here.
"""

from ablations.recipe.early_stopping import EarlyStopping
from ablations.recipe.optimizers import OPTIMIZERS, make_optimizer
from ablations.recipe.regularization import classification_loss, l1_penalty, weight_tensors
from ablations.recipe.schedules import SCHEDULES, Clock, learning_rate, steps_per_epoch

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "Clock",
    "EarlyStopping",
    "classification_loss",
    "l1_penalty",
    "learning_rate",
    "make_optimizer",
    "steps_per_epoch",
    "weight_tensors",
]
