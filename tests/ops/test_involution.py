"""involution (Li et al. 2021): per-pixel kernels shared over the channels of each group."""
import pytest
import torch
import torch.nn.functional as F

from ops import build_op, op_spec

H = 9


def inv_params(ci, co, k, g, r, norm=True):
    """1x1 reduce ci -> ci/r (+ BN, or a bias), 1x1 span ci/r -> k^2*G with bias, then BN(ci) or a 1x1 ConvNormAct."""
    red = ci // r
    n = ci * red + (2 * red if norm else red) + red * k * k * g + k * k * g
    if co == ci:
        return n + (2 * ci if norm else 0)
    return n + ci * co + (2 * co if norm else co)


CASES = [
    ("involution", 8, 8, {}, lambda ci, co: inv_params(ci, co, 3, 1, 4)),
    ("involution", 8, 16, {"kernel": 5, "groups": 2}, lambda ci, co: inv_params(ci, co, 5, 2, 4)),
    ("involution", 16, 16, {"kernel": 7, "groups": 4, "reduction": 2, "norm": "gn"},
     lambda ci, co: inv_params(ci, co, 7, 4, 2)),
    ("involution", 8, 4, {"groups": 8, "norm": "none", "act": "silu"},
     lambda ci, co: inv_params(ci, co, 3, 8, 4, norm=False)),
]
IDS = [f"{c[0]}-{c[1]}to{c[2]}-{'-'.join(f'{k}{v}' for k, v in c[3].items()) or 'default'}" for c in CASES]


def make(case, stride, seed=0):
    torch.manual_seed(seed)
    name, ci, co, hp, _ = case
    return build_op(name, ci, co, stride, **hp), torch.randn(2, ci, H, H)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_shape_and_parameter_count(case, stride):
    m, x = make(case, stride)
    assert m(x).shape == (2, case[2], -(-H // stride), -(-H // stride))
    assert sum(p.numel() for p in m.parameters()) == case[4](case[1], case[2])


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradient_reaches_every_parameter(case, stride):
    m, x = make(case, stride)
    out = m.train()(x)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_eval_deterministic_and_channels_last(case, stride):
    m, x = make(case, stride)
    m.train()(x)
    m.eval()
    with torch.no_grad():
        ref = m(x)
        assert torch.equal(ref, m(x))
        out = m(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("stride,k,g", [(1, 3, 1), (1, 5, 2), (2, 3, 4), (2, 7, 2), (3, 3, 2)])
def test_matches_a_direct_per_pixel_sum(stride, k, g):
    # out[c, y, x] = sum_{a,b} kernel[group(c)*k^2 + a*k + b, y, x] * x_pad[c, s*y + a, s*x + b], where the
    # kernel comes from the (s x s average-pooled) input at that output pixel
    torch.manual_seed(0)
    c, size = 8, 11
    op = build_op("involution", c, c, stride, kernel=k, groups=g).eval()
    captured = {}
    op.post.register_forward_hook(lambda mod, inp, out: captured.update(y=inp[0]))
    x = torch.randn(2, c, size, size)
    with torch.no_grad():
        op(x)
        pooled = F.avg_pool2d(x, stride, stride, ceil_mode=True) if stride > 1 else x
        kernel = op.span(op.reduce(pooled))
        h = w = -(-size // stride)
        assert kernel.shape == (2, k * k * g, h, w)
        xp = F.pad(x, [k // 2] * 4)
        expected = torch.zeros(2, c, h, w)
        for a in range(k):
            for b in range(k):
                window = xp[:, :, a:a + stride * (h - 1) + 1:stride, b:b + stride * (w - 1) + 1:stride]
                tap = kernel[:, a * k + b::k * k]  # N x G x h x w: tap (a, b) of each group's kernel
                expected += window * tap.repeat_interleave(c // g, dim=1)
    torch.testing.assert_close(captured["y"], expected, rtol=1e-4, atol=1e-5)


def test_translation_equivariant_away_from_borders():
    # the kernel is generated from the features at each pixel, so it moves with them: shifting the input
    # shifts the output wherever the k x k neighbourhoods stay clear of the border and the wrap-around
    torch.manual_seed(0)
    op = build_op("involution", 4, 4, kernel=3, groups=2, norm="none", act="none").eval()
    x = torch.randn(1, 4, 12, 12)
    with torch.no_grad():
        shifted = torch.roll(x, 2, dims=-1)
        torch.testing.assert_close(op(shifted)[..., 4:-2], op(x)[..., 2:-4], rtol=1e-4, atol=1e-5)


def test_elastic_kernel_shares_parameter_names_with_monotone_shapes():
    spec = op_spec("involution")
    assert spec.hparam("kernel").elastic
    shapes = [{n: p.shape for n, p in build_op("involution", 8, 16, kernel=k).named_parameters()}
              for k in sorted(spec.hparam("kernel").choices)]
    for small, big in zip(shapes, shapes[1:]):
        assert small.keys() == big.keys()
        assert all(all(a <= b for a, b in zip(small[n], big[n])) for n in small)


@pytest.mark.parametrize("hp,words", [
    ({"groups": 3}, ["'involution'", "groups=3", "c_in=8", "1, 2, 4, 8"]),
    ({"kernel": 4}, ["'involution'", "kernel=4"]),
    ({"reduction": 0}, ["'involution'", "reduction=0"]),
])
def test_bad_arguments_name_op_and_argument(hp, words):
    with pytest.raises(ValueError) as err:
        build_op("involution", 8, 16, **hp)
    for w in words:
        assert w in str(err.value)
