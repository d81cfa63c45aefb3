import csv
import os

from nas.tracking import WandbTracker, find_offline_runs, read_offline_run, write_local

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
    assert chart["panel_config"]["fieldSettings"] == {"x": "latency_ms", "y": "accuracy"}
    assert run["summary"]["front_size"] == 2
