"""`Arch` checks every field when built, the same way from a dict, YAML or a compact string; bad YAML is bounded."""
import copy
import random
import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import search_spaces
from search_spaces.arch import Arch, Classifier, Decoder, Layer
from search_spaces.arch_check import ArchError
from search_spaces.loader import parse_yaml
from search_spaces.safe_yaml import MAX_BYTES, YamlLimitError, load_yaml
from search_spaces.schema import SpaceError

BOMB = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")])  # 9^9 strings


@pytest.fixture(scope="module")
def archs():
    mobile = search_spaces.load("mobile")
    dense = search_spaces.load("dense_prediction")
    return [mobile.sample(random.Random(s)) for s in range(3)] + [dense.sample(random.Random(s)) for s in range(3)]


def test_valid_archs_read_back_the_same_from_dict_yaml_and_string(archs):
    for arch in archs:
        assert Arch.from_dict(arch.to_dict()) == arch
        assert Arch.from_yaml(arch.to_yaml()) == arch
        assert Arch.from_string(arch.to_string()) == arch


def _dict(archs, i=0):
    return copy.deepcopy(archs[i].to_dict())


BAD = [  # (path into the dict, value, message)
    (("stages", 1, 0, "c_out"), 0, r"^stages\[1\]\[0\]\.c_out: must be a positive integer .*got 0$"),
    (("stages", 1, 0, "c_out"), True, r"^stages\[1\]\[0\]\.c_out: must be a positive integer .*got True$"),
    (("stages", 1, 0, "c_out"), "16", r"^stages\[1\]\[0\]\.c_out: must be a positive integer .*got '16'$"),
    (("stages", 0, 0, "stride"), 0, r"^stages\[0\]\[0\]\.stride: must be a positive integer \(at most 64\), got 0$"),
    (("stages", 0, 0, "downsample"), "maxpool", r"^stages\[0\]\[0\]\.downsample: unknown; valid: stride, blurpool"),
    (("stages", 0, 0, "act"), "relux", r"^stages\[0\]\[0\]\.act: unknown name; valid: relu, relu6, hswish"),
    (("stages", 0, 0, "kernel"), "3", r"^stages\[0\]\[0\]\.kernel: must be a finite number"),
    (("stages", 0, 0, "kernel"), float("nan"), r"^stages\[0\]\[0\]\.kernel: must be a finite number"),
    (("stages", 0, 0, "bogus"), 1, r"^stages\[0\]\[0\]: op 'mbconv' has no hparam 'bogus'; valid: kernel, expand"),
    (("stages", 0, 0, "op"), 'conv"""', r"^stages\[0\]\[0\]\.op: unknown name; valid: a name of letters"),
    (("stages", 0, 0, "op"), "convv", r"^stages\[0\]\[0\]\.op: unknown op 'convv'; did you mean 'conv'"),
    (("space",), 'm"""\nimport os', r"^space: must be a space name .*got 'm\"\"\"\\nimport os'$"),
    (("space",), 3, r"^space: must be a space name"),
    (("input_size",), 1 << 20, r"^input_size: must be a positive integer \(at most 16384\)"),
    (("in_channels",), False, r"^in_channels: must be a positive integer"),
    (("classifier", "num_classes"), '10, __import__("os").system("x")',
     r"^classifier\.num_classes: must be a positive integer .*got '10, __import__"),
    (("classifier", "hidden"), [64, -1], r"^classifier\.hidden\[1\]: must be a positive integer"),
    (("classifier", "dropout"), 1.0, r"^classifier\.dropout: must be a number in \[0, 1\), got 1\.0$"),
    (("classifier", "act"), "relu()", r"^classifier\.act: unknown name; valid: relu, relu6"),
    (("classifier", "extra"), 1, r"^classifier: unknown key 'extra'; valid keys: num_classes, hidden, act, dropout$"),
]


