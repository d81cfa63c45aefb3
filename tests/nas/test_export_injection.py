"""`nas export` writes no code from untrusted text: a bad arch is refused in one line, a good one imports cleanly
and builds the framework's network."""
import copy
import importlib.util
import itertools
import os
import random
import re
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import search_spaces
from nas.cli import main
from nas.export.code import docstring_text, generate_code, write_code
from search_spaces import build_model
from search_spaces.arch import Arch
from search_spaces.arch_check import ArchError

SENTINEL = Path(tempfile.gettempdir()) / f"convnas_export_injection_sentinel_{os.getpid()}"
RUN = f'__import__("pathlib").Path({str(SENTINEL)!r}).write_text("ran")'
PAYLOADS = [f'10, {RUN}', f'"""\n{RUN}\n"""', f"'''\n{RUN}\n'''", f'x"); {RUN}; ("', f"\n{RUN}\n", f"\\\n{RUN}",
            f'relu"""+{RUN}+"""', f"mobile\"\"\"\n{RUN}\n#"]


@pytest.fixture(autouse=True)
def no_sentinel():
    SENTINEL.unlink(missing_ok=True)
    yield
    assert not SENTINEL.exists(), "exported code ran a payload"


@pytest.fixture(scope="module")
def archs():
    torch.set_num_threads(1)
    mobile, dense = search_spaces.load("mobile"), search_spaces.load("dense_prediction")
    return [mobile.sample(random.Random(0)), dense.sample(random.Random(0))]


def _cli_export(tmp_path, arch_text, capsys):
    out = tmp_path / "model.py"
    rc = main(["export", arch_text, "--out", str(out)])
    err = capsys.readouterr().err
    return rc, out, err


CLI_CASES = [
    (("classifier", "num_classes"), PAYLOADS[0], r"classifier\.num_classes: must be a positive integer"),
    (("classifier", "hidden"), [PAYLOADS[0]], r"classifier\.hidden\[0\]: must be a positive integer"),
    (("classifier", "act"), PAYLOADS[6], r"classifier\.act: unknown name"),
    (("classifier", "dropout"), PAYLOADS[0], r"classifier\.dropout: must be a number"),
    (("space",), PAYLOADS[7], r"space: must be a space name"),
    (("stages", 0, 0, "op"), PAYLOADS[3], r"stages\[0\]\[0\]\.op: unknown name"),
    (("stages", 0, 0, "act"), PAYLOADS[1], r"stages\[0\]\[0\]\.act: unknown name"),
    (("stages", 0, 0, "c_out"), 0, r"stages\[0\]\[0\]\.c_out: must be a positive integer"),
    (("stages", 0, 0, "stride"), 0, r"stages\[0\]\[0\]\.stride: must be a positive integer"),
    (("stages", 0, 0, "kernel"), 4, r"stages\[0\]\[0\]: op 'mbconv': kernel=4 has no symmetric padding"),
    (("stages", 0, 0, "act"), "relux", r"stages\[0\]\[0\]\.act: unknown name; valid: relu"),
    (("stages", 1, 0, "downsample"), "maxpool", r"stages\[1\]\[0\]\.downsample: unknown; valid: stride, blurpool"),
    (("input_size",), PAYLOADS[0], r"input_size: must be a positive integer"),
]


@pytest.mark.parametrize("field, value, message", CLI_CASES,
                         ids=[f"{i}-{'.'.join(map(str, c[0]))}" for i, c in enumerate(CLI_CASES)])
def test_cli_refuses_bad_arch_yaml_in_one_line_and_writes_nothing(tmp_path, capsys, archs, field, value, message):
    d = copy.deepcopy(archs[0].to_dict())
    node = d
    for key in field[:-1]:
        node = node[key]
    node[field[-1]] = value
    path = tmp_path / "arch.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    rc, out, err = _cli_export(tmp_path, str(path), capsys)
    assert rc == 2 and not out.exists()
    assert err.count("\n") == 1 and err.startswith("nas export: error: ")  # field errors: `{path}: ` first
    assert re.search(message, err), err


@pytest.mark.parametrize("text", ids=["space", "cls-act", "kernel4", "relux"], argvalues=[
    f'in3x32;space:a"""\n{RUN}\n#;s:conv_c16;cls:n10_h-_a=relu_d0.0',
    f"in3x32;s:conv_c16;cls:n10_h-_a=relu{PAYLOADS[1]}_d0.0",
    "in3x32;s:conv_c16_k4;cls:n10_h-_a=relu_d0.0",
    "in3x32;s:conv_c16_act=relux;cls:n10_h-_a=relu_d0.0",
])
def test_cli_refuses_bad_arch_strings(tmp_path, capsys, text):
    rc, out, err = _cli_export(tmp_path, text, capsys)
    assert rc == 2 and not out.exists() and err.count("\n") == 1, err


def test_a_forged_arch_is_checked_again_before_writing(archs):
    arch = archs[0].replace()
    object.__setattr__(arch, "space", PAYLOADS[7])  # past the checks __post_init__ makes
    with pytest.raises(ArchError, match=r"^space: must be a space name"):
        generate_code(arch)


