"""Datasets by name: digits (embedded), digits_distorted, CIFAR, image folders, segmentation folders."""
from nas.data import segfolder  # noqa: F401  (registers `segfolder`)
from nas.data.datasets import DataError, Splits, load_dataset, make_loaders, register_dataset

__all__ = ["DataError", "Splits", "load_dataset", "make_loaders", "register_dataset"]
