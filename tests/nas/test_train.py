import os
import random

import pytest
import torch

import search_spaces
from nas.cli import main
from nas.spec.sections import load_spec
from nas.data.datasets import load_dataset, make_loaders
from nas.launch import supernet_dir, train_from_spec
from nas.evaluation.classification import evaluate, recalibrate_bn, score_arch
from nas.supernet.supernet import Supernet
from nas.training.loop import CHECKPOINT, TrainConfig, train_model, warmup_cosine
from train_helpers import space_file, spec_dict


class Interrupted(Exception):
    pass


def _state(path):
    return torch.load(path, weights_only=True)


def test_resume_continues_exactly(tmp_path):
    """2 epochs in one go == 1 epoch, killed, resumed for the second: every weight and statistic equal."""
    full = load_spec(spec_dict(tmp_path / "a", epochs=2, sampler="fair", amp="bf16"))
    train_from_spec(full, progress=False)
    cut = load_spec(spec_dict(tmp_path / "b", epochs=2, sampler="fair", amp="bf16"))

    def stop(record, path):
        if record["epoch"] == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_from_spec(cut, progress=False, on_epoch_end=stop)
    assert _state(os.path.join(supernet_dir(cut), CHECKPOINT))["epoch"] == 1
    train_from_spec(cut, resume=True, progress=False)
    a, b = _state(os.path.join(supernet_dir(full), CHECKPOINT)), _state(os.path.join(supernet_dir(cut), CHECKPOINT))
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"]) == (2, 2 * 19)
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def test_train_standalone_subnet_and_score_paths(tmp_path):
    torch.manual_seed(0)
    space = search_spaces.load(space_file(tmp_path), input_size=8)
    splits = load_dataset("digits", input_size=8, seed=0)
    train, val, test = make_loaders(splits, 64, seed=0)
    supernet = Supernet(space)
    arch = space.sample(random.Random(1))
    model = supernet.extract(arch)
    cfg = TrainConfig(epochs=2, lr=0.2, warmup_epochs=0.5, optimizer="adamw", label_smoothing=0.0)
    history = train_model(model, (train, val, test), cfg, str(tmp_path / "sub"), progress=False)
    assert len(history) == 2 and history[-1]["loss"] < history[0]["loss"] and "val_accuracy" in history[-1]
    assert os.path.exists(tmp_path / "sub" / CHECKPOINT)
    # a finished run resumes to the same weights without training again
    again = supernet.extract(arch)
    assert train_model(again, (train, val, test), cfg, str(tmp_path / "sub"), resume=True, progress=False) == history
    assert evaluate(again, test) == evaluate(model, test)

    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    s1 = score_arch(supernet, arch, train, val, bn_batches=2)
    s2 = score_arch(supernet, arch, train, val, bn_batches=2)
    assert s1 == s2 and 0.0 <= s1 <= 1.0  # the same calibration batches every time
    assert all(torch.equal(before[k], v) for k, v in supernet.state_dict().items())  # shared stats untouched
    recal = recalibrate_bn(supernet, train, 2, arch=arch)
    assert not recal.training and evaluate(recal, val)["accuracy"] == s1


def test_schedule_warms_up_then_decays():
    f = warmup_cosine(4, 20)
    assert [round(f(s), 3) for s in (0, 3)] == [0.25, 1.0]
    assert f(4) == 1.0 and f(12) == pytest.approx(0.5) and f(20) == pytest.approx(0.0)


def test_config_errors_are_one_line(tmp_path):
    with pytest.raises(ValueError, match="supernet.sampler: 'greedy' is not allowed; valid: uniform, fair, sandwich"):
        TrainConfig(sampler="greedy")
    with pytest.raises(ValueError, match="unknown key 'epoch'"):
        TrainConfig.from_dict({"epoch": 3})
    if not torch.cuda.is_available():
        spec = load_spec(spec_dict(tmp_path, sync_bn=True))
        with pytest.raises(ValueError, match="sync_bn: SyncBatchNorm runs on CUDA only"):
            train_from_spec(spec, progress=False)


def test_cli_trains_and_refuses_to_overwrite(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    import yaml

    spec.write_text(yaml.safe_dump(spec_dict(tmp_path, epochs=1)))
    assert main(["train", str(spec), "--quiet"]) == 0
    assert "supernet trained (1 process): epoch 1" in capsys.readouterr().out
    assert main(["train", str(spec), "--quiet"]) == 2
    assert "already holds a supernet checkpoint; pass --resume" in capsys.readouterr().err
    assert main(["train", str(spec), "--quiet", "--resume"]) == 0  # finished: nothing left to train


def test_channels_last_leaves_conv3d_weights_alone():
    """`Module.to(memory_format=channels_last)` raises on a conv3d weight; `to_channels_last` converts the rest."""
    from ops import build_op
    from nas.training.loop import to_channels_last

    torch.manual_seed(0)
    model = torch.nn.Sequential(build_op("conv", 3, 8, stride=1), build_op("conv3d", 8, 8, stride=1))
    x = torch.randn(2, 3, 8, 8)
    before = model.eval()(x)
    with pytest.raises(RuntimeError):
        torch.nn.Sequential(torch.nn.Conv3d(1, 1, 3)).to(memory_format=torch.channels_last)
    to_channels_last(model)
    dims = {p.dim() for p in model.parameters()}
    assert 5 in dims and 4 in dims
    for p in model.parameters():
        if p.dim() == 4:
            assert p.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(model(x.contiguous(memory_format=torch.channels_last)), before, atol=1e-5)


def test_cli_resume_without_a_checkpoint_says_it_starts_over(tmp_path, capsys):
    import yaml

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(spec_dict(tmp_path, epochs=1)))
    assert main(["train", str(spec), "--quiet", "--resume"]) == 0
    assert "--resume: no checkpoint in" in capsys.readouterr().err
