"""The rows of an architecture's picture: every layer, its shapes, its parameters and its latency units."""
import random

import pytest
from diagram_helpers import fake_model, shipped_archs

import search_spaces
from nas.diagram import arch_diagram, arch_rows
from nas.diagram.layout import hparam_text
from nas.latency.units import arch_units
from search_spaces import build_model
from search_spaces.arch import Arch

ARCHS = shipped_archs()


@pytest.mark.parametrize("arch", [a for _, a in ARCHS], ids=[i for i, _ in ARCHS])
def test_rows_are_the_network_units_and_parameters(arch):
    rows = arch_rows(arch)
    # the rows' latency units in order are exactly what the predictor sums for the whole network
    assert [u.key() for r in rows for u in r.units] == [u.key() for u in arch_units(arch)]
    # the rows' parameters add up to the built network's
    assert sum(r.params for r in rows) == sum(p.numel() for p in build_model(arch).parameters())
    layers = arch.layers()
    encoder = [r for r in rows if r.group in ("stem", "head") or r.group.startswith("stage ")]
    assert [(r.op, r.c_out, r.stride) for r in encoder] == [(x.op, x.c_out, x.stride) for x in layers]
    assert [r.plugins for r in encoder] == [tuple(p.op for p in x.plugins) for x in layers]
    # shapes chain: each layer takes what the one before gave
    assert encoder[0].c_in == arch.in_channels and encoder[0].size_in == arch.input_size
    for a, b in zip(encoder, encoder[1:]):
        assert (b.c_in, b.size_in) == (a.c_out, a.size_out)


def test_latency_shares_come_from_the_predictor():
    space = search_spaces.load("mobile")
    arch = space.sample(random.Random(4))
    model = fake_model([arch])
    d = arch_diagram(arch, model)
    assert d.latency_ms == pytest.approx(model.predict(arch))
    by_unit = dict(model.breakdown(arch))
    for r in d.rows:
        assert r.latency_ms == pytest.approx(sum(by_unit[u.key()] for u in r.units))
    shares = [d.latency_share(r) for r in d.rows]
    assert sum(shares) == pytest.approx(1 - model.calibration.intercept / d.latency_ms)
    assert sum(d.param_share(r) for r in d.rows) == pytest.approx(1.0)
    assert "ms predicted" in d.lines[1]


def test_without_latency_model_the_picture_says_so():
    d = arch_diagram(search_spaces.load("mobile").sample(random.Random(0)))
    assert d.latency_ms is None and all(r.latency_ms is None for r in d.rows)
    assert d.latency_share(d.rows[0]) is None and "no latency model" in d.latency_note


def test_segmentation_rows_show_the_decoder():
    space = search_spaces.load("dense_prediction")
    arch = next(a for a in (space.sample(random.Random(i)) for i in range(50))
                if a.decoder.stn and a.decoder.context != "none")
    rows = arch_rows(arch)
    assert rows[0].op == "stn" and rows[0].group == "input"
    decoder = [r for r in rows if r.group == "decoder"]
    assert [r.op for r in decoder[:3]] == ["lateral"] * 3
    assert arch.decoder.context in [r.op for r in decoder]
    assert arch.decoder.upsample in [r.op for r in decoder]
    assert decoder[-1].op == "classifier" and decoder[-1].size_out == arch.input_size
    assert decoder[-1].c_out == arch.num_classes
    # the encoder stages feeding the pyramid are marked
    assert sum("-> P" in r.note for r in rows if r.group.startswith("stage ")) >= 1


def test_a_shallow_encoder_gets_pooled_pyramid_levels():
    arch = Arch.from_string("in3x16;stem:conv_c8_k3;s:dw_separable_c8_s2_k3;s:dw_separable_c16_k3;head:pointwise_c24;"
                            "dec:n3/c8/up=bilinear_conv/ctx=none/fuse=sum/stn=0")
    rows = arch_rows(arch)
    assert [u.key() for r in rows for u in r.units] == [u.key() for u in arch_units(arch)]
    pools = [r for r in rows if r.group == "pyramid"]
    assert [(r.op, r.c_in, r.size_in, r.size_out, r.note) for r in pools] == [
        ("maxpool", 24, 8, 4, "-> P2"), ("maxpool", 24, 4, 2, "-> P3")]
    assert rows[[r.op for r in rows].index("pointwise")].note == "-> P1"  # the head folds into the last stage
    assert [r.c_in for r in rows if r.op == "lateral"] == [24, 24, 24]


def test_hparam_text_is_short_and_hides_off_defaults():
    assert hparam_text("mbconv", {"kernel": 5, "expand": 6, "se": 0.0}) == "k5 e6"
    assert hparam_text("mbconv", {"kernel": 3, "expand": 4, "se": 0.25, "act": "hswish"}) == "k3 e4 se0.25 act=hswish"
    assert hparam_text("conv", {}) == "k3"  # a searched default is shown
