"""The YAML spec of a search: sections as validated dataclasses, `load_spec()` with `--set` overrides."""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

import yaml

from nas.latency.profile import ProfileFields, check_profile
from nas.spec.imports import import_user_modules
from nas.spec.schema import SpecError, from_dict, to_dict
from nas.storage import FORMS as STORAGE_FORMS
from nas.storage import storage_problem
from search_spaces.loader import parse_yaml

COST_METRICS = ("latency_ms", "params", "macs", "peak_activation_mb")  # known before training; the rest is quality
NAME_MAX = 100  # a spec's name is the run folder's name (runs/NAME) and the study's: short enough for any filesystem


def check_range(obj, path: str, rules: dict[str, tuple[float | None, float | None, str]]) -> None:
    """Each field named in `rules` lies in its (low, high) range (None: unbounded; a None field is not checked);
    one `SpecError` naming the key path and the valid range otherwise."""
    prefix = f"{path}." if path else ""
    for key, (low, high, valid) in rules.items():
        check_value(getattr(obj, key), f"{prefix}{key}", low, high, valid)


def check_value(value, key_path: str, low: float | None, high: float | None, valid: str) -> None:
    """`value` (None: not checked) is a finite number in [low, high]; else a `SpecError` naming `key_path`."""
    if value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not (ok and (low is None or value >= low) and (high is None or value <= high)):
        raise SpecError(f"{key_path}: {value!r} is out of range; valid: {valid}")


def positive(key_valid: str) -> tuple[float, None, str]:
    """A rule for a number that must be > 0 (checked as >= the smallest positive float)."""
    return (math.ulp(0.0), None, key_valid)


@dataclass
class DataSection:
    """Which dataset, where it lives, and how it is batched."""

    name: str = "digits"
    root: Optional[str] = None
    input_size: Optional[int] = None
    download: bool = False
    batch_size: int = 64
    num_workers: int = 0

    def validate(self, path: str) -> None:
        check_range(self, path, {"batch_size": (1, None, "an integer >= 1 (the global batch)"),
                                 "num_workers": (0, None, "an integer >= 0 (0: load in the main process)"),
                                 "input_size": (1, None, "an integer >= 1 (pixels), or null for the dataset's")})


@dataclass
class SpaceSection:
    """A shipped space name or a YAML path, with overrides of its top-level keys."""

    name: str = "mobile"
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class SupernetSection:
    """How the weight-sharing supernet (or, in multi-trial mode, each candidate) is trained."""

    epochs: int = 10
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    warmup_epochs: int = 1
    label_smoothing: float = 0.1
    grad_clip: float = 5.0
    amp: Literal["none", "bf16", "fp16"] = "none"
    channels_last: bool = False
    sampler: Literal["uniform", "fair", "sandwich"] = "fair"
    sync_bn: bool = False

    def validate(self, path: str) -> None:
        check_range(self, path, {
            "epochs": (0, None, "an integer >= 0"), "lr": positive("a number > 0, e.g. 0.05"),
            "momentum": (0, 1, "a number in [0, 1]"), "weight_decay": (0, None, "a number >= 0"),
            "warmup_epochs": (0, None, "an integer >= 0"),
            "label_smoothing": (0, 0.999, "a number in [0, 1), e.g. 0.1"),
            "grad_clip": (0, None, "a number >= 0 (the max gradient norm; 0: off)")})


@dataclass
class DistributedSection:
    """Data-parallel supernet training: none, torch DDP on this machine, or Ray Train on a cluster."""

    backend: Literal["none", "ddp", "ray"] = "none"
    nproc: int = 1
    num_workers: int = 2
    use_gpu: bool = False

    def validate(self, path: str) -> None:
        check_range(self, path, {"nproc": (1, None, "an integer >= 1 (processes)"),
                                 "num_workers": (1, None, "an integer >= 1 (Ray Train workers)")})


@dataclass(frozen=True)
class HardwareSection(ProfileFields):
    """The device profile latency is measured on (its fields, checked when the latency stage builds the
    `DeviceProfile`: see nas.latency.profile), and the table and calibration that go with it."""

    calibration_archs: int = 16
    table: Optional[str] = None  # a prebuilt latency table JSON; default: built in the run folder
    allow_foreign: bool = False

    def validate(self, path: str) -> None:
        check_profile(self, path)
        check_range(self, path, {"calibration_archs": (1, None, "an integer >= 1 (whole networks measured to "
                                                                "calibrate the table; 12-24 is usual)")})


