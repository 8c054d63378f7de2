"""Datasets by name and the input pipeline. Importing the source modules registers their names."""

from ablations.data import builtin, folder, sequence, vision  # noqa: F401 - registration
from ablations.data.augment import Augment
from ablations.data.datasets import (
    DATASETS,
    DataMissingError,
    Dataset,
    Split,
    dataset_info,
    load_dataset,
    require_datasets,
)

__all__ = [
    "DATASETS",
    "Augment",
    "DataMissingError",
    "Dataset",
    "Split",
    "dataset_info",
    "load_dataset",
    "require_datasets",
]
