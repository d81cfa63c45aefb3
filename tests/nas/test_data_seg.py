"""`segfolder`: VOC and Cityscapes-like folders of images with PNG masks; a wrong layout is one line."""
import numpy as np
import pytest
import torch
from PIL import Image

import nas.data.segfolder  # noqa: F401  (registers "segfolder")
from nas.data.datasets import DataError, load_dataset, make_loaders

MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def _mask(seed: int, size=(12, 10), classes=4) -> np.ndarray:
    """A blocky mask (nearest resizing by 2 keeps it exactly) with every class present."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, classes, (size[0] // 2, size[1] // 2)).astype(np.uint8)
    blocks.flat[:classes] = np.arange(classes)
    return blocks.repeat(2, 0).repeat(2, 1)


def _image(seed: int, size=(12, 10)) -> np.ndarray:
    return np.random.default_rng(100 + seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def write_folder(root, names=("train", "val")):
    """Cityscapes-like: images/{split}/*.png and masks/{split}/*.png, two per split."""
    out = {}
    for s, split in enumerate(names):
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for i in range(2):
            k = 2 * s + i
            Image.fromarray(_image(k)).save(root / "images" / split / f"im{k}.png")
            Image.fromarray(_mask(k), mode="L").save(root / "masks" / split / f"im{k}.png")
            out[(split, i)] = (_image(k), _mask(k))
    return out


def test_cityscapes_like_folder_loads_with_exact_masks(tmp_path):
    truth = write_folder(tmp_path)
    s = load_dataset("segfolder", root=str(tmp_path), input_size=12)
    assert (s.num_classes, s.in_channels, s.input_size, s.task) == (4, 3, 12, "segmentation")
    assert len(s.train) == len(s.val) == len(s.test) == 2  # no test split: test is val
    x, y = s.val[1]
    image, mask = truth[("val", 1)]
    assert x.shape == (3, 12, 12) and x.dtype == torch.float32 and y.shape == (12, 12) and y.dtype == torch.long
    # width 10 -> 12 by nearest: columns 0..9 map back by floor(j * 10 / 12)
    cols = (np.arange(12) * 10 // 12)
    assert np.array_equal(y.numpy(), mask[:, cols].astype(np.int64))
    assert set(np.unique(y.numpy())) == {0, 1, 2, 3}
    assert abs(float(x[0].mean()) - float(((image[..., 0] / 255.0 - MEAN[0]) / STD[0]).mean())) < 0.05
    train, val, _ = make_loaders(s, batch_size=2)
    xb, yb = next(iter(train))
    assert xb.shape == (2, 3, 12, 12) and yb.shape == (2, 12, 12)


def test_voc_layout_with_palette_masks_and_ignored_border(tmp_path):
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (tmp_path / d).mkdir(parents=True)
    for k, name in enumerate(["2007_000001", "2007_000002", "2007_000003", "2007_000004"]):
        Image.fromarray(_image(k)).save(tmp_path / "JPEGImages" / f"{name}.jpg")
        mask = _mask(k, classes=3)
        mask[0, :] = 255  # VOC's boundary label
        m = Image.fromarray(mask, mode="P")
        m.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [224, 224, 192] * 253)
        m.save(tmp_path / "SegmentationClass" / f"{name}.png")
    (tmp_path / "ImageSets/Segmentation/train.txt").write_text("2007_000001\n2007_000002\n2007_000003\n")
    (tmp_path / "ImageSets/Segmentation/val.txt").write_text("2007_000004\n")
    s = load_dataset("segfolder", root=str(tmp_path), input_size=12)
    assert s.num_classes == 21 and (len(s.train), len(s.val)) == (3, 1)
    _, y = s.val[0]
    assert set(np.unique(y.numpy())) == {0, 1, 2, 255} and bool((y[0] == 255).all())
    (tmp_path / "classes.txt").write_text("background\ncat\ndog\n")
    assert load_dataset("segfolder", root=str(tmp_path)).num_classes == 3


def test_wrong_layout_is_one_line_naming_both_layouts(tmp_path):
    (tmp_path / "pictures").mkdir()
    with pytest.raises(DataError) as e:
        load_dataset("segfolder", root=str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and "matches neither layout" in msg
    assert "ROOT/JPEGImages/*.jpg" in msg and "ROOT/images/{train,val}/*" in msg
    assert "ROOT/masks/{train,val}/*.png" in msg
    with pytest.raises(DataError, match=r"'/no/such/dir' is not a folder; expected layout: ROOT/JPEGImages"):
        load_dataset("segfolder", root="/no/such/dir")


def test_missing_mask_and_rgb_mask_are_named(tmp_path):
    write_folder(tmp_path)
    (tmp_path / "masks" / "train" / "im0.png").unlink()
    with pytest.raises(DataError, match=r"has image '.*im0\.png' without mask '.*masks/train/im0\.png'"):
        load_dataset("segfolder", root=str(tmp_path))
    Image.fromarray(_image(0)).save(tmp_path / "masks" / "train" / "im0.png")
    with pytest.raises(DataError, match=r"mask '.*im0\.png' is mode RGB; valid: single-channel class indices"):
        load_dataset("segfolder", root=str(tmp_path), input_size=8)


def test_voc_masks_with_ignored_pixels_train_and_evaluate(tmp_path):
    """The segmentation task's loss and metrics leave 255 out: a network trains on VOC-style masks (loss finite)
    and its mIoU counts only labelled pixels (a prediction of 255 nowhere still scores every labelled one)."""
    import search_spaces
    from nas.tasks import get_task
    from nas.training.loop import TrainConfig

    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (tmp_path / d).mkdir(parents=True)
    names = [f"2007_{k:06d}" for k in range(6)]
    for k, name in enumerate(names):
        Image.fromarray(_image(k, size=(16, 16))).save(tmp_path / "JPEGImages" / f"{name}.jpg")
        mask = _mask(k, size=(16, 16), classes=3)
        mask[:2, :] = 255
        Image.fromarray(mask, mode="L").save(tmp_path / "SegmentationClass" / f"{name}.png")
    (tmp_path / "ImageSets/Segmentation/train.txt").write_text("\n".join(names[:4]) + "\n")
    (tmp_path / "ImageSets/Segmentation/val.txt").write_text("\n".join(names[4:]) + "\n")
    (tmp_path / "classes.txt").write_text("background\na\nb\n")
    splits = load_dataset("segfolder", root=str(tmp_path), input_size=16)
    space = search_spaces.load("dense_prediction", input_size=16, num_classes=3)
    task = get_task("segmentation")
    model = task.build_model(space.smallest())
    loaders = make_loaders(splits, batch_size=2)
    history = task.train(model, loaders, TrainConfig(epochs=1, batch_size=2, lr=0.01, optimizer="adamw",
                                                     label_smoothing=0.0, warmup_epochs=0),
                         str(tmp_path / "train"), progress=False)
    assert np.isfinite(history[-1]["loss"]) and 0 <= history[-1]["val_miou"] <= 1
    metrics = task.evaluate(model, loaders[1])
    assert np.isfinite(metrics["loss"]) and 0 < metrics["pixel_accuracy"] <= 1
