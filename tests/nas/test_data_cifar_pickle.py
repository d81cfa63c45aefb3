"""CIFAR batches are read with a restricted unpickler: numpy arrays and plain containers only, never code."""
import os
import pickle

import numpy as np
import pytest

from nas.data.datasets import DataError, load_cifar_batch, load_dataset, read_cifar


class _Reduce:
    """Pickles as `func(*args)`: what a crafted batch uses to run code on load."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _write(path, obj, protocol=pickle.DEFAULT_PROTOCOL):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return str(path)


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_a_genuine_batch_loads_with_every_protocol(tmp_path, protocol):
    data = np.random.default_rng(0).integers(0, 255, (4, 3072), dtype=np.uint8)
    path = _write(tmp_path / "data_batch_1", {b"batch_label": "training batch 1 of 5", "data": data,
                                              "labels": [3, 1, 4, 1], "filenames": [b"a.png"] * 4}, protocol)
    batch = load_cifar_batch(path, "labels")
    assert np.array_equal(batch["data"], data) and batch["labels"] == [3, 1, 4, 1]
    images, labels = read_cifar(str(tmp_path), ["data_batch_1"], "labels")
    assert images.shape == (4, 32, 32, 3) and labels == [3, 1, 4, 1]


@pytest.mark.parametrize("payload", [
    lambda s: _Reduce(os.system, f"touch {s}"),
    lambda s: _Reduce(eval, f"open({str(s)!r}, 'w')"),
    lambda s: _Reduce(open, str(s), "w"),
    lambda s: _Reduce(__import__, "os"),
])
def test_a_crafted_batch_is_refused_without_running(tmp_path, payload):
    sentinel = tmp_path / "sentinel"
    path = _write(tmp_path / "data_batch_1", {"data": payload(sentinel), "labels": [0]})
    with pytest.raises(DataError, match=r"data_batch_1: not a CIFAR batch .*refused: global \S+ is not allowed$"):
        load_cifar_batch(path, "labels")
    assert not sentinel.exists()


def test_a_crafted_cifar_folder_fails_load_dataset_in_one_line(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    sentinel = tmp_path / "sentinel"
    good = {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        _write(folder / name, good)
    _write(folder / "data_batch_3", {"data": _Reduce(os.system, f"touch {sentinel}"), "labels": [0]})
    with pytest.raises(DataError, match=r"data_batch_3: not a CIFAR batch") as e:
        load_dataset("cifar10", root=str(tmp_path))
    assert "\n" not in str(e.value) and not sentinel.exists()


@pytest.mark.parametrize("obj, message", [
    ([1, 2, 3], r"a pickled dict with keys 'data' and 'labels'"),
    ({"data": np.zeros((2, 3072), np.uint8)}, r"a pickled dict with keys 'data' and 'labels'"),
    ({"data": np.zeros((2, 7), np.uint8), "labels": [0, 1]}, r"expected 'data' of N x 3072 bytes"),
])
def test_malformed_batches_are_one_line(tmp_path, obj, message):
    path = _write(tmp_path / "test_batch", obj)
    with pytest.raises(DataError, match=message):
        read_cifar(str(tmp_path), ["test_batch"], "labels")


def test_truncated_batch_is_one_line(tmp_path):
    path = _write(tmp_path / "test_batch", {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]})
    with open(path, "rb") as f:
        head = f.read(40)
    with open(path, "wb") as f:
        f.write(head)
    with pytest.raises(DataError, match=r"test_batch: not a CIFAR batch"):
        load_cifar_batch(path, "labels")
