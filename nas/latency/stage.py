"""The latency stage of a search: the profile from the spec, the table built incrementally, its calibration."""
from __future__ import annotations

import os

from nas.io import say
from nas.latency.predictor import LatencyModel, fit_calibration, space_signature
from nas.latency.profile import DeviceProfile
from nas.latency.table import LatencyTable, table_path
from nas.latency.units import space_units
from nas.spec.schema import to_dict


def profile_of(hardware):
    """The `DeviceProfile` of a spec's `hardware:` section (a HardwareSection or a mapping)."""
    d = to_dict(hardware) if not isinstance(hardware, dict) else dict(hardware)
    d.pop("name", None)  # a device's name in a `hardware:` list (nas.spec.sections.DeviceSection)
    return DeviceProfile.from_dict(d)  # drops the table keys (calibration_archs, table, allow_foreign)


def prepare(space, hardware, out_dir: str, progress: bool | None = None, seed: int = 0):
    """A `LatencyModel` for `space`: the table (measured where missing) and a calibration (fitted if missing)."""

    profile = profile_of(hardware)
    allow_foreign = bool(getattr(hardware, "allow_foreign", False))
    table_file = getattr(hardware, "table", None)
    if table_file:
        table = LatencyTable.load(table_file, profile, allow_foreign=allow_foreign)
    else:
        table = LatencyTable.open(out_dir, profile, allow_foreign=allow_foreign)
    units = space_units(space)
    table.spaces = sorted(set(table.spaces) | {space_signature(space)})
    missing = table.missing(units)
    if missing:
        say(f"latency: measuring {len(missing)} of {len(units)} table entries on {profile.key()}")
        table.build(units, progress=progress, size=space.spec.input_size)
    if space_signature(space) not in (table.calibrations or {}):
        n = int(getattr(hardware, "calibration_archs", 16))
        say(f"latency: calibrating on {n} whole networks measured end to end")
        cal = fit_calibration(space, table, profile, n=n, seed=seed, progress=progress)
        if cal.loo_mape is not None:
            say(f"latency: calibration '{cal.form}', leave-one-out error {100 * cal.loo_mape:.1f}%")
    return LatencyModel.for_space(table, space)



def saved_model(space, hardware, out_dir: str):
    """The `LatencyModel` a finished run predicted with (its table and, if fitted, its calibration for `space`),
    read for display: a table measured on another machine is accepted; None when the run has no table."""
    path = getattr(hardware, "table", None) or table_path(out_dir, profile_of(hardware))
    if not os.path.isfile(path):
        return None
    return LatencyModel.for_space(LatencyTable.load(path, allow_foreign=True), space, require_calibration=False)
