"""How good is the latency model? Measure random networks end to end and compare with the predictions.

Reported for the calibrated `LatencyModel`, the naive table sum, and a MACs-only proxy (latency =
a * MACs + b, fitted on the same calibration networks), each as MAPE, the share of networks within
±5% and ±10% of their measured latency, and Kendall's tau (does it rank networks as measured?).
"""
from __future__ import annotations

import io
import math
import os
import random
from typing import Any, Sequence

import numpy as np

from nas.cost import count_arch
from nas.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from nas.latency.predictor import LatencyModel, measure_archs, reference_arch, space_signature
from nas.latency.table import _progress_bar
from search_spaces.arch import Arch


def fidelity(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """MAPE (%), share within ±5% / ±10% (0..1), Kendall tau of predicted vs measured."""
    from scipy.stats import kendalltau

    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    rel = np.abs(p / m - 1)
    tau = float(kendalltau(p, m).statistic) if len(p) > 1 else float("nan")
    return {"n": int(len(p)), "mape": float(100 * rel.mean()), "within_5": float((rel <= 0.05).mean()),
            "within_10": float((rel <= 0.10).mean()), "kendall_tau": tau}


def macs_of(arch: Arch) -> float:
    return float(count_arch(arch).macs)


def fit_macs_proxy(points: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """(a, b) of latency ≈ a * MACs + b, least squares on relative error over the calibration points."""
    x = np.array([p["macs"] if "macs" in p else macs_of(Arch.from_string(p["arch"])) for p in points], float)
    y = np.array([p["measured_ms"] for p in points], float)
    X = np.stack([x, np.ones_like(x)], 1) / y[:, None]
    (a, b), *_ = np.linalg.lstsq(X, np.ones_like(y), rcond=None)
    return float(a), float(b)


def validation_archs(space, n: int, seed: int, exclude: Sequence[str] = ()) -> list[Arch]:
    """`n` distinct random architectures of `space`, none of them a calibration network."""
    rng = random.Random(seed)
    seen, out = set(exclude), []
    for _ in range(100 * n):
        if len(out) >= n:
            break
        a = space.sample(rng)
        if a.to_string() not in seen:
            seen.add(a.to_string())
            out.append(a)
    return out


def validate(space, model: LatencyModel, n: int = 50, seed: int = 1, out_dir: str | None = None,
             progress: bool | None = None, repeat: bool = False) -> dict[str, Any]:
    """Measure `n` random networks end to end; the fidelity of the model, the naive sum and the MACs proxy.

    `repeat`: measure the networks a second time and report how well the two measurements agree (the
    same figures, `remeasure`): the noise floor of the machine, which no predictor can beat.
    With `out_dir`, writes validation.json (every network), validation.png and validation.html
    (predicted vs measured) there, atomically."""
    cal = model.calibration
    archs = validation_archs(space, n, seed, exclude=[p["arch"] for p in cal.points])
    bar = _progress_bar(len(archs) * (2 if repeat else 1), f"validate {space_signature(space)}", progress)
    try:
        ref = reference_arch(space)
        measured = measure_archs(archs, model.table, progress=bar.update, reference=ref)
        again = measure_archs(archs, model.table, progress=bar.update, reference=ref) if repeat else None
    finally:
        bar.close()
    predicted = [model.predict(a) for a in archs]
    naive = [model.raw(a) for a in archs]
    rows = [{"arch": a.to_string(), "measured_ms": m, "predicted_ms": p, "table_sum_ms": s}
            for a, m, p, s in zip(archs, measured, predicted, naive)]
    report: dict[str, Any] = {"space": space_signature(space), "profile": model.table.profile.key(),
                              "fingerprint": model.table.fingerprint, "calibration": cal.form,
                              "calibration_archs": len(cal.points), "model": fidelity(predicted, measured),
                              "table_sum": fidelity(naive, measured)}
    if again is not None:
        report["remeasure"] = fidelity(again, measured)
        for r, m in zip(rows, again):
            r["remeasured_ms"] = m
    if len(cal.points) >= 2:
        a, b = fit_macs_proxy(cal.points)
        for r, arch in zip(rows, archs):
            r["macs"] = macs_of(arch)
            r["macs_proxy_ms"] = a * r["macs"] + b
        report["macs_proxy"] = fidelity([r["macs_proxy_ms"] for r in rows], measured)
        report["macs_proxy_fit"] = {"ms_per_gmac": a * 1e9, "intercept_ms": b}
    report["rows"] = rows
    if out_dir:
        write_outputs(report, out_dir)
    return report


def format_report(report: dict[str, Any]) -> str:
    """The figures as a small text table."""
    lines = [f"latency validation: {report['space']} on {report['profile']}, {report['model']['n']} networks "
             f"measured end to end (calibration '{report['calibration']}' on {report['calibration_archs']} others)",
             f"{'predictor':<22}{'MAPE':>8}{'±5%':>8}{'±10%':>8}{'tau':>8}"]
    for key, label in (("model", "table + calibration"), ("table_sum", "table sum (naive)"),
                       ("macs_proxy", "MACs linear proxy"), ("remeasure", "re-measurement")):
        f = report.get(key)
        if f:
            lines.append(f"{label:<22}{f['mape']:>7.1f}%{100 * f['within_5']:>7.0f}%{100 * f['within_10']:>7.0f}%"
                         f"{f['kendall_tau']:>8.3f}")
    return "\n".join(lines)


def write_outputs(report: dict[str, Any], out_dir: str) -> list[str]:
    """validation.json, validation.png (matplotlib) and validation.html (plotly), each written atomically."""
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"validation-{report['profile']}-{report['space'].replace('@', '-')}")
    atomic_write_json(stem + ".json", report)
    rows = report["rows"]
    m = [r["measured_ms"] for r in rows]
    series = [("table + calibration", [r["predicted_ms"] for r in rows], "#1f77b4")]
    if rows and "macs_proxy_ms" in rows[0]:
        series.append(("MACs linear proxy", [r["macs_proxy_ms"] for r in rows], "#ff7f0e"))
    lo = min([*m, *(v for _, s, _ in series for v in s)] or [0.0]) * 0.9
    hi = max([*m, *(v for _, s, _ in series for v in s)] or [1.0]) * 1.1
    title = f"latency: predicted vs measured ({report['space']}, {report['profile']})"
    files = [stem + ".json"]
    try:
        files.append(_png(stem + ".png", m, series, lo, hi, title, report))
    except ImportError:
        pass
    try:
        files.append(_html(stem + ".html", m, series, lo, hi, title, rows))
    except ImportError:
        pass
    return files


def _png(path, measured, series, lo, hi, title, report) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 6), dpi=110)
    xs = np.linspace(lo, hi, 2)
    ax.plot(xs, xs, color="black", lw=1, label="measured = predicted")
    ax.fill_between(xs, xs * 0.9, xs * 1.1, color="grey", alpha=0.2, label="±10%")
    keys = {"table + calibration": "model", "MACs linear proxy": "macs_proxy"}
    for name, pred, color in series:
        f = report.get(keys[name], {})
        label = f"{name} (MAPE {f.get('mape', math.nan):.1f}%, tau {f.get('kendall_tau', math.nan):.2f})"
        ax.scatter(measured, pred, s=14, color=color, alpha=0.8, label=label)
    ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="measured latency (ms)", ylabel="predicted latency (ms)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _html(path, measured, series, lo, hi, title, rows) -> str:
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="measured = predicted",
                             line={"color": "black", "width": 1}))
    for name, pred, color in series:
        fig.add_trace(go.Scatter(x=measured, y=pred, mode="markers", name=name, marker={"color": color},
                                 text=[r["arch"] for r in rows], hovertemplate="%{text}<br>measured %{x:.3f} ms"
                                 "<br>predicted %{y:.3f} ms<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="measured latency (ms)", yaxis_title="predicted latency (ms)",
                      template="plotly_white")
    atomic_write_text(path, fig.to_html(include_plotlyjs=True, full_html=True))
    return path


