"""Train once, a front for every device: the search of a spec whose `hardware:` is a list of devices.

One supernet is trained (or, in multi-trial mode, each candidate once) and every device gets:
its latency table in RUN/latency/<device>/; its own Optuna study `<name>@<device>` in study.db, searched
one device after another, where `latency_ms` (objective and constraint) is that device's latency and
`latency_ms@<device>` a named device's; and its front, drawn from every architecture the run scored
(quality is shared and every device's latency is predicted for every architecture, so another device's
trial can sit on this device's front). Quality is scored once per architecture for the whole run
(nas.search.quality, RUN/quality.jsonl), so the second device's search costs no training and little
scoring, and a device added on `--resume` is measured and searched without training the supernet again.

Outputs: trials.csv (every device's trials, a `device` column naming the search that ran it, one
`latency_ms@<device>`, `feasible@<device>` and `on_front@<device>` column per device), pareto@<device>.csv/
.html/.png, best/<device>/, summary.json `devices: {name: {front, hypervolume, best, ...}}`, and in wandb
per-device charts (`pareto_front@<device>`, `trials_scatter@<device>`, `front_history@<device>`).
"""
from __future__ import annotations

import math
import os
import shutil
import time
from typing import Any

import optuna

from nas.errors import SearchFailed, UserError
from nas.evaluation.classification import recalibrate_bn
from nas.export.card import write_card
from nas.io import atomic_write_json
from nas.latency import stage as latency_stage
from nas.search.constraints import Constraint, check_achievable
from nas.search.context import RunContext
from nas.search.executors.local import run_local
from nas.search.front import axes, choose, finite, front_hypervolume, mark_front, reference_point, trial_rows
from nas.search.multi_trial import MultiTrialScorer
from nas.search.objectives import ArchEvaluator
from nas.search.quality import QualityCache
from nas.search.spread import enqueue_first_trials
from nas.search.stages import (
    export_best,
    no_result_message,
    one_shot_scorer,
    running_front,
    start_tracker,
    trained_supernet,
)
from nas.search.study import completed_cache, finished_count, make_sampler, open_study
from nas.spec.sections import devices, split_metric
from nas.storage import resolve
from nas.tracking import TRIAL_COLUMNS, write_csv, write_front
from search_spaces import Arch


def check_devices(spec) -> None:
    """What a several-device search does not do (yet): one line naming the key to change."""
    if spec.search.executor == "ray":
        raise UserError("search.executor: 'ray' searches one device; a hardware: list of devices needs the in-process "
                        "executor (search.executor: optuna)")
    if spec.retrain.top_k > 0:
        raise UserError("retrain.top_k: retraining is not done for a hardware: list of devices; set retrain.top_k: 0 "
                        "(each device's best/ holds supernet weights)")


def study_name(spec, device: str) -> str:
    return f"{spec.name}@{device}"


def latency_models(ctx: RunContext) -> dict[str, Any]:
    """Each device's `LatencyModel`: its table in RUN/latency/<device>/, measured and calibrated where missing (a
    device added on resume is the only one measured)."""
    out = {}
    for name, hw in devices(ctx.spec).items():
        out[name] = latency_stage.prepare(ctx.space, hw, ctx.path("latency", name), progress=ctx.progress,
                                          seed=ctx.spec.seed)
    return out


def device_constraints(spec, device: str) -> list[Constraint]:
    """The spec's constraints as `device`'s search reads them: `latency_ms` is its own latency
    (`latency_ms@device`), `latency_ms@other` another device's; the tighter limit where two name the same."""
    limits: dict[str, float] = {}
    for key, limit in spec.constraints.items():
        metric, named = split_metric(key)
        name = f"latency_ms@{named or device}" if metric == "latency_ms" else metric
        limits[name] = min(float(limit), limits.get(name, math.inf))
    return [Constraint(m, v) for m, v in limits.items()]


def check_constraints(ctx: RunContext, models: dict[str, Any]) -> dict[str, list[Constraint]]:
    """Each device's constraints, refused (one line) where no architecture of the space meets one."""
    out = {}
    for name in models:
        out[name] = device_constraints(ctx.spec, name)
        for warning in check_achievable(ctx.space, out[name], ctx.task, device_models=models):
            ctx.say(f"warning: {warning}")
    return out


