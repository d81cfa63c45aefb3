"""Decoder units: every decoder choice tabulated at the shapes SegNet really runs it at; predictions use them."""
import random

import pytest
import torch

import search_spaces
from nas.latency.predictor import LatencyModel, fit_calibration, measure_archs, reference_arch
from nas.latency.profile import DeviceProfile
from nas.latency.table import LatencyTable
from nas.latency.units import arch_units, space_units
from search_spaces import Decoder, build_model
from search_spaces.segmentation import CONTEXTS, FUSIONS, UPSAMPLES

# two stride-2 stages: strides 2 and 4, so the third level is pooled; 17 is no multiple of 2: a final resize
TINY_SEG = """\
name: tiny_seg
input: {channels: 3, size: 17}
num_classes: 3
stem:
  - {op: conv, c_out: 8, kernel: 3}
stages:
  - {depth: [1, 2], width: [8, 12], stride: 2, ops: {dw_separable: {kernel: 3}, mbconv: {kernel: 3, expand: 3}}}
  - {depth: [1], width: [12, 16], stride: 2, downsample: [stride, blurpool], ops: {dw_separable: {kernel: 3}}}
decoder:
  upsample: [transposed, bilinear_conv, pixel_shuffle]
  context: [aspp, rfb, none]
  fusion: [sum, concat]
  stn: [true, false]
  channels: [8, 16]
"""


@pytest.fixture(scope="module")
def tiny_seg(tmp_path_factory):
    path = tmp_path_factory.mktemp("seg") / "tiny_seg.yaml"
    path.write_text(TINY_SEG)
    return search_spaces.load(str(path))


@pytest.fixture(scope="module")
def dense():
    return search_spaces.load("dense_prediction", input_size=32)