@dataclass(frozen=True)
class DeviceSection(HardwareSection):
    """One entry of a `hardware:` list: a device profile with a name (default: from the profile, e.g. cpu-1t)."""

    name: Optional[str] = None

    def validate(self, path: str) -> None:
        super().validate(path)
        if self.name is not None and not DEVICE_NAME.fullmatch(self.name):
            raise SpecError(f"{path}.name: {self.name!r} is not a device name; valid: letters, digits, '-' and '_', "
                            f"starting with a letter or digit, at most 40 characters, e.g. cpu-1t")


DEVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")


def default_device_name(hw: ProfileFields) -> str:
    """A device's name from its profile: cpu-1t / cpu-2t (kind and threads), onnxruntime-cpu, cuda."""
    if hw.kind == "cpu":
        return f"cpu-{hw.threads}t"
    return hw.kind if hw.threads == 1 or hw.kind == "cuda" else f"{hw.kind}-{hw.threads}t"


def devices(spec: "Spec") -> dict[str, DeviceSection] | None:
    """The spec's devices by name when `hardware:` is a list (several devices, one front each); None for the
    single `hardware:` mapping."""
    if not isinstance(spec.hardware, list):
        return None
    return {d.name or default_device_name(d): d for d in spec.hardware}


def split_metric(metric: str) -> tuple[str, str | None]:
    """`latency_ms@cpu-1t` -> ("latency_ms", "cpu-1t"); a metric without a device -> (metric, None)."""
    base, at, device = metric.partition("@")
    return base, (device if at else None)


@dataclass
class Objective:
    """One objective of the multi-objective search."""

    metric: str = "accuracy"
    direction: Literal["maximize", "minimize"] = "maximize"

    def validate(self, path: str) -> None:
        # quality metrics are the task's (known once the space is): the run checks them (SearchRun.check_objectives)
        if not self.metric.isidentifier():
            raise SpecError(f"{path}.metric: '{self.metric}' is not a metric name; valid: a task's quality metric "
                            f"(accuracy, miou, ...) or {', '.join(COST_METRICS)}")


@dataclass
class RaySection:
    """Where and how Ray Tune runs trials."""

    address: Optional[str] = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 1
    max_concurrent: int = 2

    def validate(self, path: str) -> None:
        check_range(self, path, {"cpus_per_trial": positive("a number > 0"), "gpus_per_trial": (0, None, "a number >= 0"),
                                 "max_failures": (0, None, "an integer >= 0"),
                                 "max_concurrent": (1, None, "an integer >= 1")})


@dataclass
class SearchSection:
    """The controller: mode, Optuna sampler, budget and executor."""

    mode: Literal["one_shot", "multi_trial"] = "one_shot"
    sampler: Literal["nsga2", "nsga3", "tpe", "gp", "random"] = "nsga2"
    trials: int = 100
    population: int = 20
    spread_trials: Optional[int] = None  # first trials spread over the latency range (default: population; 0: off)
    executor: Literal["optuna", "ray"] = "optuna"
    bn_batches: int = 4
    trial_epochs: int = 3  # multi-trial: the largest training budget of one candidate
    # multi-trial pruning at the rungs: pareto (MO-ASHA over all objectives), scalar (ASHA on the task's primary
    # metric) or none; default: pareto when the spec has more than one objective, else scalar (early_stopping())
    early_stopping: Optional[str] = None
    timeout_s: Optional[float] = None
    # where the Optuna study lives (nas.storage.FORMS): default SQLite RUN/study.db; `nas search --worker` processes
    # share it with the driver
    storage: Optional[str] = None
    ray: RaySection = field(default_factory=RaySection)

    def validate(self, path: str) -> None:
        for key, low in (("trials", 1), ("population", 2), ("spread_trials", 0)):
            value = getattr(self, key)
            if value is not None and value < low:
                raise SpecError(f"{path}.{key}: must be at least {low}, got {value}")
        check_range(self, path, {"bn_batches": (1, None, "an integer >= 1"),
                                 "trial_epochs": (1, None, "an integer >= 1"),
                                 "timeout_s": positive("a number of seconds > 0, or null for no limit")})
        if self.storage is not None and storage_problem(self.storage):
            raise SpecError(f"{path}.storage: {storage_problem(self.storage)}; valid: {STORAGE_FORMS}")
        if self.early_stopping is not None and self.early_stopping not in EARLY_STOPPING:
            raise SpecError(f"{path}.early_stopping: '{self.early_stopping}' is not a rule; valid: "
                            f"{', '.join(EARLY_STOPPING)}")


