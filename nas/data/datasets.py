"""Datasets: digits (embedded default), CIFAR-10/100 from disk, any ImageFolder, synthetic segmentation."""
from __future__ import annotations

import codecs
import os
import pickle
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from nas.errors import UserError

DATASETS: dict[str, Callable[..., "Splits"]] = {}


def register_dataset(name: str):
    """Decorator: register a loader `fn(root, input_size, seed, download, **kw) -> Splits`."""

    def wrap(fn):
        DATASETS[name] = fn
        return fn

    return wrap


class DataError(UserError):
    """A dataset that is missing, malformed or unknown."""


@dataclass
class Splits:
    """Train/val/test datasets with what a model needs to know about them."""

    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    in_channels: int
    input_size: int
    task: str = "classification"


def load_dataset(name: str = "digits", root: str | None = None, input_size: int | None = None, seed: int = 0,
                 download: bool = False, **kwargs) -> Splits:
    """Load a registered dataset by name; an unknown name lists the known ones."""
    if name not in DATASETS:
        import difflib

        close = difflib.get_close_matches(name, list(DATASETS), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise DataError(f"data.name: unknown dataset '{name}'; {hint}known: {', '.join(DATASETS)}")
    return DATASETS[name](root=root, input_size=input_size, seed=seed, download=download, **kwargs)


def stratified_split(labels: np.ndarray, fractions: tuple[float, float], seed: int) -> tuple[list, list, list]:
    """Indices of a stratified train/val/test split with the given val and test fractions."""
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val, n_test = int(round(len(idx) * fractions[0])), int(round(len(idx) * fractions[1]))
        val += idx[:n_val].tolist()
        test += idx[n_val:n_val + n_test].tolist()
        train += idx[n_val + n_test:].tolist()
    return sorted(train), sorted(val), sorted(test)


@register_dataset("digits")
def digits(root=None, input_size=None, seed=0, download=False, val_fraction=0.15, test_fraction=0.15) -> Splits:
    """scikit-learn's 8x8 handwritten digits (1797 images, shipped in the wheel), upscaled to input_size."""
    from sklearn.datasets import load_digits

    size = input_size or 32
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x - 0.5) / 0.5
    y = torch.tensor(d.target, dtype=torch.long)
    full = TensorDataset(x, y)
    tr, va, te = stratified_split(d.target, (val_fraction, test_fraction), seed)
    return Splits(Subset(full, tr), Subset(full, va), Subset(full, te), 10, 1, size)