def cycled(space, n):
    """`n` random archs whose decoder choices cycle so that every upsample, context, fusion and STN occurs."""
    rng, dec = random.Random(0), space.spec.decoder
    out = []
    for i in range(n):
        a = space.sample_assignment(rng)
        a.update({"decoder.upsample": UPSAMPLES[i % 3], "decoder.context": CONTEXTS[(i + 1) % 3],
                  "decoder.fusion": dec.fusion[i % len(dec.fusion)], "decoder.stn": i % 2 == 0,
                  "decoder.channels": dec.channels[(i // 2) % len(dec.channels)]})
        out.append(space.decode(a))
    return out


def real_inputs(arch):
    """(kind, input shape) of each decoder part as SegNet(arch) runs it, in order."""
    net = build_model(arch).eval()
    seen = []

    def hook(kind):
        return lambda m, args: seen.append((kind, [tuple(t.shape) for t in args[0]] if isinstance(args[0], list)
                                            else tuple(args[0].shape)))
    d = net.decoder
    parts = [("stn", net.stn)] if arch.decoder.stn else []
    parts += [("lateral", m) for m in d.laterals] + [("context", d.context)]
    parts += [("upsample", m) for m in d.upsample] + [("classifier", d.classifier)]
    for kind, m in parts:
        m.register_forward_pre_hook(hook(kind))
    d.register_forward_pre_hook(lambda m, args: seen.append(("levels", [tuple(t.shape) for t in args[0]])))
    with torch.no_grad():
        out = net(torch.randn(1, arch.in_channels, arch.input_size, arch.input_size))
    assert out.shape[-2:] == (arch.input_size, arch.input_size)
    return seen


def unit_shape(u):
    return (1, u.c_in, u.size, u.size)


@pytest.mark.parametrize("which", ["dense", "tiny_seg"])
def test_units_cover_every_decoder_choice_at_its_real_shape(which, request):
    space = request.getfixturevalue(which)
    table_keys = {u.key() for u in space_units(space)}
    archs = cycled(space, 12)
    assert {a.decoder.upsample for a in archs} == set(UPSAMPLES) and {a.decoder.context for a in archs} == set(CONTEXTS)
    for arch in archs:
        units = arch_units(arch)
        assert {u.key() for u in units} <= table_keys  # the space's table holds every unit of every arch
        # the units are the network, module for module: their parameters add up to the network's
        assert sum(p.numel() for u in units for p in u.build().parameters()) == \
            sum(p.numel() for p in build_model(arch).parameters())
        seen = real_inputs(arch)
        by_kind = {k: [s for kind, s in seen if kind == k] for k in ("stn", "lateral", "context", "upsample",
                                                                    "classifier", "levels")}
        dec = arch.decoder
        assert [unit_shape(u) for u in units if u.op == "stn"] == by_kind["stn"]
        i = next(i for i, u in enumerate(units) if u.op == "seg_fuse") - (dec.context != "none")
        lat = units[i - 3:i]
        assert [unit_shape(u) for u in lat] == by_kind["lateral"]
        ctx = [u for u in units if u.op in ("aspp", "rfb")]
        assert [unit_shape(u) for u in ctx] == ([] if dec.context == "none" else by_kind["context"])
        assert [u.op for u in ctx] == ([] if dec.context == "none" else [dec.context])
        fuse = [u for u in units if u.op == "seg_fuse"]
        levels = by_kind["levels"][0]
        assert [(u.size, dict(u.hparams)["sizes"], dict(u.hparams)["fusion"]) for u in fuse] == \
            [(levels[0][-1], tuple(s[-1] for s in levels), dec.fusion)]
        ups = [u for u in units if u.family == "upsample"]
        assert [(u.op, unit_shape(u)) for u in ups] == [(dec.upsample, s) for s in by_kind["upsample"]]
        clf = [u for u in units if u.op == "seg_classifier"]
        assert [unit_shape(u) for u in clf] == by_kind["classifier"] and dict(clf[0].hparams)["out"] == arch.input_size
        pools = [u for u in units if u.op == "seg_pool"]
        assert len(pools) == (1 if which == "tiny_seg" else 0)


def test_every_space_unit_runs_at_its_shape(tiny_seg):
    units = space_units(tiny_seg)
    kinds = {(u.op, dict(u.hparams).get("fusion")) for u in units}
    assert {("seg_fuse", "sum"), ("seg_fuse", "concat"), ("seg_classifier", None), ("seg_pool", None), ("stn", None),
            ("aspp", None), ("rfb", None), *((up, None) for up in UPSAMPLES)} <= kinds
    with torch.no_grad():
        for u in units:
            out = u.build()(torch.randn(unit_shape(u)))
            assert out.shape[1] == u.c_out, u.key()


def test_prediction_sums_decoder_entries_and_tracks_measurement(tiny_seg, tmp_path):
    profile = DeviceProfile(threads=1, warmup=2, repeats=12)
    table = LatencyTable.open(str(tmp_path), profile)
    table.build(space_units(tiny_seg), progress=False)
    fit_calibration(tiny_seg, table, n=8, seed=0, progress=False)
    model = LatencyModel.for_space(table, tiny_seg)
    arch = cycled(tiny_seg, 1)[0]
    parts = dict(model.breakdown(arch))
    decoder_ms = sum(ms for k, ms in parts.items() if k.split("[")[0] in ("seg_fuse", "seg_classifier", "seg_pool",
                                                                           "transposed", "aspp", "stn"))
    assert decoder_ms > 0 and model.predict(arch) == pytest.approx(model.calibration.intercept + sum(parts.values()))
    # a decoder four times as wide, with a context module, predicted and measured slower
    small = arch.replace(decoder=Decoder(3, 8, "bilinear_conv", "none", "sum", False))
    large = arch.replace(decoder=Decoder(3, 16, "transposed", "aspp", "concat", True))
    held = [small, large] + cycled(tiny_seg, 6)[2:]
    measured = measure_archs(held, table, reference=reference_arch(tiny_seg))
    predicted = [model.predict(a) for a in held]
    assert predicted[1] > predicted[0] * 1.1 and measured[1] > measured[0]
    errors = [abs(p / m - 1) for p, m in zip(predicted, measured)]
    assert sum(errors) / len(errors) < 0.3, (predicted, measured)


def test_cli_builds_and_validates_a_dense_prediction_space(tmp_path, capsys):
    from nas.cli import main

    path = tmp_path / "tiny_seg.yaml"
    path.write_text(TINY_SEG)
    args = ["--out", str(tmp_path / "tables"), "--repeats", "3"]
    assert main(["latency", "build", str(path), *args, "--calibrate", "4"]) == 0
    table = LatencyTable.load(capsys.readouterr().out.strip())
    assert {"seg_fuse", "seg_classifier", "seg_pool"} <= {e["unit"]["op"] for e in table.entries.values()}
    assert "tiny_seg@3x17" in table.calibrations
    assert main(["latency", "validate", str(path), *args, "--n", "2"]) == 0
    assert "latency validation: tiny_seg@3x17" in capsys.readouterr().out
