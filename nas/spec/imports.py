"""`imports:` of a spec: the user's modules (ops, datasets, samplers, tasks), imported before anything else.

`load_spec` imports them, and every process that works on a run (the driver, each DDP rank, each Ray
worker) reads its spec through `load_spec`, so a user's extension is registered wherever it is needed.
A `.py` path is imported under its file name (so `inspect.getsource` finds its classes for export) and
stored absolute in the resolved spec, so workers in other folders find it too.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from nas.spec.schema import SpecError


def is_path(item: str) -> bool:
    return item.endswith(".py") or os.sep in item or "/" in item


def import_user_modules(items, base_dir: str) -> list[str]:
    """Import each module name or `.py` path (relative to `base_dir`); returns them with paths made absolute."""
    if not isinstance(items, (list, tuple)):
        items = [items]
    out = []
    for i, item in enumerate(items):
        where = f"imports[{i}]"
        if not isinstance(item, str) or not item.strip():
            raise SpecError(f"{where}: expected a module name or a path to a .py file, got {item!r}")
        if is_path(item):
            path = item if os.path.isabs(item) else os.path.join(base_dir, item)
            if not os.path.isfile(path) and os.path.isfile(os.path.abspath(item)):
                path = os.path.abspath(item)
            out.append(_import_file(os.path.normpath(path), where))
        else:
            _import_module(item, where)
            out.append(item)
    return out


def _import_module(name: str, where: str) -> None:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and name.startswith(e.name):
            raise SpecError(f"{where}: no module named '{name}' on the Python path; valid: a module importable here "
                            f"(see PYTHONPATH) or a path to a .py file") from None
        raise


def _import_file(path: str, where: str) -> str:
    if not os.path.isfile(path):
        raise SpecError(f"{where}: file '{path}' does not exist; valid: a module name or a path to a .py file")
    name = os.path.splitext(os.path.basename(path))[0]
    loaded = sys.modules.get(name)
    if loaded is not None and os.path.abspath(getattr(loaded, "__file__", "") or "") == path:
        return path  # already imported (a worker that read the spec twice)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return path
