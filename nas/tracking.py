"""Tracking: wandb (offline by default) plus local files that are always written (CSV, HTML, PNG)."""
from __future__ import annotations

import csv
import glob
import io
import json
import os
import struct
import time
from typing import Any, Sequence

from nas.io import atomic_write_bytes, atomic_write_text

TRIAL_COLUMNS = ("trial", "arch", "accuracy", "latency_ms", "params", "macs", "feasible", "on_front", "state")


def write_csv(path: str, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Write rows (dicts) as CSV atomically; missing cells stay empty."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


# pareto.html: hovering a point with a picture (customdata: its path, relative to the HTML) shows it in a side panel,
# clicking opens it; plotly substitutes {plot_id}
PICTURE_SCRIPT = """
var plot = document.getElementById('{plot_id}');
var box = document.createElement('div');
box.id = 'arch-picture';
box.style.cssText = 'position:fixed;right:8px;top:8px;width:48%;max-height:96vh;overflow:auto;background:#fff;' +
  'border:1px solid #c8ced6;padding:6px;display:none;font:12px monospace';
document.body.appendChild(box);
plot.on('plotly_hover', function(ev) {
  var src = ev.points[0].customdata;
  if (!src) return;
  box.innerHTML = '<div>' + src + ' (click the point to open it)</div><img style="width:100%" src="' + src + '">';
  box.style.display = 'block';
});
plot.on('plotly_click', function(ev) {
  var src = ev.points[0].customdata;
  if (src) window.open(src, '_blank');
});
"""


def _hover(r: dict[str, Any], pictures: dict[int, str]) -> str:
    pic = pictures.get(r.get("trial"))
    return f"#{r['trial']} {r['arch']}" + (f"<br>picture: {pic}" if pic else "")


def pareto_figure(rows: Sequence[dict[str, Any]], x: str, y: str, title: str, reference: dict | None = None,
                  pictures: dict[int, str] | None = None):
    """A plotly scatter of every trial with the front drawn as a line (and an optional reference point); a trial
    with a picture (`pictures`: trial -> path) carries the path as customdata and in its hover text."""
    import plotly.graph_objects as go

    pictures = pictures or {}
    done = [r for r in rows if r.get(x) is not None and r.get(y) is not None]
    front = sorted((r for r in done if r.get("on_front")), key=lambda r: r[x])
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[r[x] for r in done], y=[r[y] for r in done], mode="markers", name="trials",
                             text=[_hover(r, pictures) for r in done],
                             customdata=[pictures.get(r.get("trial"), "") for r in done],
                             marker=dict(color="#9aa5b1")))
    fig.add_trace(go.Scatter(x=[r[x] for r in front], y=[r[y] for r in front], mode="lines+markers",
                             name="Pareto front", text=[_hover(r, pictures) for r in front],
                             customdata=[pictures.get(r.get("trial"), "") for r in front],
                             marker=dict(color="#d62728", size=9)))
    if reference:
        fig.add_trace(go.Scatter(x=[reference[x]], y=[reference[y]], mode="markers", name=reference["name"],
                                 marker=dict(symbol="star", size=14, color="#1f77b4")))
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="plotly_white")
    return fig


def pareto_png(path: str, rows: Sequence[dict[str, Any]], x: str, y: str, title: str,
               reference: dict | None = None) -> None:
    """The same scatter as a PNG (matplotlib, headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r.get(x) is not None and r.get(y) is not None]
    front = sorted((r for r in done if r.get("on_front")), key=lambda r: r[x])
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    ax.scatter([r[x] for r in done], [r[y] for r in done], s=14, c="#9aa5b1", label="trials")
    ax.plot([r[x] for r in front], [r[y] for r in front], "o-", c="#d62728", label="Pareto front")
    if reference:
        ax.scatter([reference[x]], [reference[y]], marker="*", s=160, c="#1f77b4", label=reference["name"])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def trial_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The TRIAL_COLUMNS the rows have (all when there are none: accuracy or mIoU), then their other keys, sorted."""
    keys = {k for r in rows for k in r}
    return [c for c in TRIAL_COLUMNS if c in keys or not rows] + sorted(keys - set(TRIAL_COLUMNS))


def write_local(run_dir: str, rows: Sequence[dict[str, Any]], x: str = "latency_ms", y: str = "accuracy",
                reference: dict | None = None, title: str = "", pictures: dict[int, str] | None = None) -> None:
    """trials.csv, pareto.csv, pareto.html and pareto.png in the run folder; in pareto.html, hovering a trial
    with a picture (`pictures`: trial -> SVG path relative to the run folder) shows it beside the plot."""
    write_csv(os.path.join(run_dir, "trials.csv"), rows, trial_columns(rows))
    write_front(run_dir, rows, x, y, reference, title, pictures=pictures)


