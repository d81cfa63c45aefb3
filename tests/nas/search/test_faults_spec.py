"""Malformed specs, each through `nas search` in-process: exit 2, one line naming the key path, no traceback, no
run folder written (check, then write); the corrected spec then passes every check (SearchRun constructs)."""
import copy
import os

import pytest
import torch

from nas.cli import main
from nas.search.runner import SearchRun
from nas.spec.sections import load_spec

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine can run it")
DELETE = object()

# (id, {dotted key: bad value}, what the one-line error must contain, {dotted key: a valid value})
CASES = [
    ("epochs_negative", {"supernet.epochs": -1}, "supernet.epochs: -1 is out of range; valid: an integer >= 0",
     {"supernet.epochs": 0}),
    ("batch_negative", {"data.batch_size": -8}, "data.batch_size: -8 is out of range", {"data.batch_size": 8}),
    ("lr_negative", {"supernet.lr": -0.1}, "supernet.lr: -0.1 is out of range; valid: a number > 0",
     {"supernet.lr": 0.1}),
    ("lr_zero", {"supernet.lr": 0}, "supernet.lr: 0.0 is out of range", {"supernet.lr": 1e-4}),
    ("label_smoothing_2", {"supernet.label_smoothing": 2.0}, "supernet.label_smoothing: 2.0 is out of range; valid: "
     "a number in [0, 1)", {"supernet.label_smoothing": 0.0}),
    ("momentum_1_5", {"supernet.momentum": 1.5}, "supernet.momentum", {"supernet.momentum": 0.0}),
    ("weight_decay_negative", {"supernet.weight_decay": -1e-4}, "supernet.weight_decay", {"supernet.weight_decay": 0}),
    ("warmup_negative", {"supernet.warmup_epochs": -1}, "supernet.warmup_epochs", {"supernet.warmup_epochs": 0}),
    ("grad_clip_negative", {"supernet.grad_clip": -1}, "supernet.grad_clip", {"supernet.grad_clip": 0}),
    ("optimizer_unknown", {"supernet.optimizer": "adam"}, "supernet.optimizer: 'adam' is not allowed",
     {"supernet.optimizer": "adamw"}),
    ("amp_unknown", {"supernet.amp": "fp8"}, "supernet.amp: 'fp8' is not allowed", {"supernet.amp": "bf16"}),
    ("path_sampler_unknown", {"supernet.sampler": "greedy"}, "supernet.sampler", {"supernet.sampler": "sandwich"}),
    ("epochs_text", {"supernet.epochs": "ten"}, "supernet.epochs: expected an integer, got 'ten'",
     {"supernet.epochs": 1}),
    ("timeout_negative", {"search.timeout_s": -5}, "search.timeout_s: -5.0 is out of range; valid: a number of "
     "seconds > 0", {"search.timeout_s": 60}),
    ("timeout_zero", {"search.timeout_s": 0}, "search.timeout_s", {"search.timeout_s": None}),
    ("trials_zero", {"search.trials": 0}, "search.trials: must be at least 1", {"search.trials": 1}),
    ("population_one", {"search.population": 1}, "search.population", {"search.population": 2}),
    ("spread_negative", {"search.spread_trials": -1}, "search.spread_trials", {"search.spread_trials": 0}),
    ("sampler_unknown", {"search.sampler": "nsga4"}, "search.sampler: 'nsga4' is not allowed",
     {"search.sampler": "nsga3"}),
    ("mode_unknown", {"search.mode": "oneshot"}, "search.mode: 'oneshot' is not allowed (did you mean 'one_shot'?)",
     {"search.mode": "one_shot"}),
    ("executor_unknown", {"search.executor": "dask"}, "search.executor", {"search.executor": "optuna"}),
    ("bn_batches_zero", {"search.bn_batches": 0}, "search.bn_batches", {"search.bn_batches": 2}),
    ("trial_epochs_zero", {"search.trial_epochs": 0}, "search.trial_epochs", {"search.trial_epochs": 1}),
    ("ray_concurrency_zero", {"search.ray.max_concurrent": 0}, "search.ray.max_concurrent",
     {"search.ray.max_concurrent": 1}),
    ("ray_cpus_zero", {"search.ray.cpus_per_trial": 0}, "search.ray.cpus_per_trial", {"search.ray.cpus_per_trial": 0.5}),
    ("ray_gpus_negative", {"search.ray.gpus_per_trial": -1}, "search.ray.gpus_per_trial",
     {"search.ray.gpus_per_trial": 0}),
    ("search_key_typo", {"search.trails": 5}, "search.trails: unknown key; did you mean 'trials'?",
     {"search.trails": DELETE, "search.trials": 5}),
    ("section_typo", {"serach": {"trials": 5}}, "serach: unknown key; did you mean 'search'?", {"serach": DELETE}),
    ("name_300_chars", {"name": "n" * 300}, "name: 'nnnn", {"name": "n" * 100}),
    ("name_with_slash", {"name": "a/b"}, "name: 'a/b' holds a path separator", {"name": "a_b"}),
    ("name_empty", {"name": ""}, "name: '' is empty", {"name": "tiny"}),
    ("name_dotdot", {"name": ".."}, "name: '..' is not a folder name", {"name": "up"}),
    ("seed_negative", {"seed": -1}, "seed: -1 is out of range", {"seed": 1}),
    ("threads_zero", {"hardware.threads": 0}, "hardware.threads: must be >= 1, got 0", {"hardware.threads": 2}),
    ("calibration_zero", {"hardware.calibration_archs": 0}, "hardware.calibration_archs: 0 is out of range; valid: "
     "an integer >= 1", {"hardware.calibration_archs": 1}),
    ("hardware_kind_gpu", {"hardware.kind": "gpu"}, "hardware.kind: 'gpu' is not allowed", {"hardware.kind": "cpu"}),
    ("hardware_dtype", {"hardware.dtype": "float64"}, "hardware.dtype: 'float64' is not allowed",
     {"hardware.dtype": "float32"}),
    ("hardware_repeats_zero", {"hardware.repeats": 0}, "hardware.repeats", {"hardware.repeats": 1}),
    ("hardware_batch_zero", {"hardware.batch": 0}, "hardware.batch", {"hardware.batch": 1}),
    pytest.param("hardware_cuda_without_gpu", {"hardware.kind": "cuda"}, "hardware.kind: 'cuda' but this machine has "
                 "no CUDA GPU", {"hardware.kind": "cpu"}, marks=NO_CUDA),
    pytest.param("sync_bn_without_gpu", {"supernet.sync_bn": True}, "supernet.sync_bn: SyncBatchNorm runs on CUDA "
                 "only", {"supernet.sync_bn": False}, marks=NO_CUDA),
    ("hardware_table_missing", {"hardware.table": "no/such/table.json"}, "hardware.table: 'no/such/table.json' does "
     "not exist", {"hardware.table": None}),
    ("constraint_unknown", {"constraints": {"latency": 5}}, "constraints.latency: unknown constraint; valid: "
     "latency_ms", {"constraints": {"latency_ms": 5}}),
    ("constraint_negative", {"constraints": {"params": -1}}, "constraints.params: -1.0 is out of range; valid: a "
     "positive limit", {"constraints": {"params": 1e6}}),
    ("constraint_nan", {"constraints": {"latency_ms": float("nan")}}, "constraints.latency_ms", {"constraints": {}}),
    ("constraint_unreachable", {"constraints": {"params": 10}}, "constraints.params: 10 cannot be met by any "
     "architecture of space 'tiny' (minimum", {"constraints": {"params": 1e5}}),
    ("data_unknown", {"data.name": "mnistt"}, "data.name: unknown dataset 'mnistt'", {"data.name": "digits"}),
    ("data_workers_negative", {"data.num_workers": -1}, "data.num_workers", {"data.num_workers": 0}),
    ("data_input_size_zero", {"data.input_size": 0}, "data.input_size", {"data.input_size": 8}),
    ("data_wrong_task", {"data.name": "synthetic_segmentation"}, "data.name: dataset 'synthetic_segmentation' holds "
     "segmentation data", {"data.name": "digits"}),
    ("batch_uneven_over_ddp", {"distributed": {"backend": "ddp", "nproc": 2}, "data.batch_size": 127},
     "data.batch_size: 127 does not split evenly over distributed.nproc=2", {"data.batch_size": 128}),
    ("nproc_zero", {"distributed.nproc": 0}, "distributed.nproc: 0 is out of range", {"distributed.nproc": 1}),
    ("backend_unknown", {"distributed.backend": "mpi"}, "distributed.backend", {"distributed.backend": "none"}),
    ("objectives_empty", {"objectives": []}, "objectives: at least one objective is needed", {"objectives": DELETE}),
    ("objective_not_measured", {"objectives": [{"metric": "miou"}]}, "objectives[0].metric: 'miou' is not measured "
     "by task 'classification'", {"objectives": [{"metric": "accuracy"}]}),
    ("objectives_costs_only", {"objectives": [{"metric": "latency_ms", "direction": "minimize"}]},
     "objectives: at least one quality metric is needed", {"objectives": [{"metric": "accuracy"}]}),
    ("objective_direction", {"objectives": [{"metric": "accuracy", "direction": "up"}]},
     "objectives[0].direction: 'up' is not allowed", {"objectives": [{"metric": "accuracy", "direction": "maximize"}]}),
    ("retrain_top_k_negative", {"retrain.top_k": -1}, "retrain.top_k", {"retrain.top_k": 0}),
    ("retrain_epochs_zero", {"retrain.epochs": 0}, "retrain.epochs", {"retrain.epochs": 1}),
    ("task_unknown", {"task": "detection"}, "task", {"task": "classification"}),
    ("space_binary", {"space.name": "SPACE_DIR/binary.yaml"}, "binary.yaml: not UTF-8 text", {"space.name": DELETE}),
    ("space_not_a_mapping", {"space.name": "SPACE_DIR/list.yaml"}, "list.yaml: a space file is a mapping",
     {"space.name": DELETE}),
    ("space_missing", {"space.name": "no_such_space"}, "no_such_space", {"space.name": DELETE}),
    ("storage_unknown", {"search.storage": "redis://localhost/0"}, "search.storage: 'redis://localhost/0' is not a "
     "storage URL; valid: sqlite:///PATH, postgresql://", {"search.storage": "journal:study.log"}),
    ("storage_unreachable", {"search.storage": "postgresql://nas:pw@127.0.0.1:9/nas"}, "search.storage: cannot use "
     "postgresql://nas:***@127.0.0.1:9/nas (", {"search.storage": "sqlite:///other.db"}),
]


