"""Device profiles: where and how latency is measured, and the fingerprint of the machine measuring it."""
from __future__ import annotations

import dataclasses
import os
import platform
from dataclasses import dataclass
from typing import Any, Literal

from nas.spec.schema import SpecError, from_dict

KINDS = ("cpu", "cuda", "onnxruntime-cpu")
DTYPES = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class ProfileFields:
    """The fields of a device profile, unchecked: shared by `DeviceProfile` and the spec's `hardware:` section."""

    kind: Literal["cpu", "cuda", "onnxruntime-cpu"] = "cpu"
    threads: int = 1
    batch: int = 1
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    channels_last: bool = False
    warmup: int = 10
    repeats: int = 60


def check_profile(p: ProfileFields, path: str = "hardware") -> None:
    """The fields of a profile (a `DeviceProfile` or the spec's `hardware:`) hold valid values; one `SpecError`
    naming the key path otherwise."""
    prefix = f"{path}." if path else ""
    if p.kind not in KINDS:
        raise SpecError(f"{prefix}kind: {p.kind!r} is not allowed; valid: {', '.join(KINDS)}")
    if p.dtype not in DTYPES:
        raise SpecError(f"{prefix}dtype: {p.dtype!r} is not allowed; valid: {', '.join(DTYPES)}")
    for name, low in (("threads", 1), ("batch", 1), ("warmup", 0), ("repeats", 1)):
        if getattr(p, name) < low:
            raise SpecError(f"{prefix}{name}: must be >= {low}, got {getattr(p, name)}")
    if p.kind == "onnxruntime-cpu" and p.dtype != "float32":
        raise SpecError(f"{prefix}dtype: onnxruntime-cpu measures float32 only, got {p.dtype!r}")


@dataclass(frozen=True)
class DeviceProfile(ProfileFields):
    """Where latency is measured: the runtime (`kind`), threads, batch, dtype, memory format, and how often.

    `warmup` and `repeats` say how carefully it is measured, not what is measured, so they are not part
    of `key()`: a table measured with more repeats serves the same profile.
    """

    def validate(self, path: str = "hardware") -> None:
        check_profile(self, path)

    def __post_init__(self):
        self.validate()

    def key(self) -> str:
        """A stable file-name-safe name of what is measured, e.g. `cpu-t1-b1-float32`."""
        parts = [self.kind, f"t{self.threads}", f"b{self.batch}", self.dtype]
        if self.channels_last:
            parts.append("cl")
        return "-".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, path: str = "hardware") -> "DeviceProfile":
        """From the spec's `hardware:` section; unknown keys and bad values raise a one-line `SpecError`."""
        if dataclasses.is_dataclass(data):
            data = dataclasses.asdict(data)
        data = dict(data or {})
        if data.get("kind") == "onnxruntime":
            data["kind"] = "onnxruntime-cpu"
        # tolerate the keys of a whole `hardware:` section that are not about measurement (e.g. constraints)
        names = {f.name for f in dataclasses.fields(cls)}
        extra = {k for k in data if k not in names and k in _NON_PROFILE_KEYS}
        for k in extra:
            data.pop(k)
        return from_dict(cls, data, path)

    def with_(self, **changes) -> "DeviceProfile":
        return dataclasses.replace(self, **changes)


# keys of the spec's `hardware:` section (nas.spec.sections.HardwareSection) that are about the table, not the device
_NON_PROFILE_KEYS = {"calibration_archs", "table", "allow_foreign"}


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo, else `platform.processor()`)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_fingerprint(profile: DeviceProfile) -> dict[str, Any]:
    """What a latency measurement depends on besides the profile: CPU, core count, GPU, library versions."""
    import torch

    fp: dict[str, Any] = {"cpu": cpu_model(), "cpu_count": os.cpu_count() or 0, "machine": platform.machine(),
                          "torch": torch.__version__.split("+")[0]}
    if profile.kind == "cuda":
        fp["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
        fp["cuda"] = torch.version.cuda or "none"
    if profile.kind == "onnxruntime-cpu":
        try:
            import onnxruntime

            fp["onnxruntime"] = onnxruntime.__version__
        except ImportError:
            fp["onnxruntime"] = "missing"
    return fp


def fingerprint_difference(measured: dict[str, Any], here: dict[str, Any]) -> str | None:
    """The first field in which two fingerprints differ, as `cpu 'A' vs here 'B'`; None when they agree."""
    for k in sorted(set(measured) | set(here)):
        if measured.get(k) != here.get(k):
            return f"{k} {measured.get(k)!r} vs here {here.get(k)!r}"
    return None