def test_docstring_text_cannot_end_the_docstring():
    for text in PAYLOADS + ["\\", 'a\\"""', "\x00\u2028é"]:
        code = f'"""Architecture: {docstring_text(text)}"""\nRESULT = 1'
        ns: dict = {}
        exec(compile(code, "doc.py", "exec"), ns)  # noqa: S102 - the point: nothing but the docstring runs
        assert set(ns) == {"__builtins__", "__doc__", "RESULT"} and "\n" not in ns["__doc__"]
        assert ns["__doc__"] == "Architecture: " + text or not (text.isascii() and text.isprintable())


def test_generated_file_holds_the_arch_as_a_constant(archs):
    code = generate_code(archs[0])
    compile(code, "model.py", "exec")
    assert code.splitlines()[2].startswith("Architecture: in1x32;space:mobile;")
    assert f"ARCH = {archs[0].to_string()!r}" in code


# --- fuzz: mutate valid archs; export refuses in one line or writes code equal to the framework's build -------
STRINGS = st.sampled_from(PAYLOADS + ["relu", "hswish", "none", "blurpool", "stride", "aspp", "sum", "concat", "mbconv",
                                      "conv", "se", "mobile", ""])
INTS = st.one_of(st.integers(-3, 3), st.sampled_from([8, 16, 24, 32, 48, 64, 5, 7, 1 << 20, 1 << 40]))
VALUES = st.one_of(STRINGS, INTS, st.booleans(), st.none(), st.floats(-2, 2), st.sampled_from([0.25, 0.0, 0.5]),
                   st.lists(INTS, max_size=3))
PLAUSIBLE = {int: st.sampled_from([1, 2, 3, 5, 7, 8, 16, 24, 32, 48, 64]),
             float: st.sampled_from([0.0, 0.1, 0.25, 0.5]),
             bool: st.booleans(), str: st.sampled_from(["relu", "hswish", "silu", "none", "blurpool", "stride", "aspp",
                                                        "rfb", "sum", "concat", "asff", "transposed", "pixel_shuffle",
                                                        "mbconv", "conv", "dw_separable", "mobile"])}
COUNTER = itertools.count()
OUTCOMES: dict[str, int] = {}


def _leaves(d, prefix=()):
    items = d.items() if isinstance(d, dict) else enumerate(d) if isinstance(d, list) else ()
    out = []
    for k, v in items:
        out.append(prefix + (k,))
        out += _leaves(v, prefix + (k,))
    return out


def _import(path: Path):
    name = f"convnas_fuzz_export_{next(COUNTER)}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as `import` does (copied dataclasses look themselves up there)
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_archs_export_safely_or_are_refused(tmp_path, capsys, archs, data):
    d = copy.deepcopy(archs[data.draw(st.integers(0, 1))].to_dict())
    for _ in range(data.draw(st.integers(1, 2))):
        paths = _leaves(d)
        where = paths[data.draw(st.integers(0, len(paths) - 1))]
        node = d
        for key in where[:-1]:
            node = node[key]
        if isinstance(node, dict) and data.draw(st.integers(0, 3)) == 0:
            where = where[:-1] + (data.draw(st.sampled_from(["kernel", "act", "expand", "stride", "x\"'"])),)
        old = node.get(where[-1]) if isinstance(node, dict) else node[where[-1]]
        hostile = type(old) not in PLAUSIBLE or data.draw(st.booleans())
        node[where[-1]] = data.draw(VALUES if hostile else PLAUSIBLE[type(old)])
    source = data.draw(st.sampled_from(["dict", "yaml", "string"]))
    try:
        arch = Arch.from_dict(d) if source == "dict" else Arch.from_yaml(yaml.safe_dump(d))
        if source == "string":
            arch = Arch.from_string(arch.to_string())
        path = write_code(arch, tmp_path / f"net{next(COUNTER)}.py")
    except ArchError as e:
        assert str(e) and "\n" not in str(e)
        OUTCOMES["refused"] = OUTCOMES.get("refused", 0) + 1
        return
    OUTCOMES["exported"] = OUTCOMES.get("exported", 0) + 1
    capsys.readouterr()
    module = _import(path)
    assert capsys.readouterr() == ("", "") and not SENTINEL.exists()
    assert module.ARCH == arch.to_string()
    torch.manual_seed(0)
    ref = build_model(arch).eval()
    net = module.Net().eval()
    assert {k: v.shape for k, v in net.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}
    net.load_state_dict(ref.state_dict())
    x = torch.randn(1, arch.in_channels, arch.input_size, arch.input_size)
    with torch.no_grad():
        try:
            expected = ref(x)
        except Exception as e:  # an arch the framework cannot run either (e.g. a map pooled below 1 x 1)
            with pytest.raises(type(e)):
                net(x)
            return
        assert torch.allclose(net(x), expected, atol=1e-5)


def test_the_fuzz_exported_some_archs_and_refused_some():
    if not OUTCOMES:
        pytest.skip("runs after test_fuzzed_archs_export_safely_or_are_refused")
    assert OUTCOMES.get("exported", 0) >= 3 and OUTCOMES.get("refused", 0) >= 3, OUTCOMES
