"""Segmentation metrics against a hand-worked example; evaluation and one-shot scoring of a model."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nas.evaluation.segmentation import (class_iou, confusion_matrix, evaluate_segmentation, mean_iou, pixel_accuracy,
                              score_seg_arch)
from search_spaces import Arch, Decoder, Layer
from search_spaces.segmentation import SegNet

TARGET = torch.tensor([[0, 0, 1, 1],
                       [0, 0, 1, 1],
                       [2, 2, 1, 1],
                       [2, 2, 2, 2]])
PRED = torch.tensor([[0, 0, 1, 1],
                     [0, 1, 1, 1],
                     [2, 2, 0, 1],
                     [2, 2, 2, 1]])
# By hand:  class 0: target 4 px, predicted 4 px, 3 right -> IoU 3 / (4 + 4 - 3) = 3/5
#           class 1: target 6 px, predicted 7 px, 5 right -> IoU 5 / (6 + 7 - 5) = 5/8
#           class 2: target 6 px, predicted 5 px, 5 right -> IoU 5 / (6 + 5 - 5) = 5/6
HAND_IOU = [3 / 5, 5 / 8, 5 / 6]
HAND_MIOU = sum(HAND_IOU) / 3  # 0.686...
HAND_ACC = 13 / 16


def test_confusion_matrix_by_hand():
    conf = confusion_matrix(PRED, TARGET, 3)
    assert conf.tolist() == [[3, 1, 0],   # target 0: 3 predicted 0, 1 predicted 1
                             [1, 5, 0],   # target 1: 5 right, 1 predicted 0
                             [0, 1, 5]]   # target 2: 5 right, 1 predicted 1
    assert class_iou(conf).tolist() == pytest.approx(HAND_IOU)
    assert mean_iou(conf) == pytest.approx(HAND_MIOU)
    assert pixel_accuracy(conf) == pytest.approx(HAND_ACC)


def test_logits_batches_and_absent_classes():
    logits = F.one_hot(PRED, 5).permute(2, 0, 1).float()[None] * 3.0  # 1 x 5 x 4 x 4
    conf = confusion_matrix(logits, TARGET[None], 5)
    assert conf.shape == (5, 5) and int(conf.sum()) == 16
    iou = class_iou(conf)
    assert math.isnan(iou[3]) and math.isnan(iou[4])  # absent from target and prediction: excluded (VOC)
    assert mean_iou(conf) == pytest.approx(HAND_MIOU)
    pred = PRED.clone()
    pred[0, 0] = 3  # a class only predicted counts, with IoU 0
    conf = confusion_matrix(pred, TARGET, 5)
    assert class_iou(conf)[3] == 0.0
    assert mean_iou(conf) == pytest.approx((2 / 5 + 5 / 8 + 5 / 6 + 0) / 4)


def test_ignore_index_pixels_are_not_counted():
    target = TARGET.clone()
    target[1, 1] = 255  # the one pixel of class 0 predicted as 1
    conf = confusion_matrix(PRED, target, 3)
    assert int(conf.sum()) == 15 and conf[0, 1] == 0
    assert class_iou(conf)[0] == pytest.approx(3 / 4)  # target 3 px, predicted 4 px, 3 right
    with pytest.raises(ValueError, match=r"target label 7 is outside 0\.\.2; valid: class indices or ignore_index=255"):
        confusion_matrix(PRED, torch.full_like(TARGET, 7), 3)
    with pytest.raises(ValueError, match="prediction .* and target .* differ"):
        confusion_matrix(PRED[:2], TARGET, 3)


def test_evaluate_segmentation_on_fixed_logits():
    logits = F.one_hot(torch.stack([PRED, PRED]), 3).permute(0, 3, 1, 2).float() * 2.0
    target = torch.stack([TARGET, TARGET])
    target[1, 0, 0] = 255
    loader = DataLoader(TensorDataset(logits, target), batch_size=1)
    out = evaluate_segmentation(nn.Identity(), loader)  # the "model" returns the logits it is given
    conf = confusion_matrix(PRED, TARGET, 3) * 2
    conf[0, 0] -= 1
    assert out["miou"] == pytest.approx(mean_iou(conf))
    assert out["pixel_accuracy"] == pytest.approx(25 / 31)
    expected = F.cross_entropy(logits, target, ignore_index=255)
    assert out["loss"] == pytest.approx(float(expected), rel=1e-6)


def test_score_seg_arch_recalibrates_and_scores_a_model():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    arch = Arch(((Layer("conv", 8, 2, {"kernel": 3}),), (Layer("conv", 8, 2, {"kernel": 3}),),
                 (Layer("conv", 8, 2, {"kernel": 3}),)), decoder=Decoder(3, 8, "bilinear_conv", "none", "sum"),
                input_size=16)
    model = SegNet(arch)
    x, y = torch.randn(8, 3, 16, 16) * 3 + 1, torch.randint(0, 3, (8, 16, 16))
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    bn = model.stages[0][0][0][1]
    assert torch.equal(bn.running_mean, torch.zeros(8))
    scores = score_seg_arch(model, arch, loader, loader, bn_batches=2)
    assert set(scores) == {"miou", "pixel_accuracy", "loss"}
    assert 0.0 <= scores["miou"] <= 1.0 and 0.0 <= scores["pixel_accuracy"] <= 1.0
    assert not torch.equal(bn.running_mean, torch.zeros(8)) and not model.training

