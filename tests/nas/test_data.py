import os
import pickle

import numpy as np
import pytest
import torch

from nas.data.datasets import DataError, load_dataset, make_loaders, stratified_split


def test_digits_is_real_and_stratified():
    s = load_dataset("digits", seed=0)
    assert (s.num_classes, s.in_channels, s.input_size) == (10, 1, 32)
    assert len(s.train) + len(s.val) + len(s.test) == 1797
    x, y = s.train[0]
    assert x.shape == (1, 32, 32) and -1.0 <= float(x.min()) and float(x.max()) <= 1.0
    val_labels = torch.stack([s.val[i][1] for i in range(len(s.val))])
    counts = torch.bincount(val_labels, minlength=10)
    assert counts.min() >= 25  # every class present in proportion (~27 each)


def test_split_depends_on_seed_and_is_disjoint():
    labels = np.repeat(np.arange(4), 20)
    a = stratified_split(labels, (0.25, 0.25), seed=0)
    b = stratified_split(labels, (0.25, 0.25), seed=1)
    assert a != b
    assert not set(a[0]) & set(a[1]) and not set(a[1]) & set(a[2])
    assert sorted(a[0] + a[1] + a[2]) == list(range(80))


def _write_cifar(root, n_per_batch=6):
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 255, (n_per_batch, 3072), dtype=np.uint8),
                 "labels": [i % 10 for i in range(n_per_batch)]}
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(batch, f)


def test_digits_distorted_keeps_the_split_and_labels_and_is_seeded():
    plain = load_dataset("digits", input_size=16, seed=3)
    hard = load_dataset("digits_distorted", input_size=16, seed=3, copies=2)
    for p, h in ((plain.train, hard.train), (plain.val, hard.val), (plain.test, hard.test)):
        labels = torch.stack([p[i][1] for i in range(len(p))])
        assert torch.equal(h.tensors[1], labels.repeat(2))  # each split holds copies of its own source images
        assert h.tensors[0].shape == (2 * len(p), 1, 16, 16)
    x_plain = torch.stack([plain.train[i][0] for i in range(len(plain.train))])
    x_hard = hard.train.tensors[0]
    assert (x_hard[: len(x_plain)] - x_plain).abs().mean() > 0.2  # distorted, not the same images
    assert not torch.equal(x_hard[: len(x_plain)], x_hard[len(x_plain):])  # two different distortions per image
    assert torch.equal(load_dataset("digits_distorted", input_size=16, seed=3, copies=2).val.tensors[0], hard.val.tensors[0])
    # without noise the distortion only moves the digit: the background stays at -1 and values stay in range
    clean = load_dataset("digits_distorted", input_size=16, seed=3, copies=1, noise=0).train.tensors[0]
    assert clean.min() >= -1 - 1e-5 and clean.max() <= 1 + 1e-5
    assert (clean[:, :, 0, :] < -0.9).float().mean() > 0.5  # the top row: mostly background
    with pytest.raises(DataError, match="copies >= 1"):
        load_dataset("digits_distorted", copies=0)


def test_cifar_from_a_tiny_local_folder(tmp_path):
    _write_cifar(tmp_path)
    s = load_dataset("cifar10", root=str(tmp_path), input_size=32)
    assert s.num_classes == 10 and len(s.test) == 6 and len(s.train) + len(s.val) == 30
    x, y = s.train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32


def test_missing_cifar_file_shows_expected_layout(tmp_path):
    _write_cifar(tmp_path)
    os.remove(tmp_path / "cifar-10-batches-py" / "test_batch")
    with pytest.raises(DataError, match=r"test_batch' is missing; expected layout: .*data_batch_1"):
        load_dataset("cifar10", root=str(tmp_path))


def test_imagefolder_layout_error(tmp_path):
    with pytest.raises(DataError, match="expected layout: ROOT/<class name>/<image>"):
        load_dataset("imagefolder", root=str(tmp_path / "nope"))


def test_unknown_dataset_suggests():
    with pytest.raises(DataError, match="did you mean 'digits'"):
        load_dataset("digitz")


def test_synthetic_segmentation_masks_match_images():
    s = load_dataset("synthetic_segmentation", n_train=4, n_val=2, n_test=2, input_size=32)
    x, m = s.train[0]
    assert x.shape == (3, 32, 32) and m.shape == (32, 32) and s.task == "segmentation"
    assert set(m.unique().tolist()) <= {0, 1, 2} and (m > 0).any()
    # foreground pixels were painted with a flat colour: their std over the shape is small vs background noise
    fg = x[:, m == m[m > 0][0]]
    assert fg.std(dim=1).max() < 1e-6 or fg.shape[1] < 2


def test_loaders_are_seeded():
    s = load_dataset("digits")
    a = next(iter(make_loaders(s, 16, seed=3)[0]))[1]
    b = next(iter(make_loaders(s, 16, seed=3)[0]))[1]
    c = next(iter(make_loaders(s, 16, seed=4)[0]))[1]
    assert torch.equal(a, b) and not torch.equal(a, c)
