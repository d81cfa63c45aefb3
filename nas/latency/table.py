"""`LatencyTable`: the measured latency of every unit (op variant at a real input shape) of a space.

A table belongs to one `DeviceProfile` and one machine: it is saved as `<dir>/<profile.key()>.json`
(atomically) with the machine fingerprint, and loading it on a machine with another fingerprint is
refused unless `allow_foreign=True`. It is built incrementally: only units not in it yet are measured,
in interleaved chunks, and it is saved every `save_every` entries, so an interrupted build loses little.
"""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Iterable, Sequence

from nas.errors import MissingFile, UserError
from nas.io import atomic_write_json
from nas.latency import measure as measure_mod
from nas.latency.profile import DeviceProfile, fingerprint_difference, machine_fingerprint
from nas.latency.units import Unit, arch_units, classifier_unit, layer_units, sequence_units, space_units
from search_spaces.builder import build_model

FORMAT = 1


class ForeignTableError(UserError):
    """The table was measured on another machine (or with other library versions)."""


class MissingEntriesError(KeyError):
    """The table lacks units an architecture needs."""

    def __str__(self) -> str:
        return self.args[0] if self.args else ""


def table_path(out_dir: str, profile: DeviceProfile) -> str:
    return os.path.join(out_dir, f"{profile.key()}.json")


