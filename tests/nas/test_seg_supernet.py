"""SegSupernet: extracted paths equal the supernet; weights are shared; it trains and scores; export writes SegNet."""
import importlib.util
import random
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import search_spaces
from nas.spec.sections import load_spec
from nas.data.datasets import draw_shapes
from nas.export.code import MODEL_WRITERS, write_code
from nas.export.segmentation import segmentation_code
from nas.supernet.segmentation import EncoderSpace, SegSupernet, part_keys
from nas.tasks import get_task
from nas.evaluation.segmentation import score_seg_arch
from nas.training.loop import TrainConfig, train_supernet
from nas.supernet.supernet import SupernetError
from search_spaces import Decoder
from search_spaces.segmentation import CONTEXTS, FUSIONS, UPSAMPLES, SegNet, pyramid

from bn_helpers import randomize_bn

SIZE = 32


@pytest.fixture(scope="module")
def space():
    return search_spaces.load("dense_prediction", input_size=SIZE)


@pytest.fixture(scope="module")
def supernet(space):
    torch.manual_seed(0)
    return SegSupernet(space)


def varied_archs(space, n=5):
    """Random encoders; the decoder choices cycled so that every upsample, context and fusion occurs."""
    rng = random.Random(0)
    out = []
    for i in range(n):
        a = space.sample_assignment(rng)
        a.update({"decoder.upsample": UPSAMPLES[i % 3], "decoder.context": CONTEXTS[(i + 1) % 3],
                  "decoder.fusion": FUSIONS[(i + 2) % 3], "decoder.stn": i % 2 == 0})
        out.append(space.decode(a))
    return out


def test_extracted_paths_equal_the_supernet(space, supernet):
    randomize_bn(supernet, 0)
    with torch.no_grad():  # an STN that is not the identity, so that it matters
        supernet.stn.theta.bias.add_(torch.tensor([0.05, 0.1, 0.0, -0.1, 0.05, 0.02]))
    supernet.eval()
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    archs = varied_archs(space)
    assert {a.decoder.fusion for a in archs} == set(FUSIONS) and {a.decoder.stn for a in archs} == {True, False}
    assert {a.decoder.channels for a in archs} == {32, 64}  # 32 is a leading slice of the 64-wide parts
    for arch in archs:
        model = supernet.extract(arch).eval()
        assert isinstance(model, SegNet)
        with torch.no_grad():
            y = supernet(x, arch)
            diff = (y - model(x)).abs().max().item()
        assert y.shape == (2, space.num_classes, SIZE, SIZE)
        assert diff <= 1e-5, (arch.to_string(), diff)


def test_one_path_updates_only_its_shared_weights(space, supernet):
    arch = varied_archs(space, 4)[3]  # upsample transposed, context rfb, fusion concat, 32 channels
    supernet.train().zero_grad(set_to_none=True)
    supernet(torch.randn(2, 3, SIZE, SIZE), arch).logsumexp(1).mean().backward()
    keys = part_keys(arch.decoder)
    lateral = supernet.laterals[keys["laterals"]][0][0].weight  # max-size: widest finest level, 64 channels
    used, width = pyramid(arch).channels[0], arch.decoder.channels
    assert lateral.grad is not None and lateral.grad[:width, :used].abs().sum() > 0
    assert lateral.grad[:, used:].abs().sum() == 0 and lateral.grad[width:].abs().sum() == 0  # not on this path
    assert supernet.classifiers[keys["classifier"]].weight.grad is not None
    for store, key in ((supernet.contexts, keys["context"]), (supernet.fuses, keys["fuse"]),
                       (supernet.upsamples, keys["upsample"])):
        assert len(store) > 1 and key in store
        for k, module in store.items():
            grads = [p.grad for p in module.parameters()]
            assert all(g is not None for g in grads) if k == key else all(g is None for g in grads), k
    assert (supernet.stn.theta.weight.grad is not None) == arch.decoder.stn
    supernet.zero_grad(set_to_none=True)


def test_foreign_paths_are_refused(space, supernet):
    arch = varied_archs(space, 1)[0]
    with pytest.raises(SupernetError, match=r"decoder.channels=48 is not a choice of space 'dense_prediction'; "
                                            r"choices: 32, 64"):
        supernet(torch.randn(1, 3, SIZE, SIZE), arch.replace(decoder=Decoder(3, channels=48)))
    with pytest.raises(SupernetError, match="has no decoder"):
        SegSupernet(EncoderSpace(space))  # the same positions seen as a classification space
    assert type(get_task("segmentation").build_supernet(space)).__name__ == "SegSupernet"


def test_trains_with_train_supernet_and_scores(space, supernet, tmp_path):
    torch.manual_seed(0)
    x, y = draw_shapes(16, SIZE, seed=0, num_classes=3)
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=False)
    cfg = TrainConfig(epochs=1, batch_size=8, optimizer="adamw", lr=3e-3, warmup_epochs=0, sampler="uniform")
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    history = train_supernet(supernet, (loader, loader), cfg, str(tmp_path), progress=False)
    assert len(history) == 1 and history[0]["loss"] > 0 and (tmp_path / "checkpoint.pt").exists()
    changed = [k for k, v in supernet.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("encoder.") for k in changed) and any(k.startswith("laterals.") for k in changed)
    scores = score_seg_arch(supernet, varied_archs(space, 1)[0], loader, loader, bn_batches=1)
    assert 0.0 <= scores["miou"] <= 1.0 and 0.0 <= scores["pixel_accuracy"] <= 1.0


def test_export_writes_segnet(space, supernet, tmp_path, monkeypatch):
    monkeypatch.setitem(MODEL_WRITERS, "segmentation", segmentation_code)
    arch = varied_archs(space, 3)[2]
    model = supernet.extract(arch).eval()
    path = write_code(arch, tmp_path / "segnet.py", model)
    code = path.read_text()
    assert "class SegDecoder(nn.Module)" in code and "import search_spaces" not in code and "from ops" not in code
    spec = importlib.util.spec_from_file_location("exported_segnet", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        net = module.load_net()
    finally:
        del sys.modules[spec.name]
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert (net(x) - model(x)).abs().max() <= 1e-5


def test_segmentation_experiment_spec_validates():
    spec = load_spec(str(Path(__file__).parents[2] / "experiments" / "segmentation.yaml"))
    assert spec.data.name == "synthetic_segmentation" and spec.space.name == "dense_prediction"
    assert [(o.metric, o.direction) for o in spec.objectives] == [("miou", "maximize"), ("latency_ms", "minimize")]
