"""`segfolder`: a segmentation data set from a folder of images and PNG class-index masks.

Two layouts are read:
  VOC:        ROOT/JPEGImages/<id>.jpg, ROOT/SegmentationClass/<id>.png, ROOT/ImageSets/Segmentation/{train,val}.txt
  folder:     ROOT/images/{train,val}/<name>.<ext>, ROOT/masks/{train,val}/<name>.png (Cityscapes-like)
A `test` split (test.txt, or images/test + masks/test) is used when present, else test is val.
Masks hold class indices (PNG mode L or P, as VOC's palette PNGs); 255 is ignored by the metrics
and the loss. Classes: one name per line in ROOT/classes.txt if present, 21 for VOC, else the
largest label in the training masks + 1. Images and masks are resized to input_size x input_size
(bilinear / nearest) and normalised with the ImageNet mean and std; training flips horizontally.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from nas.data.datasets import DataError, Splits, register_dataset
from nas.evaluation.segmentation import IGNORE_INDEX

VOC_CLASSES = 21
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
LAYOUTS = ("ROOT/JPEGImages/*.jpg + ROOT/SegmentationClass/*.png + ROOT/ImageSets/Segmentation/{train,val}.txt "
           "(VOC), or ROOT/images/{train,val}/* + ROOT/masks/{train,val}/*.png (Cityscapes-like)")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _layout_error(root, problem: str) -> DataError:
    return DataError(f"data.root: '{root}' {problem}; expected layout: {LAYOUTS}")


def _voc_split(root: str, split: str) -> list[tuple[str, str]] | None:
    listing = os.path.join(root, "ImageSets", "Segmentation", f"{split}.txt")
    if not os.path.isfile(listing):
        return None
    with open(listing) as f:
        ids = [line.strip() for line in f if line.strip()]
    pairs = [(os.path.join(root, "JPEGImages", f"{i}.jpg"), os.path.join(root, "SegmentationClass", f"{i}.png"))
             for i in ids]
    for image, mask in pairs:
        for p in (image, mask):
            if not os.path.isfile(p):
                raise _layout_error(root, f"lists '{os.path.basename(p)[:-4]}' in {split}.txt but '{p}' is missing")
    return pairs


def _folder_split(root: str, split: str) -> list[tuple[str, str]] | None:
    images, masks = os.path.join(root, "images", split), os.path.join(root, "masks", split)
    if not os.path.isdir(images):
        return None
    pairs = []
    for name in sorted(os.listdir(images)):
        stem, ext = os.path.splitext(name)
        if ext.lower() not in IMAGE_EXTS:
            continue
        mask = os.path.join(masks, stem + ".png")
        if not os.path.isfile(mask):
            raise _layout_error(root, f"has image '{os.path.join(images, name)}' without mask '{mask}'")
        pairs.append((os.path.join(images, name), mask))
    return pairs


def find_pairs(root) -> tuple[str, dict[str, list[tuple[str, str]]]]:
    """The layout ("voc" | "folder") and (image, mask) paths of the train, val and test splits."""
    if root is None or not os.path.isdir(str(root)):
        raise _layout_error(root, "is not a folder")
    root = str(root)
    for layout, read in (("voc", _voc_split), ("folder", _folder_split)):
        train, val = read(root, "train"), read(root, "val")
        if train is None and val is None:
            continue
        if not train or not val:
            which = "train" if not train else "val"
            raise _layout_error(root, f"has no {which} examples ({layout} layout)")
        return layout, {"train": train, "val": val, "test": read(root, "test") or val}
    raise _layout_error(root, "matches neither layout")


def read_mask(path: str) -> np.ndarray:
    """A PNG mask as an H x W array of class indices."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode not in ("L", "P", "I", "I;16"):
            raise DataError(f"data.root: mask '{path}' is mode {im.mode}; valid: single-channel class indices "
                            f"(PNG mode L or P)")
        return np.asarray(im, dtype=np.int64)


def count_classes(root: str, layout: str, train: list[tuple[str, str]]) -> int:
    """classes.txt lines, 21 for VOC, else the largest training label (255 aside) + 1."""
    names = os.path.join(root, "classes.txt")
    if os.path.isfile(names):
        with open(names) as f:
            return sum(1 for line in f if line.strip())
    if layout == "voc":
        return VOC_CLASSES
    top = 0
    for _, mask in train:
        m = read_mask(mask)
        m = m[m != IGNORE_INDEX]
        top = max(top, int(m.max()) if m.size else 0)
    return top + 1


class SegFolder(Dataset):
    """(image, mask) pairs read from disk, resized to `size`; training flips both horizontally at random."""

    def __init__(self, pairs: list[tuple[str, str]], size: int, train: bool):
        self.pairs, self.size, self.train = pairs, size, train
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i):
        from PIL import Image

        image_path, mask_path = self.pairs[i]
        with Image.open(image_path) as im:
            x = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)
        y = torch.from_numpy(read_mask(mask_path))
        if tuple(y.shape) != tuple(x.shape[-2:]):
            raise DataError(f"data.root: mask '{mask_path}' is {tuple(y.shape)}, its image {tuple(x.shape[-2:])}; "
                            f"valid: a mask of the image's height and width")
        size = (self.size, self.size)
        x = F.interpolate(x[None].float() / 255.0, size=size, mode="bilinear", align_corners=False)[0]
        y = F.interpolate(y[None, None].float(), size=size, mode="nearest")[0, 0].long()
        if self.train and bool(torch.rand(()) < 0.5):
            x, y = x.flip(-1), y.flip(-1)
        return (x - self.mean) / self.std, y


@register_dataset("segfolder")
def segfolder(root=None, input_size=None, seed=0, download=False) -> Splits:
    """A folder of images with PNG class masks in the VOC or a Cityscapes-like layout (see module doc)."""
    if download:
        raise DataError("data.download: segfolder reads a local folder only; set data.download: false")
    layout, splits = find_pairs(root)
    size = input_size or 128
    num_classes = count_classes(str(root), layout, splits["train"])
    return Splits(SegFolder(splits["train"], size, True), SegFolder(splits["val"], size, False),
                  SegFolder(splits["test"], size, False), num_classes, 3, size, task="segmentation")
