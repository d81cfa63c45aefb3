"""bench/gpu_check.py: every step on the CPU with --quick (a subprocess, as it is run), and its reporting."""
import json
import math
import os
import subprocess
import sys

import pytest
from bench_helpers import load_bench

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "bench", "gpu_check.py")


def _module():
    return load_bench("gpu_check")  # puts bench/ on sys.path (its step modules)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


@pytest.mark.slow
def test_quick_cpu_run_passes_every_step_and_writes_the_figures(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p),
           "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    env.pop("OUT", None)
    proc = subprocess.run([sys.executable, SCRIPT, "--device", "cpu", "--quick", "--out", str(tmp_path / "out")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-4000:]
    md = (tmp_path / "out" / "gpu_check.md").read_text()
    assert md in proc.stdout
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in md.splitlines()
            if line.startswith("| ") and line[2:3].isdigit()}
    assert sorted(rows) == ["1", "2", "3", "4", "5", "6"]
    assert all(cells[2] == "PASS" and cells[3] for cells in rows.values()), md

    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert report["device"] == "cpu" and report["quick"]
    steps = {n: s["figures"] for n, s in report["steps"].items()}
    assert all(s["status"] == "PASS" and _finite(s["seconds"]) for s in report["steps"].values())
    lat = steps["1"]["b1"]
    for key in ("model", "remeasure", "macs_proxy"):
        assert 0 <= lat[key]["within_10"] <= 1 and lat[key]["mape"] > 0 and -1 <= lat[key]["kendall_tau"] <= 1
    assert _finite(steps["2"]["supernet_subnet_ratio"]) and steps["2"]["supernet_subnet_ratio"] > 0
    assert _finite(steps["2"]["train"]["fp32"]["loss"])
    for size in ("s16", "s32"):
        assert all(_finite(steps["3"][size][k]["img_per_s"]) for k in ("supernet_sampled", "supernet_path", "subnet"))
    assert steps["3"]["all_ops_peak_mb"] is None  # n/a on the CPU
    assert steps["4"]["max_abs_diff"] <= 1e-5 and steps["4"]["sync_bn_loss"] is None
    assert steps["5"]["complete"] == 4 and steps["5"]["max_concurrent"] >= 2
    assert steps["6"]["complete"] >= 1 and steps["6"]["model_py"].startswith("Net: ")


def test_a_failing_step_is_reported_with_its_last_line_and_the_others_run(tmp_path, monkeypatch):
    gpu_check = _module()
    from gpu_check_steps import CheckFailed, Result

    def broken(plan):
        raise RuntimeError("while doing something\nthe last line of the error")

    def wrong(plan):
        raise CheckFailed("off by 1e-3")

    def fine(plan):
        assert plan.device == "cpu" and plan.quick
        return Result({"ratio": 1.5, "nan": float("nan"), "nested": [float("inf"), 2.0]}, "ratio 1.5 | x", "<= 1.05",
                      False)

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", ""))  # main() sets it
    monkeypatch.delenv("OUT", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # main() sets it for the CPU
    monkeypatch.setattr(gpu_check, "step_functions", lambda: {1: broken, 3: fine, 4: wrong})
    assert gpu_check.main(["--device", "cpu", "--steps", "4,1,3", "--out", str(tmp_path)]) == 1
    md = (tmp_path / "gpu_check.md").read_text()
    rows = [line for line in md.splitlines() if line[:4] in ("| 1 ", "| 3 ", "| 4 ")]
    assert [r.split(" | ")[2] for r in rows] == ["FAIL", "PASS", "FAIL"]
    assert "| RuntimeError: the last line of the error |" in rows[0]
    assert "| ratio 1.5 / x | <= 1.05 (not met) |" in rows[1]
    assert "| CheckFailed: off by 1e-3 |" in rows[2]
    report = json.loads((tmp_path / "gpu_check.json").read_text())  # strict JSON: NaN and inf are null
    assert report["steps"]["3"]["figures"] == {"ratio": 1.5, "nan": None, "nested": [None, 2.0]}
    assert report["steps"]["1"]["error"] == "RuntimeError: the last line of the error"


def test_trials_at_once_are_counted_from_overlapping_spans():
    _module()
    from gpu_check_runs import max_overlap

    assert max_overlap([]) == 0
    assert max_overlap([(0, 1, 1), (1, 2, 1), (2, 3, 1)]) == 1  # one ends as the next starts
    assert max_overlap([(0, 4, 1), (1, 2, 2), (1.5, 3, 3), (3.5, 5, 2)]) == 3
