"""What a spec names, loaded: its dataset's splits and its search space adapted to that data."""
from __future__ import annotations

import search_spaces
from nas.data import load_dataset


def load_splits(spec, download: bool | None = None):
    """The spec's dataset (`data:`), split into train/val/test."""
    d = spec.data
    return load_dataset(d.name, root=d.root, input_size=d.input_size, seed=spec.seed,
                        download=d.download if download is None else download)


def load_space(spec, shape):
    """The spec's space, adapted to `shape`'s in_channels, input_size and num_classes (a dataset's `Splits` or an
    `Arch`) where the spec's `space.overrides` leave them unset."""
    overrides = dict(spec.space.overrides)
    for key in ("in_channels", "input_size", "num_classes"):
        overrides.setdefault(key, getattr(shape, key))
    return search_spaces.load(spec.space.name, **overrides)
