"""Datasets by name. Each loader returns a `Dataset` of tensors held in memory."""

from ablations.data.datasets import DATASETS, Dataset, Split, load_dataset

__all__ = ["DATASETS", "Dataset", "Split", "load_dataset"]
