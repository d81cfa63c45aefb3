"""Multi-level fusion: asff."""
import pytest
import torch

from ops import build_op, op_spec
from op_checks import (assert_all_params_get_grad, assert_arch_string_round_trips, assert_channels_last_matches,
                       assert_eval_deterministic, build_error, ceil_div, conv_norm, n_params)

CHANS = (4, 8, 16)  # finest first
C_OUT = 12


def pyramid(h=16, w=17, chans=CHANS, n=2, seed=0, sizes=None):
    """Three maps, finest first, each ceil-half the size of the one before (or the given `sizes`)."""
    g = torch.Generator().manual_seed(seed)
    sizes = sizes or [(ceil_div(h, 2 ** k), ceil_div(w, 2 ** k)) for k in range(3)]
    return [torch.randn(n, c, *s, generator=g) for c, s in zip(chans, sizes)]


def asff_params(level, chans, c_out, compress=8):
    t = chans[level]
    resize = 0
    for j, c in enumerate(chans):
        if j > level:
            resize += conv_norm(c, t)  # 1x1 projection before the upsampling
        elif j < level:
            resize += conv_norm(c, t, 3)  # one stride-2 3x3 conv (after a max-pool when 4x down)
    weights = 3 * conv_norm(t, compress) + (3 * compress * 3 + 3)  # per-level embeddings; 1x1 to 3 logits (bias)
    return resize + weights + conv_norm(t, c_out, 3)


def build(level, compress=8, chans=CHANS):
    return build_op("asff", chans[level], C_OUT, level=level, in_channels=chans, compress=compress)


@pytest.mark.parametrize("h,w", [(16, 16), (17, 13)], ids=["even", "odd"])
@pytest.mark.parametrize("level", [0, 1, 2])
def test_shape_weights_and_param_count(level, h, w):
    m = build(level)
    feats = pyramid(h, w)
    out, w = m(feats, return_weights=True)
    h, wd = feats[level].shape[-2:]
    assert out.shape == (2, C_OUT, h, wd)
    assert w.shape == (2, 3, h, wd)
    assert (w > 0).all()
    torch.testing.assert_close(w.sum(dim=1), torch.ones(2, h, wd))
    torch.testing.assert_close(m(feats), out)
    assert n_params(m) == asff_params(level, CHANS, C_OUT)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_grads_eval_and_channels_last(level):
    m = build(level)
    assert_all_params_get_grad(m, (pyramid(n=4),))
    assert_eval_deterministic(m, (pyramid(),))
    assert_channels_last_matches(m, (pyramid(),))


def test_resizers_follow_the_paper():
    down4 = build(2).resize[0]  # level 0 -> level 2: max-pool, then a stride-2 3x3 conv
    assert isinstance(down4[0], torch.nn.MaxPool2d)
    assert (down4[1][0].kernel_size, down4[1][0].stride) == ((3, 3), (2, 2))
    down2 = build(1).resize[0]
    assert (down2[0].kernel_size, down2[0].stride) == ((3, 3), (2, 2))
    up = build(0).resize[2]
    assert (up[0].kernel_size, up[0].in_channels, up[0].out_channels) == ((1, 1), 16, 4)
    assert isinstance(build(1).resize[1], torch.nn.Identity)


def test_equal_logits_average_the_levels():
    """With the logits conv zeroed every level weighs 1/3: the fused map is the mean of the resized maps."""
    m = build(1).eval()
    with torch.no_grad():
        m.logits.weight.zero_()
        m.logits.bias.zero_()
    feats = pyramid()
    _, w = m(feats, return_weights=True)
    torch.testing.assert_close(w, torch.full_like(w, 1 / 3))


def test_defaults_and_hparams():
    assert op_spec("asff").family == "plugin"
    assert op_spec("asff").defaults() == {"level": 0, "in_channels": None, "compress": 8}
    m = build_op("asff", 8, 8)  # in_channels defaults to c_in at every level
    assert m.in_channels == (8, 8, 8)
    assert m(pyramid(chans=(8, 8, 8))).shape == (2, 8, 16, 17)
    assert n_params(build(0, compress=16)) == asff_params(0, CHANS, C_OUT, compress=16)
    assert_arch_string_round_trips("asff", C_OUT, {"level": 1, "in_channels": (4, 8, 16), "compress": 16})


@pytest.mark.parametrize("kwargs,message", [
    ({"level": 3}, "op 'asff': level=3 is unknown; valid: 0, 1, 2"),
    ({"stride": 2}, "op 'asff': stride=2 is not supported (this op keeps the spatial size); valid: stride=1"),
    ({"in_channels": (4, 8)}, "op 'asff': in_channels=(4, 8) is invalid; valid: three positive channel counts"),
    ({"in_channels": (8, 8, 0)}, "op 'asff': in_channels=(8, 8, 0) is invalid"),
    ({"in_channels": (4, 8, 16)}, "op 'asff': c_in=8 differs from in_channels[0]=4; valid: c_in=4"),
    ({"compress": 0}, "op 'asff': compress=0 is invalid; valid: integers >= 1"),
])
def test_bad_arguments_name_the_op_and_what_is_valid(kwargs, message):
    assert message in build_error("asff", **{"c_in": 8, "c_out": 8, **kwargs})


def test_bad_pyramids_fail_with_a_clear_message():
    m = build(0)
    with pytest.raises(ValueError, match=r"op 'asff': got 2 feature maps; valid: 3, finest first"):
        m(pyramid()[:2])
    with pytest.raises(ValueError, match=r"op 'asff': level 1 resizes to \(8, 9\), not the target \(4, 5\)"):
        build(2)(pyramid(sizes=[(16, 17), (16, 17), (4, 5)]))
