"""Every op of the catalog (shared/OPS.md) is a candidate in at least one shipped search space."""
import re
from pathlib import Path

import search_spaces

OPS_MD = Path(__file__).resolve().parents[2].parent / "shared" / "OPS.md"

# the names of OPS.md's three tables, for a checkout without ../shared/OPS.md
CATALOG = """conv pointwise group_conv depthwise dw_separable xception_separable spatial_separable flattened dilated
conv3d transposed deform_conv involution basic_residual bottleneck resnext mbconv shuffle_v1 shuffle_v2 inception
inception_factorized xception dense pyramid vgg skip se cbam non_local aspp rfb stn blurpool asff gdc
channel_shuffle""".split()


def catalog() -> list[str]:
    if OPS_MD.is_file():
        names = re.findall(r"^\| `(\w+)` \|", OPS_MD.read_text(), flags=re.M)
        assert len(names) >= 30, f"could not read the op tables of {OPS_MD}"
        return names
    return CATALOG


def candidates(space) -> set[str]:
    """Op names an architecture of `space` can contain: layer ops, plug-ins, blurpool, decoder choices."""
    names = {v.op for p in space.positions() for v in (*p.candidates, *p.plugins) if not v.is_none}
    if any("blurpool" in p.downsample for p in space.positions()):
        names.add("blurpool")
    dec = space.spec.decoder
    if dec is not None:
        names |= {*dec.upsample, *dec.context, *dec.fusion} - {"none", "sum", "concat"}
        if True in dec.stn:
            names.add("stn")
    return names


def test_catalog_matches_the_fallback_list():
    assert set(catalog()) == set(CATALOG)


def test_every_catalog_op_is_a_candidate_somewhere(spaces):
    offered = set().union(*(candidates(s) for s in spaces.values()))
    missing = [name for name in catalog() if name not in offered]
    assert not missing, f"ops of OPS.md that no shipped space offers: {missing}"


def test_all_ops_offers_every_conv_type_block_and_plugin(spaces):
    offered = candidates(spaces["all_ops"])
    decoder_only = {"transposed", "aspp", "asff"}  # dense prediction only (OPS.md, "Where each one belongs")
    assert set(catalog()) - decoder_only <= offered
    deform = {v.hparams for p in spaces["all_ops"].positions() for v in p.candidates if v.op == "deform_conv"}
    assert {dict(h)["modulated"] for h in deform} == {False, True}