def adopt_single_device_run(run_dir: str, name: str, device: str, profile_key: str) -> None:
    """A run begun with one `hardware:` mapping, resumed with a list that holds that device as `device`: its study
    `<name>` is copied to `<name>@<device>`, its latency table and rungs to the device's own, so its trials are
    kept and its table is not measured again. Idempotent: what is already there is left alone."""
    table = os.path.join(run_dir, "latency", f"{profile_key}.json")
    mine = os.path.join(run_dir, "latency", device, f"{profile_key}.json")
    if os.path.isfile(table) and not os.path.isfile(mine):
        os.makedirs(os.path.dirname(mine), exist_ok=True)
        shutil.copyfile(table, mine + ".tmp")
        os.replace(mine + ".tmp", mine)
    rungs, my_rungs = (os.path.join(run_dir, f) for f in ("multi_trial_rungs.json", f"multi_trial_rungs@{device}.json"))
    if os.path.isfile(rungs) and not os.path.isfile(my_rungs):
        shutil.copyfile(rungs, my_rungs)
    db = os.path.join(run_dir, "study.db")
    if not os.path.isfile(db):
        return
    storage = f"sqlite:///{os.path.abspath(db)}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = optuna.get_all_study_names(storage)
    target = f"{name}@{device}"
    if name in names:
        if target in names:  # an interrupted copy: copy again (the spec.yaml still says one device until done)
            optuna.delete_study(study_name=target, storage=storage)
        optuna.copy_study(from_study_name=name, from_storage=storage, to_storage=storage, to_study_name=target)


def search_devices(ctx: RunContext, t0: float) -> dict[str, Any]:
    """Every device's latency, search and front over one trained supernet; summary.json with one entry per device."""
    spec = ctx.spec
    models = latency_models(ctx)
    constraints = check_constraints(ctx, models)
    supernet = trained_supernet(ctx) if spec.search.mode == "one_shot" else None
    quality = QualityCache(ctx.path("quality.jsonl"), one_shot_scorer(ctx, supernet) if supernet is not None else None,
                           ctx.task.quality)
    url = resolve(spec.search.storage, ctx.dir)
    studies = {name: open_study(ctx.dir, study_name(spec, name), ctx.directions,
                                make_sampler(spec.search.sampler, spec.seed, spec.search.population), storage=url)
               for name in models}
    for study in studies.values():  # what any device's search (or an earlier run) scored is not scored again
        quality.seed(completed_cache(study))
    tracker = start_tracker(ctx)
    refs = {}
    for name, model in models.items():
        evaluator = ArchEvaluator(quality, model, constraints[name], quality=ctx.task.quality, device_models=models)
        if supernet is None:  # multi-trial: the pareto rule ranks on this device's costs, rungs of its own
            quality.score = MultiTrialScorer(ctx, cost=evaluator.cost, rungs=ctx.path(f"multi_trial_rungs@{name}.json"))
        refs[name] = reference_point(ctx, evaluator)
        study = studies[name]
        spread, metric = enqueue_first_trials(ctx, study, evaluator)
        if spread:
            ctx.say(f"search ({name}): the first {spread} trials spread over the space's {metric} range")
        done = f"{finished_count(study)} already done in study '{study.study_name}'"
        ctx.say(f"search ({name}): {spec.search.trials} trials with {spec.search.sampler} ({done}, "
                f"{len(quality.known)} architectures' quality known)")
        run_local(ctx, study, evaluator, on_trial=running_front(ctx, study, refs[name], tracker, device=name))
    ctx.say(f"search: {quality.scored} architectures scored in this process, the rest from the quality cache")
    return report(ctx, studies, models, constraints, refs, supernet, tracker, t0)


def all_rows(ctx: RunContext, studies, models) -> list[dict[str, Any]]:
    """Every device's trials, each with the device whose search ran it and every device's predicted latency."""
    rows = []
    for name, study in studies.items():
        for r in trial_rows(study, ctx.objectives, ctx.directions):
            r["device"] = name
            if r.get("arch"):
                arch = Arch.from_string(r["arch"])
                r.update({f"latency_ms@{d}": float(m.predict(arch)) for d, m in models.items()})
            rows.append(r)
    return rows