@register_dataset("digits_distorted")
def digits_distorted(root=None, input_size=None, seed=0, download=False, copies=2, noise=0.3, **kw) -> Splits:
    """digits under random affine distortion and pixel noise: an embedded task where architectures differ.

    On plain digits every network of the shipped spaces scores ~98%, so accuracies rank architectures by
    noise. Here each source image gives `copies` distorted images (rotation +-30 deg, scale 0.8-1.2, shear
    +-15 deg, shift +-size/8, Gaussian noise of `noise` in [0, 1] pixel units), drawn once from `seed`; the
    split is by source image (as `digits`), so no digit is seen in two splits.
    """
    if copies < 1 or noise < 0:
        raise DataError(f"data: digits_distorted needs copies >= 1 and noise >= 0 (got copies={copies}, noise={noise})")
    plain = digits(input_size=input_size, seed=seed, **kw)
    g = torch.Generator().manual_seed(seed)
    size = plain.input_size

    def distort(subset: Subset) -> TensorDataset:
        x, y = subset.dataset.tensors
        idx = torch.tensor(subset.indices).repeat(copies)
        n = len(idx)
        uniform = lambda lo, hi: torch.empty(n).uniform_(lo, hi, generator=g)  # noqa: E731
        angle, shear = torch.deg2rad(uniform(-30, 30)), torch.deg2rad(uniform(-15, 15))
        scale = uniform(0.8, 1.2)
        shift = torch.randint(-(size // 8), size // 8 + 1, (n, 2), generator=g).float() * 2 / size
        cos, sin, one, zero = torch.cos(angle), torch.sin(angle), torch.ones(n), torch.zeros(n)
        rotate = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
        skew = torch.stack([torch.stack([one, torch.tan(shear)], -1), torch.stack([zero, one], -1)], -2)
        forward = rotate @ skew * scale[:, None, None]  # output = forward @ input + shift, in [-1, 1] coordinates
        inverse = torch.linalg.inv(forward)
        theta = torch.cat([inverse, -(inverse @ shift[:, :, None])], -1)
        grid = F.affine_grid(theta, [n, 1, size, size], align_corners=False)
        out = F.grid_sample(x[idx] + 1, grid, align_corners=False) - 1  # outside the image: background (-1)
        return TensorDataset(out + 2 * noise * torch.randn(out.shape, generator=g), y[idx])

    return Splits(distort(plain.train), distort(plain.val), distort(plain.test), 10, 1, plain.input_size)


class ArrayImages(Dataset):
    """uint8 N x H x W x C images with labels, transformed on access."""

    def __init__(self, images: np.ndarray, labels: list[int], transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        x = torch.from_numpy(self.images[i]).permute(2, 0, 1)
        return self.transform(x), self.labels[i]


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles only what torchvision's python CIFAR batches hold: a dict of lists, strings, bytes and numpy
    arrays; any other global (os.system, builtins.eval, ...) is refused before it is looked up."""

    def find_class(self, module: str, name: str):
        target = CIFAR_GLOBALS.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")
        return target()


def _numpy_attr(path: str) -> Callable[[], object]:
    """A lazy lookup of numpy's `_core.<path>` (numpy 2) or `core.<path>` (numpy 1), whichever this numpy has."""
    def get():
        core = getattr(np, "_core", None) or np.core
        obj = core
        for part in path.split("."):
            obj = getattr(obj, part)
        return obj
    return get


CIFAR_GLOBALS: dict[tuple[str, str], Callable[[], object]] = {
    **{(f"{pkg}.multiarray", "_reconstruct"): _numpy_attr("multiarray._reconstruct")
       for pkg in ("numpy.core", "numpy._core")},
    **{(f"{pkg}.numeric", "_frombuffer"): _numpy_attr("numeric._frombuffer")  # arrays pickled with protocol 5
       for pkg in ("numpy.core", "numpy._core")},
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_bytes,  # bytes pickled with protocol 2 (numpy's dtype codes)
}


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode` as protocol-2 pickles use it for bytes, and nothing more."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode(..., {encoding!r}) is not allowed")
    return codecs.encode(text, "latin1")


def load_cifar_batch(path: str, label_key: str) -> dict:
    """One python-format CIFAR batch (a dict with `data` and `label_key`), read with `_CifarUnpickler`;
    anything else is one `DataError` line naming the file."""
    try:
        with open(path, "rb") as fh:
            batch = _CifarUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, RecursionError) as e:
        raise DataError(f"{path}: not a CIFAR batch (torchvision's python format: a pickled dict of data and "
                        f"labels); refused: {str(e).splitlines()[0][:120] if str(e) else type(e).__name__}") from None
    if isinstance(batch, dict):
        batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if not isinstance(batch, dict) or "data" not in batch or label_key not in batch:
        raise DataError(f"{path}: not a CIFAR batch (torchvision's python format: a pickled dict with keys "
                        f"'data' and '{label_key}')")
    return batch


def read_cifar(folder: str, files: list[str], label_key: str) -> tuple[np.ndarray, list[int]]:
    """Read torchvision's python-format CIFAR pickles (no integrity check, so small test folders work), with an
    unpickler that admits numpy arrays only (`load_cifar_batch`): a crafted batch file cannot run code."""
    images, labels = [], []
    for f in files:
        path = os.path.join(folder, f)
        batch = load_cifar_batch(path, label_key)
        try:
            images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            labels += [int(y) for y in batch[label_key]]
        except (ValueError, TypeError) as e:
            raise DataError(f"{path}: not a CIFAR batch ({str(e).splitlines()[0][:120]}); expected 'data' of "
                            f"N x 3072 bytes and N integer labels") from None
    return np.concatenate(images), labels


_CIFAR = {  # sub-folder, train files, test files, label key, classes
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", 100),
}


def _cifar(name: str, root, input_size, seed, download, val_fraction=0.1):
    from torchvision.transforms import v2 as T

    sub, train_files, test_files, key, num_classes = _CIFAR[name]
    layout = f"ROOT/{sub}/{{{', '.join(train_files + test_files)}}} (torchvision's python format)"
    if root is None:
        raise DataError(f"data.root: dataset '{name}' needs a folder; expected layout: {layout}")
    if download:
        import torchvision

        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        cls(root, train=True, download=True)
    folder = os.path.join(root, sub)
    missing = [f for f in train_files + test_files if not os.path.isfile(os.path.join(folder, f))]
    if missing:
        raise DataError(f"data.root: '{folder}/{missing[0]}' is missing; expected layout: "
                        f"{layout.replace('ROOT', str(root))}, or set data.download: true")
    size = input_size or 32
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    tail = [T.Resize(size, antialias=True), T.ToDtype(torch.float32, scale=True), T.Normalize(mean, std)]
    train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), *tail])
    eval_tf = T.Compose(tail)
    x, y = read_cifar(folder, train_files, key)
    xt, yt = read_cifar(folder, test_files, key)
    tr, va, _ = stratified_split(np.asarray(y), (val_fraction, 0.0), seed)
    train_aug, train_eval = ArrayImages(x, y, train_tf), ArrayImages(x, y, eval_tf)
    return Splits(Subset(train_aug, tr), Subset(train_eval, va), ArrayImages(xt, yt, eval_tf), num_classes, 3, size)


@register_dataset("cifar10")
def cifar10(root=None, input_size=None, seed=0, download=False, **kw) -> Splits:
    """CIFAR-10 from a local folder in torchvision's format (no download unless asked)."""
    return _cifar("cifar10", root, input_size, seed, download, **kw)


@register_dataset("cifar100")
def cifar100(root=None, input_size=None, seed=0, download=False, **kw) -> Splits:
    """CIFAR-100 from a local folder in torchvision's format (no download unless asked)."""
    return _cifar("cifar100", root, input_size, seed, download, **kw)


@register_dataset("imagefolder")
def imagefolder(root=None, input_size=None, seed=0, download=False, val_fraction=0.1, test_fraction=0.1) -> Splits:
    """Any folder of images, one sub-folder per class (ROOT/CLASS/IMAGE.png), split by seed."""
    import torchvision
    from torchvision import transforms as T

    layout = "ROOT/<class name>/<image>.{png,jpg,...}, at least one image per class"
    if root is None or not os.path.isdir(root):
        raise DataError(f"data.root: folder '{root}' does not exist; expected layout: {layout}")
    size = input_size or 224
    norm = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    train_tf = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    eval_tf = T.Compose([T.Resize(int(size * 1.14)), T.CenterCrop(size), T.ToTensor(), norm])
    try:
        aug = torchvision.datasets.ImageFolder(root, transform=train_tf)
        plain = torchvision.datasets.ImageFolder(root, transform=eval_tf)
    except (FileNotFoundError, RuntimeError) as e:
        raise DataError(f"data.root: '{root}' is not an image folder ({e}); expected layout: {layout}") from None
    tr, va, te = stratified_split(np.asarray(aug.targets), (val_fraction, test_fraction), seed)
    return Splits(Subset(aug, tr), Subset(plain, va), Subset(plain, te), len(aug.classes), 3, size)


def draw_shapes(n: int, size: int, seed: int, num_classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of random discs and rectangles on noise, with per-pixel class masks (0 = background)."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    images = torch.rand(n, 3, size, size, generator=g) * 0.3
    masks = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            cls = int(torch.randint(1, num_classes, (1,), generator=g))
            cy, cx = torch.randint(0, size, (2,), generator=g).tolist()
            r = int(torch.randint(size // 8, size // 3, (1,), generator=g))
            shape = ((ys - cy) ** 2 + (xs - cx) ** 2 <= r * r) if cls % 2 else (
                ((ys - cy).abs() <= r) & ((xs - cx).abs() <= r // 2 + 1))
            colour = torch.rand(3, generator=g) * 0.6 + 0.4
            images[i][:, shape] = colour[:, None]
            masks[i][shape] = cls
    return (images - 0.5) / 0.5, masks


@register_dataset("synthetic_segmentation")
def synthetic_segmentation(root=None, input_size=None, seed=0, download=False, n_train=512, n_val=128, n_test=128,
                           num_classes=3) -> Splits:
    """Procedurally drawn discs and rectangles with per-pixel masks: the embedded segmentation default."""
    size = input_size or 64
    parts = [draw_shapes(n, size, seed * 1000 + k, num_classes) for k, n in enumerate((n_train, n_val, n_test))]
    ds = [TensorDataset(x, m) for x, m in parts]
    return Splits(ds[0], ds[1], ds[2], num_classes, 3, size, task="segmentation")


def make_loaders(splits: Splits, batch_size: int, seed: int = 0, distributed: bool = False,
                 num_workers: int = 0, eval_batch_size: int | None = None) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Train (shuffled by a seeded generator; DistributedSampler under DDP), val and test loaders."""
    eval_bs = eval_batch_size or max(batch_size, 256)
    if distributed:
        from torch.utils.data.distributed import DistributedSampler

        sampler = DistributedSampler(splits.train, shuffle=True, seed=seed, drop_last=True)
        train = DataLoader(splits.train, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                           drop_last=True)
    else:
        g = torch.Generator().manual_seed(seed)
        train = DataLoader(splits.train, batch_size=batch_size, shuffle=True, generator=g, num_workers=num_workers,
                           drop_last=True)
    val = DataLoader(splits.val, batch_size=eval_bs, num_workers=num_workers)
    test = DataLoader(splits.test, batch_size=eval_bs, num_workers=num_workers)
    return train, val, test