EARLY_STOPPING = ("pareto", "scalar", "none")


def early_stopping(spec: Spec) -> str:
    """The multi-trial pruning rule: search.early_stopping, else pareto with several objectives, scalar with one."""
    return spec.search.early_stopping or ("pareto" if len(spec.objectives) > 1 else "scalar")


@dataclass
class RetrainSection:
    """Retrain the chosen Pareto architectures from scratch and report test accuracy."""

    top_k: int = 0
    epochs: int = 20
    baseline: Optional[str] = None  # a preset (e.g. mobilenet_v2_digits) trained on the same budget to compare
    baseline_width: Optional[float] = None

    def validate(self, path: str) -> None:
        check_range(self, path, {"top_k": (0, None, "an integer >= 0 (0: no retraining)"),
                                 "epochs": (1, None, "an integer >= 1"),
                                 "baseline_width": positive("a width multiplier > 0, e.g. 1.0")})


@dataclass
class WandbSection:
    """Weights & Biases logging (offline unless mode or WANDB_MODE says online)."""

    enabled: bool = True
    mode: Literal["offline", "online", "disabled"] = "offline"
    project: str = "convnas"
    entity: Optional[str] = None


@dataclass
class TrackingSection:
    wandb: WandbSection = field(default_factory=WandbSection)


@dataclass
class ExportSection:
    """What `best/` holds: which point of the front, and whether ONNX is written too."""

    choose: Literal["knee", "accuracy", "latency"] = "knee"
    onnx: bool = False


@dataclass
class Spec:
    """A whole search: data, space, supernet training, hardware, objectives, constraints, search, outputs."""

    name: str = "search"
    seed: int = 0
    run_dir: Optional[str] = None  # default: runs/<name>
    imports: list[str] = field(default_factory=list)  # user modules (names or .py paths) imported first, everywhere
    task: Optional[str] = None  # default: the task of the space's architecture kind (classification, segmentation)
    data: DataSection = field(default_factory=DataSection)
    space: SpaceSection = field(default_factory=SpaceSection)
    supernet: SupernetSection = field(default_factory=SupernetSection)
    distributed: DistributedSection = field(default_factory=DistributedSection)
    # one device profile, or a list of them (each its own latency table, search and front over one supernet)
    hardware: Union[HardwareSection, list[DeviceSection]] = field(default_factory=HardwareSection)
    objectives: list[Objective] = field(default_factory=lambda: [Objective("accuracy", "maximize"),
                                                                 Objective("latency_ms", "minimize")])
    constraints: dict[str, float] = field(default_factory=dict)
    search: SearchSection = field(default_factory=SearchSection)
    retrain: RetrainSection = field(default_factory=RetrainSection)
    tracking: TrackingSection = field(default_factory=TrackingSection)
    export: ExportSection = field(default_factory=ExportSection)

    def validate(self, path: str) -> None:
        check_name(self.name)
        check_range(self, path, {"seed": (0, 2 ** 32 - 1, "an integer in [0, 2**32)")})
        if isinstance(self.hardware, list):
            self.hardware = named_devices(self.hardware)
        names = list(devices(self) or ())
        for key, limit in self.constraints.items():
            metric, device = split_metric(key)
            if metric not in COST_METRICS:
                raise SpecError(f"constraints.{key}: unknown constraint; valid: {', '.join(COST_METRICS)}"
                                + (", or latency_ms@DEVICE" if names else ""))
            if device is not None and (metric != "latency_ms" or device not in names):
                valid = (f"latency_ms@DEVICE with DEVICE one of {', '.join(names)}" if names else
                         "latency_ms (a device is named only when hardware: is a list of devices)")
                what = "only latency is measured per device" if metric != "latency_ms" else "unknown device"
                raise SpecError(f"constraints.{key}: {what}; valid: {valid}")
            check_value(limit, f"constraints.{key}", *positive(f"a positive limit ({metric} <= limit)"))
        if not self.objectives:
            raise SpecError("objectives: at least one objective is needed, e.g. [{metric: accuracy}]")

    @property
    def out_dir(self) -> str:
        return self.run_dir or os.path.join("runs", self.name)

    def to_yaml(self) -> str:
        return yaml.safe_dump(to_dict(self), sort_keys=False)