def device_view(ctx: RunContext, rows, device: str, constraints: list[Constraint]) -> list[dict[str, Any]]:
    """The rows as `device` sees them: its latency as `latency_ms`, feasibility under its constraints, its front
    marked among every architecture of the run."""
    view = []
    for r in rows:
        v = {k: x for k, x in r.items() if not k.startswith(("on_front@", "feasible@"))}
        v["latency_ms"] = r.get(f"latency_ms@{device}")
        v["feasible"] = all(finite(v.get(c.metric)) and c.violation(v[c.metric]) <= 0 for c in constraints)
        v["on_front"] = False
        view.append(v)
    mark_front(view, ctx.objectives, ctx.directions)
    return view


def trials_columns(rows, names, quality) -> list[str]:
    """trials.csv of a several-device search: trial, device, arch, quality, each device's latency, costs, each
    device's feasibility and front flag, state, then the rest."""
    keys = {k for r in rows for k in r}
    lead = ["trial", "device", "arch"] + [q for q in quality if q in keys] + [f"latency_ms@{d}" for d in names]
    costs = [c for c in ("params", "macs") if c in keys]
    tail = [f"{p}@{d}" for p in ("feasible", "on_front") for d in names] + ["state"]
    rest = sorted(keys - set(lead) - set(costs) - set(tail) - set(TRIAL_COLUMNS) - {"ok"})
    return lead + costs + tail + rest


def report(ctx: RunContext, studies, models, constraints, refs, supernet, tracker, t0: float) -> dict[str, Any]:
    """trials.csv, each device's front files, best/<device>/, wandb charts and summary.json."""
    spec, names = ctx.spec, list(models)
    rows = all_rows(ctx, studies, models)
    complete = sum(r["ok"] for r in rows)
    if not complete:
        raise SearchFailed(no_result_message(ctx, rows))
    summary: dict[str, Any] = {"name": spec.name, "space": ctx.space.name, "task": ctx.task.name, "trials": len(rows),
                               "complete": complete, "devices": {}}
    x, y = axes(ctx.objectives, ctx.directions)
    for name in names:
        view = device_view(ctx, rows, name, constraints[name])
        for r, v in zip(rows, view):
            r[f"feasible@{name}"], r[f"on_front@{name}"] = v["feasible"], v["on_front"]
        own = [v for v in view if v["device"] == name]
        entry: dict[str, Any] = {
            "study": study_name(spec, name), "trials": len(own), "complete": sum(v["ok"] for v in own),
            "front": [v for v in view if v["on_front"]],
            "hypervolume": front_hypervolume(view, ctx.objectives, ctx.directions, refs[name]),
            "reference_point": refs[name]}
        row = choose(view, ctx.objectives, ctx.directions, spec.export.choose)
        if row is not None:
            arch = Arch.from_string(row["arch"])
            model = None
            if supernet is not None:
                model = recalibrate_bn(supernet, ctx.loaders()[0], spec.search.bn_batches, arch=arch)
            export_best(ctx, arch, model, row, folder=ctx.path("best", name))
            entry["best"], entry["best_from"] = row, "one_shot"
            write_card(ctx.path("best", name), arch, title=f"{spec.name} on {name}: trial {row['trial']} of "
                       f"{row['device']}'s search ({ctx.space.name})", summary={"front": [row]}, trial=row["trial"],
                       quality=ctx.task.quality, search_mode=spec.search.mode, device=name,
                       latency_model=models[name], weights="weights.pt" if model is not None else None,
                       other_devices={d: row[f"latency_ms@{d}"] for d in names if d != name})
        write_front(ctx.dir, view, x=x, y=y, title=f"{spec.name} on {name}: {y} vs {x} ({ctx.space.name})",
                    stem=f"pareto@{name}")
        if tracker:
            tracker.log_front(view, x=x, y=y, device=name, trials_table=False)
            tracker.run.summary[f"hypervolume@{name}"] = entry["hypervolume"]
        summary["devices"][name] = entry
    columns = trials_columns(rows, names, ctx.task.quality)
    csv_rows = [{k: v for k, v in r.items() if k not in ("latency_ms", "feasible", "on_front")} for r in rows]
    write_csv(ctx.path("trials.csv"), csv_rows, columns)
    if tracker:
        tracker.log_trials(csv_rows, columns)
        tracker.finish()
    summary["seconds"] = round(time.time() - t0, 1)
    atomic_write_json(ctx.path("summary.json"), summary)
    return summary
