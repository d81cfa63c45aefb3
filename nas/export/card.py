"""The model card of an exported architecture: README.md beside model.py, from plain values.

Latency is a table keyed by device (a profile key such as `cpu-t1-b1-float32`), each with a predicted and,
when known, a measured figure: a search over several devices adds rows, nothing else changes. Quality is a
table keyed by how it was obtained (one-shot with supernet weights, retrained from scratch), each a mapping
of metric to value.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from nas.cost import count_arch, format_count
from nas.diagram import arch_diagram, write_diagram
from nas.io import atomic_write_text
from search_spaces.arch import Arch

OUTPUTS = {"classification": "N x {k} logits", "segmentation": "N x {k} x H x W logits (per-pixel classes)"}


def _num(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def model_card(*, title: str, task: str, arch_string: str, in_channels: int, input_size: int, num_classes: int,
               params: int, macs: int | None = None, latency: Mapping[str, Mapping[str, float | None]] | None = None,
               quality: Mapping[str, Mapping[str, float]] | None = None, weights: str | None = "weights.pt",
               picture: str | None = "arch.png", svg: str | None = "arch.svg", notes: list[str] | None = None) -> str:
    """README.md text: what the network is (task, input, output, params, MACs), its latency per device
    (`{device: {"predicted_ms": .., "measured_ms": ..}}`), its quality (`{"one-shot (val)": {"accuracy": ..}}`),
    its picture and how to load it."""
    lines = [f"# {title}", ""]
    if picture:
        lines += [f"![architecture]({picture})", ""]
        if svg:
            lines += [f"The same picture as vector graphics: [{svg}]({svg}) (hover a layer for its details).", ""]
    output = OUTPUTS.get(task, "N x {k} outputs").format(k=num_classes)
    facts = [["task", task], ["input", f"N x {in_channels} x {input_size} x {input_size} (float32, NCHW)"],
             ["output", output],
             ["parameters", format_count(params) + (f" ({params:,})" if format_count(params) != str(params) else "")]]
    if macs is not None:
        facts.append(["MACs", f"{format_count(macs)} at batch 1"])
    lines += _table(["", ""], facts) + [""]
    lines += ["## Latency", ""]
    if latency:
        rows = [[f"`{device}`", _num(v.get("predicted_ms")), _num(v.get("measured_ms"))]
                for device, v in latency.items()]
        lines += _table(["device", "predicted (ms)", "measured (ms)"], rows)
        lines += ["", "Predicted: the search's latency table and calibration; measured: the network timed end to "
                      "end beside the others (`–`: not measured).", ""]
    else:
        lines += ["No latency was predicted for this network (the search had no latency model).", ""]
    lines += ["## Quality", ""]
    if quality:
        metrics = list(dict.fromkeys(m for q in quality.values() for m in q))
        rows = [[how] + [_num(q.get(m)) for m in metrics] for how, q in quality.items()]
        lines += _table(["how measured"] + metrics, rows) + [""]
    else:
        lines += ["No quality was measured.", ""]
    lines += ["## Load it", "", "`model.py` needs only PyTorch (the ops it uses are copied in):", "", "```python",
              "import torch", "from model import load_net", ""]
    lines += ([f"net = load_net()  # Net() with {weights} loaded, in eval mode"] if weights else
              ["net = load_net()  # Net() in eval mode, random weights (no weights were exported)"])
    lines += [f"y = net(torch.randn(1, {in_channels}, {input_size}, {input_size}))", "```", "",
              "Or run `python model.py` for a smoke test. The architecture, as convnas reads it "
              "(`Arch.from_string`, or arch.yaml):", "", "```", arch_string, "```", ""]
    if notes:
        lines += [*notes, ""]
    return "\n".join(lines)


def summary_values(summary: Mapping[str, Any], trial: int, quality: Sequence[str], search_mode: str = "one_shot"
                   ) -> tuple[float | None, float | None, dict[str, dict[str, float]]]:
    """From a search's summary (summary.json): trial `trial`'s predicted and measured latency (ms) and its quality
    (`quality`: the task's metric names) as the search scored it and, when the retrain stage trained it, on test."""
    rows = [r for r in (summary.get("front") or []) if r.get("trial") == trial]
    best = summary.get("best") or {}
    row = rows[0] if rows else (best if best.get("trial") == trial and summary.get("best_from") != "retrained" else {})
    how = {"one_shot": "one-shot (supernet weights, val split)",
           "multi_trial": "multi-trial (trained briefly, val split)"}.get(search_mode, f"{search_mode} (val split)")
    qual: dict[str, dict[str, float]] = {}
    searched = {q: row[q] for q in quality if isinstance(row.get(q), (int, float))}
    if searched:
        qual[how] = searched
    predicted, measured = row.get("latency_ms"), None
    retrain = summary.get("retrain") or {}
    for r in retrain.get("archs") or []:
        if r.get("trial") != trial:
            continue
        test = {q: r[f"test_{q}"] for q in quality if isinstance(r.get(f"test_{q}"), (int, float))}
        if test:
            n = retrain.get("epochs", "?")
            qual[f"retrained from scratch ({n} epoch{'' if n == 1 else 's'}, test split)"] = test
        measured = r.get("measured_latency_ms")
        predicted = predicted if predicted is not None else r.get("predicted_latency_ms")
    return predicted, measured, qual


def write_card(out: str | os.PathLike, arch: Arch, *, title: str, summary: Mapping[str, Any] | None, trial: int,
               quality: Sequence[str], search_mode: str, device: str, latency_model=None,
               weights: str | None = "weights.pt", other_devices: Mapping[str, float] | None = None) -> list[Path]:
    """arch.svg, arch.png (the picture, latency shares from `latency_model`) and README.md (the model card) of
    trial `trial` in folder `out` (`other_devices`: the predicted ms on a several-device run's other devices);
    returns the paths written."""
    out = Path(out)
    predicted, measured, qual = summary_values(summary or {}, trial, quality, search_mode)
    if predicted is None and latency_model is not None:
        predicted = latency_model.predict(arch)
    macs = count_arch(arch).macs
    lines = [f"{how}: " + ", ".join(f"{k} {_num(v)}" for k, v in q.items()) for how, q in qual.items()]
    diagram = arch_diagram(arch, latency_model, title=title, macs=macs, lines=lines)
    written = write_diagram(diagram, out / "arch")
    latency = {device: {"predicted_ms": predicted, "measured_ms": measured}} if predicted is not None else None
    if latency is not None and other_devices:
        latency.update({d: {"predicted_ms": ms, "measured_ms": None} for d, ms in other_devices.items() if d != device})
    card = model_card(title=title, task=arch.task, arch_string=arch.to_string(), in_channels=arch.in_channels,
                      input_size=arch.input_size, num_classes=arch.num_classes, params=diagram.params, macs=macs,
                      latency=latency, quality=qual, weights=weights)
    atomic_write_text(str(out / "README.md"), card)
    return written + [out / "README.md"]
