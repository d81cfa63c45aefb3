"""SegNet: every decoder choice maps N x C x H x W to N x K x H x W; pyramid levels; ASFF; STN at identity."""
import itertools

import pytest
import torch

from search_spaces import Arch, Classifier, Decoder, Layer, build_model
from search_spaces.builder import Net
from search_spaces.segmentation import (CONTEXTS, FUSIONS, UPSAMPLES, SegNet, aspp_rates, pyramid,
                                        upsample_steps)


def small_arch(decoder: Decoder, strides=(2, 2, 2, 2), widths=(8, 12, 16, 20), size=32) -> Arch:
    ops = [("mbconv", {"kernel": 3, "expand": 3}), ("dw_separable", {"kernel": 3}), ("conv", {"kernel": 3}),
           ("basic_residual", {})]
    stages = tuple((Layer(ops[i % 4][0], c, s, ops[i % 4][1]),) for i, (c, s) in enumerate(zip(widths, strides)))
    return Arch(stages, stem=(Layer("conv", 8, 1, {"kernel": 3}),), decoder=decoder, input_size=size)


def test_every_decoder_choice_gives_logits_at_input_resolution():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    seen = 0
    for up, ctx, fuse, stn in itertools.product(UPSAMPLES, CONTEXTS, FUSIONS, (True, False)):
        model = SegNet(small_arch(Decoder(4, 8, up, ctx, fuse, stn))).eval()
        with torch.no_grad():
            y = model(x)
        assert y.shape == (2, 4, 32, 32), (up, ctx, fuse, stn)
        assert torch.isfinite(y).all()
        assert type(model.decoder.upsample[0]).op_name == up
        assert (type(model.stn).__name__ == "STN") == stn
        seen += 1
    assert seen == 54


def test_odd_input_sizes_are_resized_exactly():
    model = SegNet(small_arch(Decoder(3, 8, "pixel_shuffle", "aspp", "asff", True))).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 37, 29)).shape == (1, 3, 37, 29)


def test_pyramid_takes_the_last_three_strides_and_pools_missing_levels():
    four = small_arch(Decoder(3))
    assert pyramid(four).indices == (1, 2, 3) and pyramid(four).strides == (4, 8, 16)
    assert pyramid(four).channels == (12, 16, 20) and pyramid(four).extra == 0
    assert upsample_steps(4) == [4] and upsample_steps(8) == [4, 2] and upsample_steps(2) == [2]
    # stages at strides 2, 2, 4: the last stage of each stride, plus one pooled level
    two = small_arch(Decoder(3, 8, "transposed", "rfb", "asff"), strides=(2, 1, 2), widths=(8, 10, 12))
    pyr = pyramid(two)
    assert (pyr.indices, pyr.channels, pyr.strides, pyr.extra) == ((1, 2), (10, 12, 12), (2, 4, 8), 1)
    model = SegNet(two).eval()
    with torch.no_grad():
        feats = model.forward_features(torch.randn(1, 3, 32, 32))
        assert [tuple(f.shape[-2:]) for f in feats] == [(16, 16), (8, 8), (4, 4)]
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_asff_needs_doubling_strides_and_says_so():
    arch = small_arch(Decoder(3, 8, fusion="asff"), strides=(2, 4, 2), widths=(8, 12, 16))
    with pytest.raises(ValueError, match=r"asff needs pyramid strides that double .* got \(2, 8, 16\); valid here"):
        SegNet(arch)
    assert SegNet(small_arch(Decoder(3, 8, fusion="sum"), strides=(2, 4, 2), widths=(8, 12, 16))) is not None


def test_asff_fusion_weights_sum_to_one_per_pixel():
    torch.manual_seed(0)
    model = SegNet(small_arch(Decoder(3, 8, "bilinear_conv", "aspp", "asff"))).eval()
    dec = model.decoder
    with torch.no_grad():
        feats = model.forward_features(torch.randn(2, 3, 32, 32))
        xs = [lat(f) for lat, f in zip(dec.laterals, feats)]
        xs[-1] = dec.context(xs[-1])
        fused, weights = dec.fuse(xs, return_weights=True)
        assert weights.shape == (2, 3, 8, 8)  # the finest level (stride 4)
        assert torch.allclose(weights.sum(1), torch.ones(2, 8, 8), atol=1e-6)
        assert (weights > 0).all()
        assert torch.equal(fused, dec.fused(feats))


def test_stn_starts_as_identity_inside_segnet():
    torch.manual_seed(0)
    with_stn = SegNet(small_arch(Decoder(3, 8, stn=True))).eval()
    without = SegNet(small_arch(Decoder(3, 8, stn=False))).eval()
    missing = without.load_state_dict(with_stn.state_dict(), strict=False)
    assert missing.missing_keys == [] and all(k.startswith("stn.") for k in missing.unexpected_keys)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert (with_stn.stn(x) - x).abs().max() < 1e-5
        assert (with_stn(x) - without(x)).abs().max() < 1e-4


def test_encoder_state_dict_layout_is_the_classification_nets():
    arch = small_arch(Decoder(3))
    seg, clf = SegNet(arch), Net(arch.replace(decoder=None, classifier=Classifier(3)))
    enc = {k for k in seg.state_dict() if k.startswith(("stem.", "stages.", "head."))}
    assert enc == {k for k in clf.state_dict() if not k.startswith("classifier.")}
    seg.load_state_dict({k: v for k, v in clf.state_dict().items() if k in enc}, strict=False)
    assert torch.equal(seg.stages[2][0][0][0].weight, clf.stages[2][0][0][0].weight)


def test_build_model_dispatches_and_errors_are_one_line():
    assert isinstance(build_model(small_arch(Decoder(3))), SegNet)
    with pytest.raises(ValueError, match=r"^decoder.context: unknown 'psp'; valid: aspp, rfb, none$"):
        SegNet(small_arch(Decoder(3, context="psp")))
    with pytest.raises(ValueError, match="the arch has no decoder"):
        SegNet(small_arch(None))


def test_aspp_rates_fit_the_coarsest_map():
    assert aspp_rates(2) == (1, 2, 3) and aspp_rates(9) == (1, 2, 3)
    assert aspp_rates(10) == (3, 6, 9) and aspp_rates(33) == (6, 12, 18)
    model = SegNet(small_arch(Decoder(3, 8, context="aspp")))
    assert model.decoder.context.rates == (1, 2, 3)  # 32 / 16 = a 2 x 2 coarsest map
