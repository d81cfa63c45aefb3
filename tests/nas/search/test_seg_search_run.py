"""A whole segmentation search on a tiny dense-prediction space: mIoU and pixel accuracy against tabulated
latency, the Pareto front, the wandb offline run, and an exported model that computes the supernet path."""
import csv
import importlib.util
import json
import os
import sys

import torch

from nas.spec.sections import load_spec
from nas.spec.resolve import load_space
from nas.export.run import recalibrated_path, run_supernet
from nas.latency.table import LatencyTable
from nas.search.runner import SearchRun
from nas.tracking import find_offline_runs, read_offline_run
from search_spaces.arch import Arch


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_segmentation_search_end_to_end(tiny_seg_spec, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    run_dir = tiny_seg_spec["run_dir"]
    summary = SearchRun(load_spec(tiny_seg_spec), progress=False).run()

    rows = _csv(os.path.join(run_dir, "trials.csv"))
    assert len(rows) == 6 and summary["complete"] == 6
    for r in rows:
        assert 0 <= float(r["miou"]) <= 1 and 0 < float(r["pixel_accuracy"]) <= 1 and float(r["latency_ms"]) > 0
    assert len({r["miou"] for r in rows}) > 1  # the paths are scored, not a constant
    front = [r for r in rows if r["on_front"] == "True"]
    assert front and summary["hypervolume"] > 0
    for f in front:  # non-dominated among the complete trials
        miou, lat = float(f["miou"]), float(f["latency_ms"])
        assert not any(float(r["miou"]) >= miou and float(r["latency_ms"]) <= lat and
                       (float(r["miou"]) > miou or float(r["latency_ms"]) < lat) for r in rows)
    assert sorted(r["trial"] for r in _csv(os.path.join(run_dir, "pareto.csv"))) == sorted(f["trial"] for f in front)

    # latency came from the table: decoder units tabulated, a calibration fitted for the space
    table = LatencyTable.load(os.path.join(run_dir, "latency", "cpu-t1-b1-float32.json"))
    ops = {e["unit"]["op"] for e in table.entries.values()}
    assert {"seg_fuse", "seg_classifier", "stn", "aspp", "rfb", "transposed", "bilinear_conv", "pixel_shuffle"} <= ops
    assert list(table.calibrations) == ["tiny_seg@3x16"]

    # the wandb offline run reads back with the trials table (mIoU column) and the front chart
    run = read_offline_run(find_offline_runs(run_dir)[0])
    trials = run["tables"]["trials"]
    assert len(trials["data"]) == 6 and "miou" in trials["columns"]
    assert "_wandb.visualize.pareto_front" in run["config"]

    # best/ holds the chosen arch and a model that computes what the supernet path computes
    best = json.load(open(os.path.join(run_dir, "summary.json")))["best"]
    arch = Arch.from_yaml(open(os.path.join(run_dir, "best", "arch.yaml")).read())
    assert arch.to_string() == best["arch"] and arch.decoder is not None
    # its picture draws the decoder, its model card says what the network outputs and scored
    svg = open(os.path.join(run_dir, "best", "arch.svg")).read()
    assert f">{arch.decoder.upsample}<" in svg and ">lateral<" in svg and "predicted latency share" in svg
    card = open(os.path.join(run_dir, "best", "README.md")).read()
    assert "| output | N x 3 x H x W logits (per-pixel classes) |" in card and f"| {best['miou']:.4g} |" in card
    spec = load_spec(os.path.join(run_dir, "spec.yaml"))
    reference = recalibrated_path(spec, run_supernet(run_dir, spec, load_space(spec, arch)), arch)
    module_spec = importlib.util.spec_from_file_location("seg_best", os.path.join(run_dir, "best", "model.py"))
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["seg_best"] = module  # the copied ops include dataclasses, which look their module up
    module_spec.loader.exec_module(module)
    net = module.load_net()
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = reference(x), net(x)
    assert got.shape == (4, 3, 16, 16)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0), (got - expected).abs().max()