def _apply(spec: dict, changes: dict) -> dict:
    out = copy.deepcopy(spec)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return out


def _write(path, spec: dict) -> str:
    import yaml

    path.write_text(yaml.safe_dump(spec))
    return str(path)


@pytest.mark.parametrize("case, bad, message, fix", CASES, ids=[getattr(c, "values", c)[0] for c in CASES])
def test_malformed_spec_is_one_line_before_any_write(case, bad, message, fix, tiny_spec, tmp_path, capsys):
    space_file = tiny_spec["space"]["name"]
    if "space.name" in fix:  # the corrected spec names the tiny space again
        fix = {**fix, "space.name": space_file}
    (tmp_path / "binary.yaml").write_bytes(bytes(range(256)))
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    bad = {k: v.replace("SPACE_DIR", str(tmp_path)) if isinstance(v, str) else v for k, v in bad.items()}
    broken = _apply(tiny_spec, bad)
    rc = main(["search", _write(tmp_path / "bad.yaml", broken), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("nas search: error: ") and message in err, err
    assert not os.path.exists(tiny_spec["run_dir"]), "a refused spec wrote the run folder"

    corrected = load_spec(_apply(broken, fix))
    assert SearchRun(corrected).spec == corrected  # every check before the first stage passes
    assert os.path.isfile(os.path.join(corrected.out_dir, "spec.yaml"))