@pytest.mark.parametrize("where, value, message", BAD, ids=[".".join(map(str, b[0])) + f"={b[1]!r}"[:30] for b in BAD])
def test_a_bad_field_is_one_line_naming_its_path(archs, where, value, message):
    d = _dict(archs)
    node = d
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    with pytest.raises(ArchError, match=message) as e:
        Arch.from_dict(d)
    assert "\n" not in str(e.value)
    text = yaml.safe_dump(d, sort_keys=False)
    if value == value:  # nan does not compare equal to itself, but the error is the same
        with pytest.raises(ArchError, match=message):
            Arch.from_yaml(text)
        with pytest.raises(ArchError, match="^arch.yaml: " + message[1:]):
            Arch.from_yaml(text, source="arch.yaml")


def test_decoder_fields_are_checked(archs):
    d = _dict(archs, 3)
    for key, value, message in (("context", "psp", r"^decoder\.context: unknown 'psp'; valid: aspp, rfb, none$"),
                                ("stn", 1, r"^decoder\.stn: must be true or false, got 1$"),
                                ("channels", 0, r"^decoder\.channels: must be a positive integer")):
        bad = copy.deepcopy(d)
        bad["decoder"][key] = value
        with pytest.raises(ArchError, match=message):
            Arch.from_dict(bad)


def test_direct_construction_and_replace_are_checked(archs):
    with pytest.raises(ArchError, match=r"^stages\[0\]\[0\]\.c_out"):
        Arch(((Layer("conv", 0),),))
    with pytest.raises(ArchError, match=r"^classifier\.num_classes"):
        archs[0].replace(classifier=Classifier("10)"))
    with pytest.raises(ArchError, match=r"^decoder: an arch has a classifier or a decoder, not both"):
        archs[0].replace(decoder=Decoder(3))
    with pytest.raises(ArchError, match=r"^stages\[0\]: must hold at least one layer"):
        Arch(((),))
    with pytest.raises(ArchError, match=r"^stages\[0\]\[0\]\.plugins\[0\]\.plugins: a plug-in has no plug-ins"):
        Arch(((Layer("conv", 8, plugins=(Layer("se", 8, plugins=(Layer("se", 8),)),)),),))


@pytest.mark.parametrize("text, message", [
    ('in3x32;space:a"""b;s:conv_c16', r"^arch string: character '\"' is not allowed"),
    ("in3x32;s:conv_c16\nimport os", r"^arch string: character '\\n' is not allowed"),
    ("in3x32;s:conv_c0", r"^stages\[0\]\[0\]\.c_out: must be a positive integer"),
    ("in3x32;s:conv_c16_act=relux", r"^stages\[0\]\[0\]\.act: unknown name; valid: relu"),
    ("in3x32;s:conv_c16_ds=maxpool_s2", r"^stages\[0\]\[0\]\.downsample: unknown; valid: stride, blurpool"),
    ("in3x32;s:conv_c16;cls:n0_h-_a=relu_d0.0", r"^classifier\.num_classes: must be a positive integer"),
    ("in3x32;s:conv_c16;cls:n10_h-_a=relu_dnan", r"^classifier\.dropout: must be a number in \[0, 1\)"),
    ("inx;s:conv_c16", r"^arch string: cannot read section 'inx' \(.*\); valid sections: inCxS"),
    ("in3x32;s:conv_c16;dec:n3/c8/up=transposed/ctx=none/fuse=sum/stn=2", r"^arch string: cannot read section"),
    ("in3x32;s:conv_c16;zz:1", r"^arch string: unknown section 'zz:1'"),
])
def test_bad_arch_strings_are_one_line(text, message):
    with pytest.raises(ArchError, match=message) as e:
        Arch.from_string(text)
    assert "\n" not in str(e.value)


# --- fuzz: mutate one field of a valid arch's dict; either one ArchError line or an arch that round-trips ----
PAYLOADS = ['"""', "'''", '\n__import__("os").system("x")\n', "a\"b'c", "relu\n", "\\", "x" * 300]
BAD_VALUES = st.one_of(st.sampled_from(PAYLOADS), st.text(max_size=20), st.booleans(), st.none(),
                       st.integers(-10, 10), st.integers(min_value=1 << 20), st.floats(allow_nan=True),
                       st.lists(st.integers(-2, 300), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                                max_size=2))


