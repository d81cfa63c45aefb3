"""Rows of a dense-prediction arch outside the encoder: the STN in front, pooled pyramid levels, the decoder."""
from __future__ import annotations

from torch import nn

from nas.diagram.layout import Row, hparam_text, params_of, register_head_rows
from nas.latency.decoder_units import FUSE, SEG_CLASSIFIER, decoder_units, pyramid_units, stn_unit
from nas.latency.units import Unit
from search_spaces.arch import Arch
from search_spaces.segmentation import pyramid

LEVEL_NAMES = ("P1 finest", "P2", "P3 coarsest")


def _row(unit: Unit, group: str, module: nn.Module | None, op: str | None = None, detail: str | None = None,
         size_out: int | None = None, note: str = "") -> Row:
    detail = hparam_text(unit.op, unit.hparams) if detail is None else detail
    size_out = -(-unit.size // unit.stride) if size_out is None else size_out
    return Row(group, op or unit.op, detail, (), unit.c_in, unit.c_out, unit.stride, unit.size, size_out,
               params_of(module) if module is not None else 0, note, [unit])


def segmentation_rows(arch: Arch, model: nn.Module, encoder: list[Row]) -> tuple[list[Row], list[Row]]:
    """[stn] before the stem; after the encoder: pooled levels, laterals, context, fusion, upsampling, classifier.
    The encoder rows whose stage feeds the pyramid get a note saying which level they feed."""
    dec, pyr = arch.decoder, pyramid(arch)
    stage_rows = {r.stage: r for r in encoder if r.stage is not None}  # the last row of each stage
    if encoder and encoder[-1].stage is None and stage_rows:
        stage_rows[max(stage_rows)] = encoder[-1]  # the head folds into the last stage
    levels = [(stage_rows[i].c_out, stage_rows[i].size_out) for i in pyr.indices]
    for name, i in zip(LEVEL_NAMES, pyr.indices):
        stage_rows[i].note = (stage_rows[i].note + " " if stage_rows[i].note else "") + f"-> {name.split()[0]}"
    pools, sizes = pyramid_units(levels, pyr.extra)
    before = []
    if dec.stn:
        stn = stn_unit(arch.in_channels, arch.input_size)
        before.append(_row(stn, "input", model.stn, detail="spatial transformer"))
    after = [_row(u, "pyramid", None, op="maxpool", detail="1x1 s2",
                  note=f"-> {LEVEL_NAMES[len(levels) + i].split()[0]}") for i, u in enumerate(pools)]
    units = decoder_units(dec, pyr, sizes, arch.input_size)
    d = model.decoder
    n_lat = len(d.laterals)
    for i, (u, m) in enumerate(zip(units[:n_lat], d.laterals)):
        after.append(_row(u, "decoder", m, op="lateral", detail=f"{u.op} to {u.c_out}", note=f"<- {LEVEL_NAMES[i]}"))
    rest = units[n_lat:]
    if dec.context != "none":
        after.append(_row(rest.pop(0), "decoder", d.context, note="on P3"))
    fuse = rest.pop(0)
    assert fuse.op == FUSE, fuse
    fuse_op = {"asff": "asff", "concat": "concat+pointwise", "sum": "sum"}[dec.fusion]
    after.append(_row(fuse, "decoder", d.fuse, op=fuse_op, detail=f"3 levels at {fuse.size}px",
                      note="fusion"))
    for u, m in zip(rest[:-1], d.upsample):
        scale = int(dict(u.hparams)["upsample"])
        after.append(_row(u, "decoder", m, size_out=u.size * scale, note=f"x{scale}"))
    last = rest[-1]
    assert last.op == SEG_CLASSIFIER, last
    after.append(_row(last, "decoder", d.classifier, op="classifier", detail="conv1x1 to classes",
                      size_out=arch.input_size))
    return before, after


register_head_rows("segmentation", segmentation_rows)
