import json
import os

import torch

from nas.commands.search import format_summary
from nas.export.run import export_run
from nas.spec.sections import load_spec
from nas.search.retrain import beats, spread
from nas.search.runner import SearchRun


def test_spread_keeps_both_ends_of_the_front():
    front = [{"latency_ms": v} for v in (5.0, 1.0, 3.0, 2.0, 4.0)]
    assert [r["latency_ms"] for r in spread(front, 2, "latency_ms")] == [1.0, 5.0]
    assert [r["latency_ms"] for r in spread(front, 3, "latency_ms")] == [1.0, 3.0, 5.0]
    assert [r["latency_ms"] for r in spread(front, 1, "latency_ms")] == [3.0]
    assert len(spread(front, 9, "latency_ms")) == 5


def test_beats_needs_both_axes_and_strictly_one():
    base = {"test_accuracy": 0.9, "measured_latency_ms": 2.0}
    assert beats({"test_accuracy": 0.9, "measured_latency_ms": 1.5}, base, "accuracy")
    assert beats({"test_accuracy": 0.95, "measured_latency_ms": 2.0}, base, "accuracy")
    assert not beats({"test_accuracy": 0.9, "measured_latency_ms": 2.0}, base, "accuracy")
    assert not beats({"test_accuracy": 0.99, "measured_latency_ms": 2.1}, base, "accuracy")


def test_front_and_baseline_are_retrained_then_measured_side_by_side(tiny_spec):
    tiny_spec["retrain"] = {"top_k": 2, "epochs": 1, "baseline": "mobilenet_v2_digits"}
    tiny_spec["tracking"]["wandb"]["enabled"] = False
    run_dir = tiny_spec["run_dir"]
    summary = SearchRun(load_spec(tiny_spec)).run()

    out = summary["retrain"]
    front = {r["trial"]: r for r in summary["front"]}
    assert len(out["archs"]) == min(2, len(front)) and out["baseline"]["name"] == "mobilenet_v2_digits"
    for r in [*out["archs"], out["baseline"]]:
        assert 0 <= r["test_accuracy"] <= 1 and r["measured_latency_ms"] > 0
        with open(os.path.join(run_dir, "retrain", r["tag"], "result.json")) as f:
            assert json.load(f)["measured_latency_ms"] == r["measured_latency_ms"]
    for r in out["archs"]:  # measured at the table's machine speed: on the predictions' scale
        assert r["arch"] == front[r["trial"]]["arch"]
        assert 1 / 3 < r["measured_latency_ms"] / r["predicted_latency_ms"] < 3
    assert out["beats_baseline"] == [r["trial"] for r in out["archs"] if beats(r, out["baseline"], "accuracy")]
    with open(os.path.join(run_dir, "search.log")) as f:
        log = f.read()
    assert log.count(f"retrain: measuring {len(out['archs']) + 1} networks side by side") == 1

    # best/ is chosen from the retrained front (test accuracy vs measured latency), with its retrained weights
    assert summary["best_from"] == "retrained"
    best = summary["best"]
    retrained = {r["trial"]: r for r in out["archs"]}
    assert best["trial"] in retrained and best["accuracy"] == retrained[best["trial"]]["test_accuracy"]
    assert best["latency_ms"] == retrained[best["trial"]]["measured_latency_ms"]
    assert not any(beats(r, {**retrained[best["trial"]]}, "accuracy") for r in out["archs"])  # on that front
    weights = torch.load(os.path.join(run_dir, "best", "weights.pt"), weights_only=True)
    trained = torch.load(os.path.join(run_dir, "retrain", f"trial{best['trial']}", "checkpoint.pt"),
                         weights_only=True)["model"]
    assert weights.keys() == trained.keys() and all(torch.equal(weights[k], trained[k]) for k in weights)
    # its model card: predicted and measured latency, one-shot and retrained (test) quality
    card = open(os.path.join(run_dir, "best", "README.md")).read()
    mine = retrained[best["trial"]]
    assert (f"| `cpu-t1-b1-float32` | {front[best['trial']]['latency_ms']:.4g} | "
            f"{mine['measured_latency_ms']:.4g} |") in card
    assert f"| one-shot (supernet weights, val split) | {front[best['trial']]['accuracy']:.4g} |" in card
    assert f"| retrained from scratch (1 epoch, test split) | {mine['test_accuracy']:.4g} |" in card
    _, _, written = export_run(run_dir, best["trial"], tmp_out := os.path.join(run_dir, "exported"))
    again = torch.load(os.path.join(tmp_out, "weights.pt"), weights_only=True)  # `nas export RUN --trial N` agrees
    assert all(torch.equal(again[k], trained[k]) for k in trained)

    # the command's summary lists them, the baseline last, then the verdict
    text = format_summary(summary, run_dir).splitlines()
    at = text.index("retrained from scratch (1 epoch; latency measured side by side):")
    listed = text[at + 1:at + 2 + len(out["archs"])]
    assert [line.split()[0] for line in listed] == [f"#{r['trial']}" for r in out["archs"]] + ["mobilenet_v2_digits"]
    assert f"{out['baseline']['measured_latency_ms']:7.3f} ms" in listed[-1] and "predicted" not in listed[-1]
    assert text[at + 2 + len(out["archs"])] == out["verdict"]

    # resumed: nothing is trained or measured again, the figures are the same
    again = SearchRun(load_spec(tiny_spec), resume=True).run()["retrain"]
    assert again["archs"] == out["archs"] and again["baseline"] == out["baseline"]
    with open(os.path.join(run_dir, "search.log")) as f:
        log = f.read()
    assert log.count("side by side") == 1 and log.count("from scratch") == len(out["archs"]) + 1