class LatencyTable:
    """Unit key -> measured latency (ms) for one device profile on one machine, plus the calibrations
    fitted for the spaces it serves (`predictor.fit_calibration`), keyed by space signature."""

    def __init__(self, profile: DeviceProfile, fingerprint: dict[str, Any] | None = None,
                 entries: dict[str, dict[str, Any]] | None = None, spaces: Sequence[str] = (),
                 calibrations: dict[str, dict[str, Any]] | None = None, path: str | None = None,
                 reference_ms: dict[str, float] | None = None, drift_correction: bool = True):
        self.profile = profile
        self.fingerprint = fingerprint if fingerprint is not None else machine_fingerprint(profile)
        self.entries: dict[str, dict[str, Any]] = dict(entries or {})
        self.spaces = list(spaces)
        self.calibrations: dict[str, dict[str, Any]] = dict(calibrations or {})  # space signature -> fit
        self.path = path
        # input size -> the reference module's latency there when the table was begun (drift correction)
        self.reference_ms: dict[str, float] = dict(reference_ms) if isinstance(reference_ms, dict) else {}
        self.drift_correction = drift_correction

    # --- lookup
    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, unit: Unit | str) -> bool:
        return (unit if isinstance(unit, str) else unit.key()) in self.entries

    def ms(self, unit: Unit) -> float:
        """The median latency of `unit`; a missing unit raises `MissingEntriesError` naming the fix."""
        e = self.entries.get(unit.key())
        if e is None:
            raise MissingEntriesError(self._missing_message([unit]))
        return float(e["median_ms"])

    def lookup(self, units: Iterable[Unit]) -> list[float]:
        units = list(units)
        missing = self.missing(units)
        if missing:
            raise MissingEntriesError(self._missing_message(missing))
        return [float(self.entries[u.key()]["median_ms"]) for u in units]

    def missing(self, units: Iterable[Unit]) -> list[Unit]:
        """The distinct units not in the table, in first-seen order."""
        seen: dict[str, Unit] = {}
        for u in units:
            k = u.key()
            if k not in self.entries and k not in seen:
                seen[k] = u
        return list(seen.values())

    def _missing_message(self, missing: list[Unit]) -> str:
        where = f" --out {os.path.dirname(self.path) or '.'}" if self.path else ""
        return (f"latency table ({self.profile.key()}) lacks {len(missing)} entr{'y' if len(missing) == 1 else 'ies'}, "
                f"e.g. '{missing[0].key()}'; run `nas latency build SPEC_OR_SPACE --profile {self.profile.kind} "
                f"--threads {self.profile.threads}{where}` for this space")

    # --- building
    def build(self, units: Iterable[Unit], save_every: int = 20, chunk: int = 8, progress: bool | None = None,
              save: bool = True, size: int | None = None) -> int:
        """Measure the units not in the table yet; return how many were measured.

        Units are measured `chunk` at a time in interleaved rounds, drift-corrected with the reference module
        at `size` (default: the largest unit input size, the network's). The table is saved (when it has a
        path) every `save_every` new entries and at the end, so Ctrl-C loses at most `save_every` entries.
        """
        todo = self.missing(units)
        if not todo:
            return 0
        size = size or max(u.size for u in todo)  # the reference runs at the network's input size
        bar = _progress_bar(len(todo), f"latency {self.profile.key()}", progress)
        done, since_save = 0, 0
        try:
            for start in range(0, len(todo), chunk):
                part = todo[start:start + chunk]
                results = self.measure([(u.build(), u.input_shape()) for u in part], size)
                for u, m in zip(part, results):
                    self.entries[u.key()] = {"unit": u.to_dict(), **m.to_dict()}
                done += len(part)
                since_save += len(part)
                bar.update(len(part))
                if save and self.path and since_save >= save_every:
                    self.save()
                    since_save = 0
        finally:
            bar.close()
            if save and self.path and since_save:
                self.save()
        return done

    def measure(self, items, size: int = 32, reference_arch=None) -> list:
        """Measure (module, input_shape) pairs on this table's profile, at the table's machine speed: with
        drift correction, a reference timed in the same rounds rescales them to its baseline
        (`measure.measure_corrected`): a small conv stack at `size` x `size` for single units, or, for whole
        networks, the fixed network `reference_arch`, whose slowdown under load is most like theirs."""
        if not self.drift_correction:
            return measure_mod.measure_many(items, self.profile)
        reference, key = None, str(int(size))
        if reference_arch is not None:
            reference, key = _network(reference_arch), f"arch:{reference_arch.to_string()}"
        out, ref = measure_mod.measure_corrected(items, self.profile, self.reference_ms.get(key), size,
                                                 reference=reference)
        self.reference_ms.setdefault(key, ref)
        return out

    # --- files
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "profile": self.profile.to_dict(), "fingerprint": self.fingerprint,
                "spaces": sorted(set(self.spaces)), "reference_ms": self.reference_ms,
                "drift_correction": self.drift_correction, "calibrations": self.calibrations,
                "entries": dict(sorted(self.entries.items()))}

    def save(self, path: str | None = None) -> str:
        path = path or self.path
        if not path:
            raise ValueError("latency table: no path to save to")
        self.path = path
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str, profile: DeviceProfile | None = None, allow_foreign: bool = False) -> "LatencyTable":
        """Read a table; one measured on another machine raises a one-line `ForeignTableError`."""
        if not os.path.isfile(path):
            raise MissingFile(f"latency table '{path}' does not exist; build it with `nas latency build`")
        with open(path) as f:
            try:
                d = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                why = f"{e.msg}, line {e.lineno}" if isinstance(e, json.JSONDecodeError) else "not text"
                raise UserError(f"latency table '{path}': not valid JSON ({why}); delete it to measure the table "
                                f"again (`nas latency build`, or the search's latency stage)") from None
        if not isinstance(d, dict) or not isinstance(d.get("profile") or {}, dict) or not isinstance(
                d.get("entries") or {}, dict) or not all(
                isinstance(e, dict) and isinstance(e.get("median_ms"), (int, float))
                for e in (d.get("entries") or {}).values()):
            raise UserError(f"latency table '{path}': not a latency table (a JSON object with entries holding "
                            f"median_ms); delete it to measure the table again")
        stored = DeviceProfile.from_dict(d.get("profile") or {}, path="profile")
        if profile is not None and stored.key() != profile.key():
            raise UserError(f"latency table '{path}' was measured for profile {stored.key()}, not {profile.key()}")
        table = cls(profile or stored, d.get("fingerprint") or {}, d.get("entries") or {}, d.get("spaces") or (),
                    d.get("calibrations"), path, d.get("reference_ms"), bool(d.get("drift_correction", True)))
        if not allow_foreign:
            diff = fingerprint_difference(table.fingerprint, machine_fingerprint(table.profile))
            if diff:
                raise ForeignTableError(f"latency table '{path}' was measured on another machine ({diff}); "
                                        f"rebuild it here or pass allow_foreign=True (--allow-foreign)")
        return table

    @classmethod
    def open(cls, out_dir: str, profile: DeviceProfile, allow_foreign: bool = False) -> "LatencyTable":
        """The table of `profile` in `out_dir`, or a new empty one that will be saved there."""
        path = table_path(out_dir, profile)
        if os.path.isfile(path):
            return cls.load(path, profile, allow_foreign=allow_foreign)
        return cls(profile, path=path)


def _network(arch):
    """The module of `arch` with fixed weights (seed 0; the global RNG is left as it was), and its input shape."""
    import torch

    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        return build_model(arch).eval(), (1, arch.in_channels, arch.input_size, arch.input_size)
    finally:
        torch.random.set_rng_state(state)


def _progress_bar(total: int, desc: str, progress: bool | None):
    """A tqdm bar on a terminal; silent when output is not a TTY (or progress=False)."""
    from tqdm.auto import tqdm

    if progress is None:
        progress = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="op", disable=not progress, leave=False)


__all__ = ["LatencyTable", "ForeignTableError", "MissingEntriesError", "table_path", "Unit", "arch_units",
           "classifier_unit", "layer_units", "sequence_units", "space_units"]
