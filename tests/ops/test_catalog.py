"""The op catalog of shared/OPS.md: every op is registered, described, has a schema whose defaults build,
and names that do not exist get one-line errors pointing at what does."""
import re
from pathlib import Path

import pytest
from torch import nn

from ops import UnknownOpError, build_op, op_spec
from ops.registry import FAMILIES, HParam
from op_checks import build_error

OPS_MD = Path(__file__).resolve().parents[2].parent / "shared" / "OPS.md"

# the three tables of OPS.md in order (convolution types, blocks, plug-ins); used where the file is absent
FALLBACK = (
    ("conv", "pointwise", "group_conv", "depthwise", "dw_separable", "xception_separable", "spatial_separable",
     "flattened", "dilated", "conv3d", "transposed", "deform_conv", "involution"),
    ("basic_residual", "bottleneck", "resnext", "mbconv", "shuffle_v1", "shuffle_v2", "inception",
     "inception_factorized", "xception", "dense", "pyramid", "vgg", "skip"),
    ("se", "cbam", "non_local", "aspp", "rfb", "stn", "blurpool", "asff", "gdc", "channel_shuffle"),
)
# the families each table's ops may be registered under (a transposed conv is an upsampling op)
TABLE_FAMILIES = ({"conv", "upsample"}, {"block"}, {"plugin"})


def parse_tables(text):
    """The backticked names in the first column of each markdown table, one tuple per table."""
    tables, rows, in_table = [], [], False
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            in_table = True
            name = re.match(r"\|\s*`([^`]+)`\s*\|", line)
            if name:
                rows.append(name.group(1))
        elif in_table:
            tables.append(tuple(rows))
            rows, in_table = [], False
    return tuple(tables)


TABLES = parse_tables(OPS_MD.read_text(encoding="utf-8")) if OPS_MD.is_file() else FALLBACK
CATALOG = [name for table in TABLES for name in table]
FAMILY_OF = {name: families for table, families in zip(TABLES, TABLE_FAMILIES) for name in table}
C = 96  # channels every op builds with at its defaults (divisible by 3 and 8; resnext's 32x4d needs >= 64)


def test_catalog_has_three_tables_matching_the_fallback():
    assert len(TABLES) == 3
    assert len(CATALOG) == len(set(CATALOG)) == 36
    assert TABLES == FALLBACK  # keep FALLBACK in step with OPS.md


@pytest.mark.parametrize("name", CATALOG)
def test_registered_with_one_line_description_and_schema(name):
    spec = op_spec(name)
    assert spec.name == name and spec.cls.op_name == name
    assert spec.family in FAMILIES and spec.family in FAMILY_OF[name]
    assert spec.description.strip() and "\n" not in spec.description
    assert all(isinstance(h, HParam) for h in spec.hparams)
    names = spec.hparam_names()
    assert len(names) == len(set(names))
    shorts = [h.short for h in spec.hparams if h.short]
    assert len(shorts) == len(set(shorts)), f"{name}: hparam abbreviations repeat: {shorts}"
    for h in spec.hparams:
        assert not h.choices or h.default in h.choices, f"{name}.{h.name}: default {h.default!r} not in {h.choices}"
        assert spec.hparam(h.name) is h


@pytest.mark.parametrize("name", CATALOG)
def test_defaults_build(name):
    m = build_op(name, C, C)
    assert isinstance(m, nn.Module) and type(m) is op_spec(name).cls
    assert build_op(name, C, C, **op_spec(name).defaults()).state_dict().keys() == m.state_dict().keys()


@pytest.mark.parametrize("name", CATALOG)
def test_unknown_hparam_names_the_valid_ones(name):
    message = build_error(name, C, C, no_such_hparam=1)
    assert message.startswith(f"op '{name}': hparam 'no_such_hparam' is unknown")
    valid = message.split("valid: ", 1)[1]
    names = op_spec(name).hparam_names()
    assert all(n in valid for n in names) if names else valid == "no hparams"
    assert "\n" not in message


@pytest.mark.parametrize("name", [n for n in CATALOG if op_spec(n).hparams])
def test_misspelt_hparam_suggests_the_right_one(name):
    first = op_spec(name).hparam_names()[0]
    assert f"did you mean '{first}'?" in build_error(name, C, C, **{first + "s": op_spec(name).hparams[0].default})


@pytest.mark.parametrize("typo,meant", [("dw_seperable", "dw_separable"), ("bottelneck", "bottleneck"),
                                        ("non-local", "non_local"), ("Conv", "conv"), ("inception_factorised",
                                                                                      "inception_factorized")])
def test_unknown_op_lists_close_matches(typo, meant):
    with pytest.raises(UnknownOpError) as err:
        build_op(typo, 8, 8)
    assert isinstance(err.value, (KeyError, ValueError))
    assert str(err.value).startswith(f"unknown op '{typo}'; did you mean ")
    assert f"'{meant}'" in str(err.value)


def test_unknown_op_with_no_close_match_lists_the_known_ones():
    message = str(pytest.raises(UnknownOpError, build_op, "zzzzzz", 8, 8).value)
    assert message.startswith("unknown op 'zzzzzz'; known ops: ")
    assert all(name in message for name in CATALOG)
