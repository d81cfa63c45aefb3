"""`load(name_or_path, **overrides)`: a shipped space by name, or a YAML file, validated into a `SearchSpace`."""
from __future__ import annotations

import copy
import os
import re
from importlib import resources
from typing import Any

from . import safe_yaml
from .safe_yaml import MAX_BYTES
from .schema import SpaceError, did_you_mean, parse_space
from .space import SearchSpace

# short override names for the keys a dataset decides
ALIASES = {"in_channels": "input.channels", "channels": "input.channels", "input_size": "input.size",
           "size": "input.size"}


def shipped_spaces() -> list[str]:
    """Names of the spaces shipped as package data (search_spaces/<name>.yaml)."""
    files = resources.files(__package__)
    return sorted(f.name[:-5] for f in files.iterdir() if f.name.endswith(".yaml"))


def parse_yaml(stream, source: str, error: type[Exception] = SpaceError) -> Any:
    """`safe_yaml.parse_yaml` raising `SpaceError` unless told otherwise (what space and spec files use)."""
    return safe_yaml.parse_yaml(stream, source, error)


def read_yaml(name_or_path: str) -> tuple[dict, str]:
    """The raw mapping of a space file, and the name it goes by (the file's stem)."""
    path = str(name_or_path)
    if os.path.isfile(path):
        with open(path, "rb") as f:
            text, name = f.read(MAX_BYTES + 1), os.path.splitext(os.path.basename(path))[0]
    elif path in shipped_spaces():
        text, name = resources.files(__package__).joinpath(f"{path}.yaml").read_text(), path
    else:
        raise SpaceError(f"space '{path}': no such file and no shipped space of that name; "
                         f"{did_you_mean(path, shipped_spaces())}shipped: {', '.join(shipped_spaces())}")
    raw = parse_yaml(text, path)
    if not isinstance(raw, dict):
        raise SpaceError(f"{path}: a space file is a mapping (name, input, stem, stages, head, classifier)")
    return raw, name


def apply_overrides(raw: dict, overrides: dict[str, Any]) -> dict:
    """A copy of `raw` with overrides applied: top-level keys (mappings merged), dotted paths
    (`input.size`, `stages.1.depth` or `stages[1].depth`) or the aliases in_channels / input_size."""
    raw = copy.deepcopy(raw)
    for key, value in overrides.items():
        parts = [p for p in re.split(r"[.\[\]]+", ALIASES.get(key, key)) if p]
        node: Any = raw
        for i, p in enumerate(parts):
            last = i == len(parts) - 1
            where = ".".join(parts[:i + 1])
            if isinstance(node, list):
                if not p.isdigit() or int(p) >= len(node):
                    raise SpaceError(f"override {key}: '{where}' is not an index of a list of {len(node)}")
                p = int(p)
            elif not isinstance(node, dict):
                raise SpaceError(f"override {key}: '{'.'.join(parts[:i])}' is not a mapping or list")
            if last:
                if isinstance(node, dict) and isinstance(node.get(p), dict) and isinstance(value, dict):
                    node[p] = {**node[p], **copy.deepcopy(value)}
                else:
                    node[p] = copy.deepcopy(value)
            else:
                if isinstance(node, dict) and p not in node:
                    node[p] = {}
                node = node[p]
    return raw


def load(name_or_path: str | dict | SearchSpace, check: str = "build", **overrides: Any) -> SearchSpace:
    """A validated `SearchSpace`: a shipped name (`mobile`), a YAML path, or a mapping.

    `overrides` replace keys of the file before validation, e.g. `load("mobile", input_size=64,
    in_channels=3, num_classes=100)` or `load("resnet", **{"stages.0.depth": [1, 2]})`.
    `check="forward"` also runs every candidate once at each of its shapes (slower; tests use it).
    """
    if isinstance(name_or_path, SearchSpace):
        if not overrides and check == name_or_path.check:
            return name_or_path
        raw, name = name_or_path.raw or {}, name_or_path.name
    elif isinstance(name_or_path, dict):
        raw, name = name_or_path, str(name_or_path.get("name", "space"))
    else:
        raw, name = read_yaml(name_or_path)
    raw = apply_overrides(raw, overrides)
    return SearchSpace(parse_space(raw, name), check=check, raw=raw)
