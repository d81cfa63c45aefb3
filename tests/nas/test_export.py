"""`nas export`: the generated file runs where convnas cannot be imported and computes what the framework does."""
import importlib.util
import json
import os
import random
import subprocess
import sys
import sysconfig
import textwrap

import pytest
import torch
from torch import nn

import search_spaces
from nas.cli import main
from nas.export.code import MODEL_WRITERS, generate_code, save_weights, write_code
from nas.export.opsource import OpSource
from search_spaces import build_model
from search_spaces.arch import Arch, Decoder
from search_spaces.presets import load_preset

from bn_helpers import randomize_bn

# Run in `python -I -S` with only site-packages on the path: -S skips .pth files, and so the editable
# convnas install; -I drops the working directory and PYTHONPATH. `import ops` must fail there.
DRIVER = """
import importlib.util, json, sys
sys.path[:0] = SITE
for name in ("ops", "search_spaces", "nas"):
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"{name} is importable in the isolated interpreter")
import torch
for i, (code, weights, x, y) in enumerate(CASES):
    spec = importlib.util.spec_from_file_location(f"exported_{i}", code)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    net = module.Net()
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    with torch.no_grad():
        torch.save(net.eval()(torch.load(x, weights_only=True)), y)
"""


@pytest.fixture(scope="module")
def spaces():
    return {name: search_spaces.load(name) for name in search_spaces.shipped_spaces()}


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and BatchNorm statistics, in eval mode, so that a misplaced tensor changes the output."""
    return randomize_bn(model, seed).eval()


def run_exported(tmp_path, archs: list[Arch], max_size: int = 64, batch: int = 2) -> list[float]:
    """Export each arch with random weights, run all of them in ONE isolated subprocess; max |diff| each."""
    cases, expected = [], []
    for i, arch in enumerate(archs):
        torch.manual_seed(i)
        model = randomize(build_model(arch), seed=i)
        s = min(arch.input_size, max_size)  # the 224x224 presets run at 64x64, to be quick
        x = torch.randn(batch, arch.in_channels, s, s, generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            expected.append(model(x))
        code = write_code(arch, tmp_path / f"net{i}.py", model)
        torch.save(x, tmp_path / f"x{i}.pt")
        cases.append([str(code), str(code.with_suffix(".pt")), str(tmp_path / f"x{i}.pt"), str(tmp_path / f"y{i}.pt")])
    site = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    driver = tmp_path / "driver.py"
    driver.write_text(f"SITE = {json.dumps(site)}\nCASES = {json.dumps(cases)}\n{DRIVER}")
    r = subprocess.run([sys.executable, "-I", "-S", str(driver)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    return [(torch.load(c[3]) - y).abs().max().item() for c, y in zip(cases, expected)]


def test_presets_run_standalone_and_match(tmp_path):
    names = ["mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x1_0", "resnet18", "resnext50_32x4d"]
    archs = [load_preset(n) for n in names] + [load_preset("mobilenet_v2_digits")]
    diffs = run_exported(tmp_path, archs)
    assert max(diffs) <= 1e-5, dict(zip(names + ["mobilenet_v2_digits"], diffs))


def test_random_archs_of_every_space_run_standalone_and_match(tmp_path, spaces):
    archs = []
    for space in spaces.values():
        archs += [a for a in (space.sample(random.Random(seed)) for seed in range(3)) if a.task in MODEL_WRITERS]
    assert {a.space for a in archs} >= {"all_ops", "mobile", "resnet"}
    diffs = run_exported(tmp_path, archs)
    assert max(diffs) <= 1e-5, {a.to_string(): d for a, d in zip(archs, diffs) if d > 1e-5}


def test_generated_file_is_readable_plain_torch(tmp_path):
    code = generate_code(load_preset("mobilenet_v2"))
    compile(code, "model.py", "exec")
    assert "register_op" not in code and "from ops" not in code and "import ops" not in code
    assert "deform_conv2d" not in code  # imported only where a deformable conv is used
    assert "MBConv.op_name = 'mbconv'" in code  # what the dropped decorator did
    lines = code.splitlines()
    assert lines[2].startswith("Architecture: in3x224;stem:conv_c32_s2")
    assert "nn.Sequential(MBConv(16, 24, stride=2))," in [l.strip() for l in lines]  # defaults left out
    assert code.index("class ConvNormAct") < code.index("class MBConv") < code.index("class Net")
    deform = Arch.from_string("in3x16;stem:conv_c8;s:deform_conv_c8_k3;cls:n2_h-_a=relu_d0.0")
    assert "from torchvision.ops import deform_conv2d" in generate_code(deform)


def test_smoke_run_and_load_net(tmp_path):
    arch = load_preset("mobilenet_v2_digits")
    model = randomize(build_model(arch))
    path = write_code(arch, tmp_path / "digits.py", model)
    r = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120, cwd="/",
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "output (1, 10)" in r.stdout
    spec = importlib.util.spec_from_file_location("digits_export", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as `import` does (dataclasses copied from ops look themselves up there)
    spec.loader.exec_module(module)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(module.load_net()(x), model(x))  # WEIGHTS beside the file, relative to it


def test_onnx_matches_for_a_preset_and_a_deformable_arch(tmp_path, spaces):
    import onnxruntime as ort

    from nas.export.code import export

    deform = next(a for a in (spaces["all_ops"].sample(random.Random(s)) for s in range(50)) if "deform_conv" in a.to_string())
    small_preset = load_preset("resnet18", input_size=32, num_classes=10, width_mult=0.25)  # quick to export
    for i, arch in enumerate([small_preset, deform]):
        model = randomize(build_model(arch), seed=i)
        weights = save_weights(model, tmp_path / f"w{i}.pt")
        py, onnx_path = export(arch, tmp_path / f"net{i}.py", weights, onnx=True)
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        x = torch.randn(3, arch.in_channels, arch.input_size, arch.input_size)  # exported with batch 2: dynamic
        (y,) = session.run(None, {"input": x.numpy()})
        with torch.no_grad():
            assert (torch.from_numpy(y) - model(x)).abs().max().item() <= 1e-4, arch.to_string()


def test_cli_export(tmp_path, capsys):
    arch = load_preset("shufflenet_v2_x1_0", input_size=32, num_classes=5)
    (tmp_path / "arch.yaml").write_text(arch.to_yaml())
    weights = save_weights(build_model(arch), tmp_path / "w.pt")
    out = tmp_path / "out" / "model.py"
    assert main(["export", str(tmp_path / "arch.yaml"), "--weights", str(weights), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert "WEIGHTS = '../w.pt'" in out.read_text()
    assert main(["export", "resnet18", "--out", str(tmp_path / "r18.py")]) == 0
    assert "class BasicResidual" in (tmp_path / "r18.py").read_text()
    capsys.readouterr()
    wrong = save_weights(build_model(load_preset("resnet18", input_size=32)), tmp_path / "r18.pt")
    assert main(["export", str(tmp_path / "arch.yaml"), "--weights", str(wrong), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nas export: error: weights") and "do not fit this architecture" in err
    assert len(err.splitlines()) == 1
    assert main(["export", "mobilenet_v9", "--out", str(out)]) == 2
    assert "unknown preset 'mobilenet_v9'" in capsys.readouterr().err


def test_task_without_a_writer_is_one_clear_error(monkeypatch):
    arch = load_preset("mobilenet_v2_digits").replace(classifier=None, decoder=Decoder(3))
    monkeypatch.delitem(MODEL_WRITERS, "segmentation", raising=False)
    with pytest.raises(ValueError, match=r"no code writer for task 'segmentation' yet; valid: classification"):
        generate_code(arch)


OPS_A = '''
from torch import nn
SCALE = 2.0


def helper(x):
    return x * SCALE


class Block(nn.Module):
    def forward(self, x):
        return helper(x)
'''
OPS_B = '''
from torch import nn
from . import _export_test_a as a

SCALE = 10.0


def helper(x):
    return x + SCALE / 10


class Block(nn.Module):
    def forward(self, x):
        return helper(a.helper(x))
'''


def test_same_names_in_two_ops_modules_are_renamed(tmp_path, monkeypatch):
    import ops

    for name, text in (("_export_test_a", OPS_A), ("_export_test_b", OPS_B)):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
        spec = importlib.util.spec_from_file_location(f"ops.{name}", tmp_path / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, spec.name, module)
        monkeypatch.setattr(ops, name, module, raising=False)
        spec.loader.exec_module(module)
    src = OpSource()
    names = [src.name(sys.modules["ops._export_test_a"].Block), src.name(sys.modules["ops._export_test_b"].Block)]
    assert names == ["Block", "Block__export_test_b"]
    scope = {}
    exec("from torch import nn\n" + src.text(), scope)
    assert scope["Block"]().forward(3.0) == 6.0
    assert scope["Block__export_test_b"]().forward(3.0) == 7.0  # helper_..._b(a.helper(x)) = 3 * 2 + 1
