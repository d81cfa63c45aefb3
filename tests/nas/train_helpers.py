"""A small space and spec for the supernet training tests (digits at 8x8: steps take milliseconds)."""

SPACE = """
name: train_tiny
input: {channels: 1, size: 8}
num_classes: 10
stem:
  - {op: conv, c_out: [8, 12], kernel: 3}
stages:
  - {depth: [1, 2], width: [8, 16], stride: 1, ops: {mbconv: {kernel: [3, 5], expand: [1, 3]}, conv: {kernel: [1, 3]}},
     plugins: [none, se]}
  - {depth: [1, 2], width: [16, 24], stride: 2, downsample: [stride, blurpool],
     ops: {mbconv: {kernel: [3, 5], expand: [3]}, dw_separable: {kernel: [3]}}}
classifier: {}
"""


def space_file(folder):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "train_tiny.yaml"
    path.write_text(SPACE)
    return str(path)


def spec_dict(folder, distributed=None, **supernet) -> dict:
    """A spec training the tiny space's supernet on digits (8x8) into `folder/run`."""
    return {"distributed": distributed or {}, "name": "train_tiny", "seed": 0, "run_dir": str(folder / "run"),
            "data": {"name": "digits", "input_size": 8, "batch_size": 64},
            "space": {"name": space_file(folder)},
            "supernet": {"epochs": 1, "lr": 0.1, "warmup_epochs": 0, "sampler": "uniform", **supernet}}