def _paths(d, prefix=()):
    """Every (path, value) leaf and container of a nested dict/list."""
    out = []
    items = d.items() if isinstance(d, dict) else enumerate(d) if isinstance(d, list) else ()
    for k, v in items:
        out.append((prefix + (k,), v))
        out += _paths(v, prefix + (k,))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_fields_are_refused_in_one_line_or_round_trip(archs, data):
    d = _dict(archs, data.draw(st.integers(0, len(archs) - 1)))
    paths = _paths(d)
    where, _ = paths[data.draw(st.integers(0, len(paths) - 1))]
    node = d
    for key in where[:-1]:
        node = node[key]
    if data.draw(st.booleans()) and isinstance(node, dict):  # a new key instead of a changed value
        where = where[:-1] + (data.draw(st.sampled_from(["extra", "kernel", 'k"""', "act"])),)
    node[where[-1]] = data.draw(BAD_VALUES)
    try:
        arch = Arch.from_dict(d)
    except ArchError as e:
        assert "\n" not in str(e) and str(e)
        return
    assert Arch.from_string(arch.to_string()) == arch
    assert Arch.from_yaml(arch.to_yaml()) == arch
    assert set(arch.to_string()) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.,;:=+-/")


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="in3x2;s:conv_c16k=+-./\"'\n\\acdehlnpstuvw0123456789", max_size=60))
def test_fuzzed_arch_strings_raise_only_arch_errors(text):
    try:
        arch = Arch.from_string(text)
    except ArchError as e:
        assert "\n" not in str(e)
    else:
        assert Arch.from_string(arch.to_string()) == arch


# --- bounded YAML ----------------------------------------------------------------------------------------
def test_billion_laughs_is_refused_within_a_second(tmp_path):
    assert len(BOMB) < 1024
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    calls = [lambda: parse_yaml(BOMB, "bomb.yaml"), lambda: Arch.from_yaml(BOMB),
             lambda: search_spaces.load(str(path))]
    for call, error in zip(calls, (SpaceError, ArchError, SpaceError)):
        start = time.perf_counter()
        with pytest.raises(error, match=r"aliases expand the document past [\d,]+ nodes") as e:
            call()
        assert time.perf_counter() - start < 1.0
        assert "\n" not in str(e.value)


def test_spec_bomb_is_refused(tmp_path):
    from nas.spec.sections import load_spec
    from nas.spec.schema import SpecError

    path = tmp_path / "spec.yaml"
    path.write_text(BOMB)
    start = time.perf_counter()
    with pytest.raises(SpecError, match=r"spec.yaml: aliases expand the document"):
        load_spec(str(path))
    assert time.perf_counter() - start < 1.0


def test_recursive_oversized_and_deep_yaml_are_refused(tmp_path):
    with pytest.raises(YamlLimitError, match="recursive"):
        load_yaml("a: &a [1, *a]")
    with pytest.raises(SpaceError, match=r"^big.yaml: larger than the 1 MiB limit"):
        parse_yaml("x: " + "a" * MAX_BYTES, "big.yaml")
    big = tmp_path / "big.yaml"
    big.write_text("name: big\n#" + "a" * MAX_BYTES)
    with pytest.raises(SpaceError, match="larger than the 1 MiB limit"):
        search_spaces.load(str(big))
    with pytest.raises(SpaceError, match="nested too deeply|not valid YAML"):
        parse_yaml("[" * 50_000 + "]" * 50_000, "deep.yaml")


def test_ordinary_aliases_still_load():
    assert load_yaml("a: &w [16, 24]\nb: *w\nc: {<<: {k: 3}, e: 6}") == {"a": [16, 24], "b": [16, 24],
                                                                       "c": {"k": 3, "e": 6}}
    wide = "base: &b [" + ", ".join(["1"] * 1000) + "]\n" + "\n".join(f"k{i}: *b" for i in range(50))
    assert len(load_yaml(wide)) == 51  # 50k nodes through aliases: under the bound