def named_devices(entries: list[DeviceSection]) -> list[DeviceSection]:
    """A `hardware:` list with every device named (default names filled in); names must be unique."""
    if not entries:
        raise SpecError("hardware: an empty list; give one device profile (a mapping) or a list of them, "
                        "e.g. [{kind: cpu, threads: 1}, {kind: onnxruntime-cpu}]")
    out, seen = [], {}
    for i, d in enumerate(entries):
        name = d.name or default_device_name(d)
        if name in seen:
            raise SpecError(f"hardware[{i}].name: '{name}' is already the name of hardware[{seen[name]}]; valid: a "
                            f"name of its own (set `name:` on one of them, e.g. {name}-b{d.batch})")
        seen[name] = i
        out.append(dataclasses.replace(d, name=name))
    return out


def check_name(name: str) -> None:
    """A spec's name is a folder name (runs/NAME): 1-NAME_MAX characters, no path separator, not '.' or '..'."""
    bad = ("is empty" if not name.strip() else f"is {len(name)} characters long" if len(name) > NAME_MAX else
           "holds a path separator or a NUL" if any(c in name for c in "/\\\0") else
           "is not a folder name" if name.strip() in (".", "..") else None)
    if bad:
        raise SpecError(f"name: {name[:40]!r}{'...' if len(name) > 40 else ''} {bad}; valid: a folder name of 1 to "
                        f"{NAME_MAX} characters without '/', e.g. quickstart")


def _normalise(raw: dict) -> dict:
    raw = dict(raw)
    if isinstance(raw.get("space"), str):  # `space: mobile` is short for `space: {name: mobile}`
        raw["space"] = {"name": raw["space"]}
    if isinstance(raw.get("data"), str):
        raw["data"] = {"name": raw["data"]}
    return raw


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one `key.path=value` (value parsed as YAML) to the raw spec mapping."""
    if "=" not in assignment:
        raise SpecError(f"--set {assignment}: expected KEY.PATH=VALUE, e.g. search.trials=50")
    key, value = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = raw
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise SpecError(f"--set {key}: '{p}' is not a section")

    node[parts[-1]] = parse_yaml(value, f"--set {key}", SpecError)


def load_spec(source: str | dict | None = None, overrides: list[str] = ()) -> Spec:
    """Read a spec from a YAML path (or mapping), apply `--set` overrides, validate, fill defaults."""
    if source is None:
        raw: dict = {}
    elif isinstance(source, dict):
        raw = copy.deepcopy(source)
    else:
        if not os.path.isfile(source):
            raise SpecError(f"spec file '{source}' does not exist; try experiments/quickstart.yaml")

        with open(source) as f:
            raw = parse_yaml(f, source, SpecError)
        if raw is None:
            raise SpecError(f"spec file '{source}' is empty (or only comments); write at least `name:` and `space:`, "
                            f"e.g. copy experiments/quickstart.yaml (`nas search --print-spec` shows every key)")
        if not isinstance(raw, dict):
            raise SpecError(f"{source}: a spec is a mapping of sections (name, data, space, search, ...)")
    raw = _normalise(raw)
    for assignment in overrides:
        apply_override(raw, assignment)
    if raw.get("imports"):  # before validation: a user's task, op or dataset may be what the spec names
        base = os.path.dirname(os.path.abspath(source)) if isinstance(source, str) else os.getcwd()
        raw["imports"] = import_user_modules(raw["imports"], base)
    return from_dict(Spec, _normalise(raw))