def write_front(run_dir: str, rows: Sequence[dict[str, Any]], x: str = "latency_ms", y: str = "accuracy",
                reference: dict | None = None, title: str = "", stem: str = "pareto",
                pictures: dict[int, str] | None = None) -> None:
    """<stem>.csv (the front's rows), <stem>.html and <stem>.png (every trial, the front as a line) in the run
    folder; hovering a trial with a picture in <stem>.html shows it beside the plot."""
    write_csv(os.path.join(run_dir, f"{stem}.csv"), [r for r in rows if r.get("on_front")], trial_columns(rows))
    title = title or f"{y} vs {x}"
    fig = pareto_figure(rows, x, y, title, reference, pictures)
    html = fig.to_html(include_plotlyjs=True, full_html=True, post_script=PICTURE_SCRIPT if pictures else None)
    atomic_write_text(os.path.join(run_dir, f"{stem}.html"), html)
    pareto_png(os.path.join(run_dir, f"{stem}.png"), rows, x, y, title, reference)


def front_chart_rows(rows: Sequence[dict[str, Any]], x: str, y: str) -> list[list[Any]]:
    """[trial, arch, x, y, series] for the front chart: the front's points first, sorted by x (so the "front"
    series draws as the front's staircase line), then the other trials ("trial"), also sorted by x. Trials
    without both objectives are left out."""
    pts = [r for r in rows if isinstance(r.get(x), (int, float)) and isinstance(r.get(y), (int, float))]
    front = sorted((r for r in pts if r.get("on_front")), key=lambda r: (r[x], r[y]))
    rest = sorted((r for r in pts if not r.get("on_front")), key=lambda r: (r[x], r[y]))
    return ([[r.get("trial"), r.get("arch"), r[x], r[y], "front"] for r in front]
            + [[r.get("trial"), r.get("arch"), r[x], r[y], "trial"] for r in rest])


def _caption(r: dict[str, Any], x: str, y: str) -> str:
    shown = [f"{k} {r[k]:.4g}" for k in (y, x) if isinstance(r.get(k), (int, float))]
    return f"trial {r['trial']}" + (": " + ", ".join(shown) if shown else "")


