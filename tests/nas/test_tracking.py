import csv
import os

from nas.tracking import WandbTracker, find_offline_runs, front_chart_rows, read_offline_run, write_local

ROWS = [
    {"trial": 0, "arch": "a", "accuracy": 0.90, "latency_ms": 3.0, "params": 100, "macs": 1000, "feasible": True,
     "on_front": True, "state": "COMPLETE"},
    {"trial": 1, "arch": "b", "accuracy": 0.80, "latency_ms": 3.5, "params": 90, "macs": 900, "feasible": True,
     "on_front": False, "state": "COMPLETE"},
    {"trial": 2, "arch": "c", "accuracy": 0.85, "latency_ms": 1.0, "params": 50, "macs": 500, "feasible": True,
     "on_front": True, "state": "COMPLETE"},
]


def test_local_files(tmp_path):
    write_local(str(tmp_path), ROWS, reference={"name": "mobilenet_v2", "accuracy": 0.8, "latency_ms": 2.0})
    with open(tmp_path / "trials.csv") as f:
        assert [r["arch"] for r in csv.DictReader(f)] == ["a", "b", "c"]
    with open(tmp_path / "pareto.csv") as f:
        assert [r["trial"] for r in csv.DictReader(f)] == ["0", "2"]
    html = (tmp_path / "pareto.html").read_text()
    assert "Pareto front" in html and "mobilenet_v2" in html
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_wandb_offline_run_reads_back_table_and_chart(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    tracker = WandbTracker(str(tmp_path), "t", {"space": "mobile"}, mode="offline")
    for r in ROWS:
        tracker.log_trial(r, hypervolume=float(r["trial"]))
    tracker.log_front(ROWS)
    tracker.finish()
    runs = find_offline_runs(str(tmp_path))
    assert len(runs) == 1
    run = read_offline_run(runs[0])
    assert [h["trial/accuracy"] for h in run["history"] if "trial/accuracy" in h] == [0.9, 0.8, 0.85]
    assert [h["hypervolume"] for h in run["history"] if "hypervolume" in h] == [0.0, 1.0, 2.0]
    table = run["tables"]["trials"]
    assert table["columns"][:3] == ["trial", "arch", "accuracy"] and len(table["data"]) == 3
    chart = run["config"]["_wandb.visualize.pareto_front"]
    assert chart["panel_config"]["panelDefId"] == "wandb/line/v0"
    assert chart["panel_config"]["fieldSettings"] == {"x": "latency_ms", "y": "accuracy", "stroke": "series"}
    assert run["config"]["_wandb.visualize.trials_scatter"]["panel_config"]["fieldSettings"] == {
        "x": "latency_ms", "y": "accuracy"}
    assert run["summary"]["front_size"] == 2


def test_wandb_front_chart_marks_the_front_and_logs_its_history(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    rows = ROWS + [{"trial": 3, "arch": "d", "accuracy": 0.95, "latency_ms": 5.0, "on_front": True},
                   {"trial": 4, "arch": "e", "accuracy": 0.5, "latency_ms": 0.5, "on_front": False},
                   {"trial": 5, "arch": "f", "state": "FAIL", "on_front": False}]  # no objectives: not charted
    tracker = WandbTracker(str(tmp_path), "t", {"space": "mobile"}, mode="offline")
    history = [(0, 0.1, 1), (1, 0.1, 1), (2, 0.4, 2), (3, 0.5, 3), (4, 0.5, 3), (5, 0.5, 3)]
    for r, (_, hv, size) in zip(rows, history):
        tracker.log_trial(r, hypervolume=hv, front_size=size)
    tracker.log_front(rows)
    tracker.finish()
    run = read_offline_run(find_offline_runs(str(tmp_path))[0])

    # the chart's own data table: "front" exactly for the on_front rows, the front sorted by x
    chart = run["config"]["_wandb.visualize.pareto_front"]["panel_config"]
    assert chart["panelDefId"] == "wandb/line/v0" and chart["fieldSettings"]["stroke"] == "series"
    table = run["tables"]["pareto_front_table"]
    assert table["columns"] == ["trial", "arch", "latency_ms", "accuracy", "series"]
    on_front = {r["trial"] for r in rows if r["on_front"]}
    assert {row[0] for row in table["data"]} == {0, 1, 2, 3, 4}
    assert all((row[4] == "front") == (row[0] in on_front) for row in table["data"])
    front = [row for row in table["data"] if row[4] == "front"]
    assert [row[0] for row in front] == [2, 0, 3] and [row[2] for row in front] == sorted(row[2] for row in front)
    assert table["data"][:len(front)] == front  # the front's line first

    # hypervolume and front size per trial, and the front's history as a table with its chart
    hist = [h for h in run["history"] if "hypervolume" in h]
    assert [(h["trial/trial"], h["hypervolume"], h["front_size"]) for h in hist] == [
        (t, hv, size) for t, hv, size in history]
    assert [tuple(r) for r in run["tables"]["front_history"]["data"]] == history
    assert run["tables"]["front_history"]["columns"] == ["trial", "hypervolume", "front_size"]
    evolution = run["config"]["_wandb.visualize.front_evolution"]["panel_config"]
    assert evolution["fieldSettings"]["x"] == "trial" and evolution["fieldSettings"]["y"] == "hypervolume"


def test_front_chart_rows_without_front():
    rows = [{"trial": 0, "latency_ms": 2.0, "accuracy": 0.5}, {"trial": 1, "latency_ms": 1.0, "accuracy": 0.4}]
    assert [r[4] for r in front_chart_rows(rows, "latency_ms", "accuracy")] == ["trial", "trial"]
    assert [r[0] for r in front_chart_rows(rows, "latency_ms", "accuracy")] == [1, 0]


def test_pareto_html_shows_the_hovered_trials_picture(tmp_path):
    pictures = {0: "pictures/trial_0.svg", 2: "pictures/trial_2.svg"}
    write_local(str(tmp_path), ROWS, pictures=pictures)
    html = (tmp_path / "pareto.html").read_text().replace("\\u002f", "/")
    assert '"pictures/trial_0.svg"' in html and '"pictures/trial_2.svg"' in html and "trial_1.svg" not in html
    assert "plotly_hover" in html and "arch-picture" in html and "picture: pictures/trial_2.svg" in html
    write_local(str(tmp_path), ROWS)  # no pictures: no script
    assert "arch-picture" not in (tmp_path / "pareto.html").read_text()
