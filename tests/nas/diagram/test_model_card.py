"""The model card (README.md of best/) from plain values and from a search's summary."""
from nas.export.card import model_card, summary_values

SUMMARY = {
    "front": [{"trial": 3, "arch": "a", "accuracy": 0.91, "latency_ms": 1.5},
              {"trial": 5, "arch": "b", "accuracy": 0.85, "latency_ms": 0.7}],
    "best": {"trial": 3, "arch": "a", "accuracy": 0.93, "latency_ms": 1.6, "test_quality": 0.93},
    "best_from": "retrained",
    "retrain": {"epochs": 4, "archs": [{"trial": 3, "test_accuracy": 0.93, "measured_latency_ms": 1.62,
                                        "predicted_latency_ms": 1.5}]},
}


def test_summary_values_of_a_retrained_trial():
    predicted, measured, quality = summary_values(SUMMARY, 3, ["accuracy"], "one_shot")
    assert (predicted, measured) == (1.5, 1.62)  # the search's prediction, not the retrained row's measurement
    assert quality == {"one-shot (supernet weights, val split)": {"accuracy": 0.91},
                       "retrained from scratch (4 epochs, test split)": {"accuracy": 0.93}}
    predicted, measured, quality = summary_values(SUMMARY, 5, ["accuracy"], "multi_trial")
    assert (predicted, measured) == (0.7, None)
    assert quality == {"multi-trial (trained briefly, val split)": {"accuracy": 0.85}}
    assert summary_values({}, 1, ["accuracy"]) == (None, None, {})


def test_card_lists_every_device_and_how_to_load():
    card = model_card(title="q: trial 3", task="classification", arch_string="in3x32;s:conv_c8", in_channels=3,
                      input_size=32, num_classes=10, params=1234567, macs=2_000_000,
                      latency={"cpu-t1-b1-float32": {"predicted_ms": 1.5, "measured_ms": 1.62},
                               "cuda-b8-float16": {"predicted_ms": 0.2}},
                      quality={"one-shot": {"accuracy": 0.91}, "retrained": {"accuracy": 0.93, "top5": 0.99}})
    lines = card.splitlines()
    assert lines[0] == "# q: trial 3" and "![architecture](arch.png)" in lines
    assert "| parameters | 1.23M (1,234,567) |" in lines and "| MACs | 2M at batch 1 |" in lines
    assert "| input | N x 3 x 32 x 32 (float32, NCHW) |" in lines and "| output | N x 10 logits |" in lines
    assert "| `cpu-t1-b1-float32` | 1.5 | 1.62 |" in lines and "| `cuda-b8-float16` | 0.2 | – |" in lines
    assert "| how measured | accuracy | top5 |" in lines
    assert "| one-shot | 0.91 | – |" in lines and "| retrained | 0.93 | 0.99 |" in lines
    assert "net = load_net()  # Net() with weights.pt loaded, in eval mode" in lines
    assert "y = net(torch.randn(1, 3, 32, 32))" in lines and "in3x32;s:conv_c8" in lines


def test_card_without_latency_quality_or_weights():
    card = model_card(title="t", task="segmentation", arch_string="x", in_channels=1, input_size=16, num_classes=3,
                      params=99, weights=None, picture=None)
    assert "No latency was predicted" in card and "No quality was measured." in card
    assert "random weights (no weights were exported)" in card and "![architecture]" not in card
    assert "| parameters | 99 |" in card and "N x 3 x H x W logits" in card
