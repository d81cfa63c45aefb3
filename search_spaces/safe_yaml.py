"""Bounded YAML: `load_yaml` is `yaml.safe_load` with a size limit and a bound on alias expansion (no YAML bombs).

The document is composed into its node graph first (an alias is the anchored node again, so the
graph stays as small as the text); the nodes it would expand to are counted over that graph, and a
document that aliases would grow past `MAX_ALIAS_NODES` extra nodes, or that refers to itself, is
refused before anything is constructed, printed or compared.
"""
from __future__ import annotations

from typing import Any

import yaml

MAX_BYTES = 1 << 20  # 1 MiB of YAML text
MAX_ALIAS_NODES = 100_000  # nodes that aliases may add to the document's own


class YamlLimitError(yaml.YAMLError):
    """A YAML document over a size, expansion or nesting bound; the message is one line."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def expanded_size(root: yaml.Node, limit: int) -> int:
    """The nodes `root` expands to (each alias counted as a full copy); over `limit`, or cyclic: `YamlLimitError`."""
    size: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_.discard(key)
            n = 1 + sum(size[id(c)] for c in _children(node))
            if n > limit:
                raise YamlLimitError(f"aliases expand the document past {limit:,} nodes (a YAML bomb?); "
                                     f"valid: a document without deeply nested anchors")
            size[key] = n
        elif key not in size:
            if key in open_:
                raise YamlLimitError("an alias refers to a node that contains it (a recursive document); "
                                     "valid: aliases of finished nodes only")
            open_.add(key)
            stack.append((node, True))
            stack.extend((c, False) for c in _children(node) if id(c) not in size)
    return size[id(root)]


def _distinct(root: yaml.Node) -> int:
    seen, stack = set(), [root]
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(_children(node))
    return len(seen)


class BoundedLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that checks the composed node graph's expansion before constructing it."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        expanded_size(node, _distinct(node) + MAX_ALIAS_NODES)
        return self.construct_document(node)


def load_yaml(stream: Any) -> Any:
    """`yaml.safe_load(stream)` (text, bytes or a file) within MAX_BYTES and MAX_ALIAS_NODES; else `YamlLimitError`."""
    try:
        text = stream.read(MAX_BYTES + 1) if hasattr(stream, "read") else stream
        if isinstance(text, bytes):
            text = text.decode("utf-8")
    except UnicodeDecodeError as e:
        raise YamlLimitError(f"not UTF-8 text (byte {e.start}); valid: a YAML text file") from None
    if text is not None and len(text) > MAX_BYTES:
        raise YamlLimitError(f"larger than the {MAX_BYTES // (1 << 20)} MiB limit for YAML files")
    loader = BoundedLoader(text)
    try:
        return loader.get_single_data()
    except RecursionError:
        raise YamlLimitError("nested too deeply to read; valid: a document nested at most a few hundred "
                             "levels") from None
    finally:
        loader.dispose()


def parse_yaml(stream, source: str, error: type[Exception]) -> Any:
    """`load_yaml(stream)`; a syntax error or a document over a bound raises `error` as one line naming `source`
    (and the line and column)."""
    try:
        return load_yaml(stream)
    except YamlLimitError as e:
        raise error(f"{source}: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise error(f"{source}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
