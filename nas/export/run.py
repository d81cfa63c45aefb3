"""One trial of a finished search run as standalone files: `nas export RUN_DIR [--trial N]`."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import optuna
import sqlalchemy.exc

from nas.data import make_loaders
from nas.errors import MissingFile, UserError
from nas.evaluation.classification import recalibrate_bn
from nas.export.card import write_card
from nas.export.code import save_weights, write_code, write_onnx
from nas.io import atomic_write_text
from nas.latency.stage import profile_of, saved_model
from nas.spec.resolve import load_space, load_splits
from nas.spec.sections import devices, load_spec
from nas.storage import local_file, masked, open_storage, resolve
from nas.tasks import task_for
from nas.training.checkpoint import CHECKPOINT, load_trained
from search_spaces import Arch, build_model

RUN_FILES = ("spec.yaml", "study.db")


def run_spec(run_dir: str | os.PathLike):
    """The spec of the search run in `run_dir`; a folder that is not one is one line naming what is expected."""
    spec_file = Path(run_dir) / "spec.yaml"
    spec = load_spec(str(spec_file)) if spec_file.is_file() else None
    study = [] if spec is not None and spec.search.storage else ["study.db"]  # else the study lies elsewhere
    missing = [f for f in ("spec.yaml", *study) if not (Path(run_dir) / f).is_file()]
    if missing:
        raise MissingFile(f"{run_dir}: not a search run folder (no {', '.join(missing)}; a run written by "
                                f"`nas search` holds {', '.join(RUN_FILES)}, supernet/, summary.json)")
    return spec


def trial_arch(run_dir: str | os.PathLike, name: str, trial: int, storage: str | None = None) -> tuple[Arch, dict]:
    """The Arch of trial `trial` of the run's study (user attr "arch", the study at `search.storage`, by default
    RUN/study.db) and its recorded metrics."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = resolve(storage, str(run_dir))
    path = local_file(url) or masked(url)
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(url))
        trials = {t.number: t for t in study.get_trials(deepcopy=False) if "arch" in t.user_attrs}
    except KeyError:
        raise UserError(f"{path} holds no study named '{name}' (the spec's name)") from None
    except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
        why = (str(getattr(e, "orig", None) or e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"{path}: not a readable Optuna study ({why}); restore it from a copy, or re-run the "
                        f"search (`nas search {run_dir} --resume` after moving it away)") from None
    if trial not in trials:
        numbers = sorted(trials)
        valid = f"{numbers[0]}..{numbers[-1]}" if numbers else "none: the study has no trials yet"
        if numbers and len(numbers) != numbers[-1] - numbers[0] + 1:
            valid += f" (all but {', '.join(map(str, sorted(set(range(numbers[0], numbers[-1])) - set(numbers))))})"
        raise UserError(f"--trial {trial}: no such trial in {run_dir}; valid: {valid}")
    t = trials[trial]
    return Arch.from_string(t.user_attrs["arch"]), dict(t.user_attrs.get("metrics", {}))


def chosen_trial(run_dir: str | os.PathLike, device: str | None = None) -> int:
    """The trial number of the run's exported point (summary.json "best", or a device's of several)."""
    return chosen_point(run_dir, device)[0]


def chosen_point(run_dir: str | os.PathLike, device: str | None = None) -> tuple[int, str | None]:
    """The run's exported point: its trial number and, for a device of several, the device whose search ran it
    (a device's front is drawn from every device's trials)."""
    path = Path(run_dir, "summary.json")
    if not path.is_file():
        raise MissingFile(f"{path} does not exist (the search has not finished); pass --trial N")
    summary = json.loads(path.read_text())
    best = summary.get("devices", {}).get(device, {}).get("best") if device else summary.get("best")
    if not best:
        raise UserError(f"{path}: the run chose no point{' for ' + device if device else ''} (no feasible trial on "
                        f"the front); pass --trial N")
    return int(best["trial"]), best.get("device")


def run_device(spec, device: str | None) -> str | None:
    """The device a run folder's export is for: None for a run of one `hardware:`, else `device` (default: the
    first of the run's list), checked."""
    named = devices(spec)
    if named is None:
        if device:
            raise UserError(f"--device {device}: the run searched one device (its hardware: is not a list); "
                            f"drop --device")
        return None
    device = device or next(iter(named))
    if device not in named:
        raise UserError(f"--device {device}: not a device of the run; valid: {', '.join(named)}")
    return device


def run_supernet(run_dir: str | os.PathLike, spec, space):
    """The trained supernet of a search run (its last checkpoint's weights), in eval mode."""
    return load_trained(task_for(spec.task, space).build_supernet(space), os.path.join(run_dir, "supernet"))


def recalibrated_path(spec, supernet, arch):
    """`supernet.extract(arch)` with BN statistics re-estimated as the search scored it (same batches)."""
    train = make_loaders(load_splits(spec, download=False), spec.data.batch_size, seed=spec.seed)[0]
    return recalibrate_bn(supernet, train, spec.search.bn_batches, arch=arch)


def export_run(run_dir: str | os.PathLike, trial: int | None = None, out: str | os.PathLike | None = None,
               onnx: bool = False, device: str | None = None) -> tuple[int, dict, list[Path]]:
    """Write trial `trial` of a search run (default: the chosen point, with its picture and README.md model card) as
    model.py, weights.pt, arch.yaml (+ .onnx) in `out` (default RUN/trials/<N>/, or RUN/best/ for the chosen
    point); the weights are the trial's retrained ones when the retrain stage trained it, else extracted from the
    run's supernet (BN recalibrated). A run of several devices: `device`'s search and chosen point
    (RUN/trials/<device>/<N>/, RUN/best/<device>/)."""
    spec = run_spec(run_dir)
    device = run_device(spec, device)
    sub = (device,) if device else ()
    default_out = Path(run_dir, "best", *sub) if trial is None else None
    chosen, searched = trial is None, device
    if trial is None:
        trial, searched = chosen_point(run_dir, device)
    study_name = f"{spec.name}@{searched or device}" if device else spec.name
    arch, metrics = trial_arch(run_dir, study_name, int(trial), spec.search.storage)
    out = Path(out) if out is not None else default_out or Path(run_dir, "trials", *sub, str(trial))
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "arch.yaml"]
    atomic_write_text(str(written[0]), arch.to_yaml())
    model, weights = None, None
    checkpoint = Path(run_dir, "supernet", CHECKPOINT)
    retrained = Path(run_dir, "retrain", f"trial{trial}")
    if (retrained / CHECKPOINT).is_file():  # retrained from scratch: those weights
        space = load_space(spec, arch)
        model = load_trained(task_for(spec.task, space).build_model(arch), str(retrained))
        weights = save_weights(model, out / "weights.pt")
        written.append(weights)
    elif checkpoint.is_file():
        space = load_space(spec, arch)
        try:
            model = recalibrated_path(spec, run_supernet(run_dir, spec, space), arch)
        except RuntimeError as e:  # load_state_dict: the supernet's layout changed since the run trained it
            if "state_dict" not in str(e):
                raise
            raise UserError(f"{checkpoint} does not fit the supernet of space '{space.name}' as the code builds "
                             f"it now (the code changed since the run); export the arch without weights: "
                             f"nas export {out / 'arch.yaml'} --out model.py") from None
        weights = save_weights(model, out / "weights.pt")
        written.append(weights)
    elif spec.search.mode == "one_shot":
        raise MissingFile(f"{checkpoint} does not exist: the run's supernet was not trained (or was removed)")
    written.insert(0, write_code(arch, out / "model.py", weights=weights))
    if onnx:
        model = model if model is not None else build_model(arch).eval()
        print("exporting ONNX (torch.export + onnxscript)...", file=sys.stderr, flush=True)
        written.append(write_onnx(model, arch, out / "model.onnx"))
    if chosen:
        written += chosen_card(run_dir, spec, arch, trial, out, weights, device)
    return trial, metrics, written


def chosen_card(run_dir, spec, arch: Arch, trial: int, out: Path, weights: Path | None,
                device: str | None = None) -> list[Path]:
    """The picture (arch.svg, arch.png) and README.md model card of the run's chosen point (of `device`'s front
    in a run of several devices), as the search wrote them into best/: quality and latency from summary.json,
    latency shares from the run's table."""
    space = load_space(spec, arch)
    summary = json.loads(Path(run_dir, "summary.json").read_text())
    hardware, latency_dir, others = spec.hardware, os.path.join(run_dir, "latency"), None
    name = profile_of(spec.hardware).key() if device is None else device
    if device is not None:
        best = summary["devices"][device]["best"]
        hardware, latency_dir = devices(spec)[device], os.path.join(latency_dir, device)
        summary = {"front": [best]}
        others = {d: best[f"latency_ms@{d}"] for d in devices(spec) if f"latency_ms@{d}" in best}
    return write_card(out, arch, title=f"{spec.name}: trial {trial} ({space.name})", summary=summary, trial=trial,
                      quality=task_for(spec.task, space).quality, search_mode=spec.search.mode, device=name,
                      latency_model=saved_model(space, hardware, latency_dir),
                      weights=weights.name if weights is not None else None, other_devices=others)