class WandbTracker:
    """Logs one search to a wandb run: per-trial metrics with the running hypervolume and front size, a trials
    table, the front chart (front points in their own colour, joined by a line) and the front's history."""

    def __init__(self, run_dir: str, name: str, config: dict, mode: str = "offline", project: str = "convnas",
                 entity: str | None = None, resume_id: str | None = None):
        import wandb

        mode = os.environ.get("WANDB_MODE", mode)
        self.run = wandb.init(dir=run_dir, project=project, entity=entity, name=name, config=config, mode=mode,
                              id=resume_id, resume="allow" if resume_id else None, reinit="finish_previous")
        self._wandb = wandb
        self.front_history: list[list[Any]] = []  # [trial, hypervolume, front_size] per logged trial
        self.device_history: dict[str, list[list[Any]]] = {}  # the same per device of a several-device search

    @property
    def id(self) -> str:
        return self.run.id

    def log_trial(self, row: dict[str, Any], hypervolume: float | None = None, front_size: int | None = None,
                  device: str | None = None) -> None:
        """One trial's metrics (`trial/...`), the running hypervolume and front size; with `device` (one search of
        several), every key carries `@device` (`trial@cpu-1t/accuracy`, `hypervolume@cpu-1t`)."""
        at = f"@{device}" if device else ""
        metrics = {f"trial{at}/{k}": v for k, v in row.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if hypervolume is not None:
            metrics[f"hypervolume{at}"] = hypervolume
        if front_size is not None:
            metrics[f"front_size{at}"] = front_size
        if hypervolume is not None or front_size is not None:
            history = self.device_history.setdefault(device, []) if device else self.front_history
            history.append([row.get("trial"), hypervolume, front_size])
        self.run.log(metrics)

    def log_front(self, rows: Sequence[dict[str, Any]], x: str = "latency_ms", y: str = "accuracy",
                  pictures: dict[int, str] | None = None, device: str | None = None,
                  trials_table: bool = True) -> None:
        """The trials table, "pareto_front" (wandb's line spec, one colour per series: the front as a line
        through its points sorted by x, the other trials as "trial"), "trials_scatter" (every trial alike),
        when trials were logged with a hypervolume or front size, "front_history" and its chart, and with
        `pictures` (trial -> PNG path) "front_pictures": the front trials' pictures, sorted by x, captioned.
        With `device`, the charts are that device's front (`pareto_front@cpu-1t`, ...)."""
        at = f"@{device}" if device else ""
        columns = trial_columns(rows)
        table = self._wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in rows])
        front_table = self._wandb.Table(columns=["trial", "arch", x, y, "series"], data=front_chart_rows(rows, x, y))
        front = self._wandb.plot_table("wandb/line/v0", front_table, {"x": x, "y": y, "stroke": "series"},
                                       {"title": f"{y} vs {x}{' on ' + device if device else ''}: Pareto front "
                                                 f"(series=front) and other trials"})
        scatter = self._wandb.plot.scatter(table, x, y, title=f"{y} vs {x}{' on ' + device if device else ''}: "
                                                             f"every trial")
        logged = {"trials": table} if trials_table else {}
        logged.update({f"pareto_front{at}": front, f"trials_scatter{at}": scatter})
        history = self.device_history.get(device) if device else self.front_history
        if history:
            history_table = self._wandb.Table(columns=["trial", "hypervolume", "front_size"], data=history)
            logged[f"front_history{at}"] = history_table
            logged[f"front_evolution{at}"] = self._wandb.plot.line(
                history_table, "trial", "hypervolume",
                title=f"hypervolume after each trial{' on ' + device if device else ''}")
        front = sorted((r for r in rows if r.get("on_front") and r.get("trial") in (pictures or {})),
                       key=lambda r: (r.get(x) is None, r.get(x)))
        if front:  # a list of images: wandb shows it as one media panel, captioned, in front order
            logged[f"front_pictures{at}"] = [self._wandb.Image(pictures[r["trial"]], caption=_caption(r, x, y))
                                             for r in front]
        self.run.log(logged)
        self.run.summary[f"front_size{at}"] = sum(1 for r in rows if r.get("on_front"))

    def log_trials(self, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
        """The trials table alone (a several-device search: every device's latency and front flags per trial)."""
        self.run.log({"trials": self._wandb.Table(columns=list(columns),
                                                  data=[[r.get(c) for c in columns] for r in rows])})

    def finish(self) -> None:
        self.run.finish()


def _leveldb_records(data: bytes):
    """Records of a wandb transaction log (LevelDB log framing after a 7-byte ':W&B' header)."""
    block, pos, pending = 32768, 7, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            yield pending + chunk
            pending = b""


def read_offline_run(run_path: str, wait_s: float = 20.0) -> dict[str, Any]:
    """Read an offline wandb run folder back: history rows, summary, config and logged tables (waiting up to
    `wait_s` for a just-finished run's log to be complete)."""
    from wandb.proto import wandb_internal_pb2 as pb

    files = glob.glob(os.path.join(run_path, "*.wandb"))
    if not files:
        raise FileNotFoundError(f"no .wandb file in '{run_path}' (expected wandb/offline-run-*/run-*.wandb)")
    out: dict[str, Any] = {"history": [], "summary": {}, "config": {}, "tables": {}}
    for rec in _finished_records(files[0], pb, wait_s):
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            out["history"].append({".".join(i.nested_key) or i.key: json.loads(i.value_json) for i in rec.history.item})
        elif kind == "summary":
            for u in rec.summary.update:
                out["summary"][".".join(u.nested_key) or u.key] = json.loads(u.value_json)
        elif kind == "config":
            for u in rec.config.update:
                out["config"][".".join(u.nested_key) or u.key] = json.loads(u.value_json)
    for path in glob.glob(os.path.join(run_path, "files", "media", "table", "*.table.json")):
        key = os.path.basename(path).rsplit("_", 2)[0]
        with open(path) as f:
            out["tables"][key] = json.load(f)
    return out


def _finished_records(path: str, pb, wait_s: float = 20.0) -> list:
    """The records of a run's transaction log, once it holds the run's exit record: wandb's service process writes
    the log behind `finish()`, so read right after it the file may hold only its header (waits up to `wait_s`;
    a run killed before its exit gives what there is)."""
    deadline = time.monotonic() + wait_s
    while True:
        with open(path, "rb") as f:
            records = []
            for raw in _leveldb_records(f.read()):
                rec = pb.Record()
                rec.ParseFromString(raw)
                records.append(rec)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def find_offline_runs(run_dir: str) -> list[str]:
    """Offline wandb run folders under `run_dir`, oldest first."""
    return sorted(glob.glob(os.path.join(run_dir, "wandb", "offline-run-*")))
