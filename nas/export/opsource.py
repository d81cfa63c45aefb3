"""Copy op source out of `ops/`: the definitions an object needs, in dependency order, as one text.

`OpSource.name(obj)` takes a class or function defined in an `ops.*` module and returns the name
under which it will stand in the generated file; it also pulls in, recursively, every module-level
class, function and constant of `ops/` that the definition refers to (names, and attributes of an
`ops` module such as `layers.make_act`), found by walking its AST and resolving each name against
the defining module's top-level bindings. `register_op(...)` decorators are dropped and replaced by
the one thing they do to a class (`Cls.op_name = "name"`). Names that two modules both define are
renamed `<name>_<module>` in the later one, references included; imports from outside `ops` that
the copied code needs (beyond the fixed header) are collected as import lines.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import io
import math
import sys
import tokenize
from dataclasses import dataclass, field
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import UserError
from ops.registry import op_spec, register_op

PACKAGE = "ops"
# the imports every generated file starts with: name -> (statement, the object it binds)
HEADER_IMPORTS = {"math": ("import math", math), "torch": ("import torch", torch),
                  "nn": ("from torch import nn", nn), "F": ("import torch.nn.functional as F", F)}


def _in_package(modname: str, packages=(PACKAGE,)) -> bool:
    return any(modname == p or modname.startswith(p + ".") for p in packages)


def _user_op_module(obj) -> str | None:
    """The module of a user's registered op class (ops.register_op outside `ops/`), whose source is copied too."""
    modname = getattr(obj, "__module__", "") or ""
    name = getattr(obj, "op_name", None)
    if not name or _in_package(modname) or _in_package(modname, ("nas", "search_spaces")):
        return None
    try:
        return modname if op_spec(name).cls is obj else None
    except KeyError:
        return None


@lru_cache(maxsize=None)
def _module_source(modname: str) -> tuple[str, ast.Module, dict[str, ast.stmt]]:
    """A module's source, AST and top-level binding statement of each name (the last one wins)."""
    text = inspect.getsource(importlib.import_module(modname))
    tree = ast.parse(text)
    bindings: dict[str, ast.stmt] = {}
    for stmt in tree.body:
        for name in _bound_names(stmt):
            bindings[name] = stmt
    return text, tree, bindings


def _bound_names(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        return [stmt.name]
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return [a.asname or a.name.split(".")[0] for a in stmt.names]
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
    return [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]


def _absolute(modname: str, stmt: ast.ImportFrom) -> str:
    if not stmt.level:
        return stmt.module or ""
    package = modname if hasattr(sys.modules[modname], "__path__") else modname.rpartition(".")[0]
    for _ in range(stmt.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{stmt.module}" if stmt.module else package


def _import_line(modname: str, stmt: ast.stmt, name: str) -> str:
    """The import statement that binds `name` alone, as `modname` wrote it."""
    for alias in stmt.names:
        if (alias.asname or alias.name.split(".")[0]) != name:
            continue
        alias_part = alias.name + (f" as {alias.asname}" if alias.asname else "")
        if isinstance(stmt, ast.Import):
            return f"import {alias_part}"
        return f"from {_absolute(modname, stmt)} import {alias_part}"
    raise AssertionError(f"{name} is not bound by this import")


@dataclass
class Definition:
    """One top-level definition copied from an `ops` module."""

    module: str
    name: str
    node: ast.stmt
    deps: list[tuple[str, str]] = field(default_factory=list)
    kept_decorators: list[ast.expr] = field(default_factory=list)
    op_name: str | None = None  # set for classes whose register_op decorator was dropped


class OpSource:
    """The `ops` definitions a generated file needs, collected from the objects it names."""

    def __init__(self, reserved: tuple[str, ...] = ()):
        self.defs: dict[tuple[str, str], Definition] = {}
        self.emitted: dict[tuple[str, str], str] = {}  # definition -> name in the generated file
        self.taken = set(reserved) | set(HEADER_IMPORTS)
        self.roots: list[tuple[str, str]] = []
        self.packages: tuple[str, ...] = (PACKAGE,)  # modules whose definitions are copied: ops/ and users' op modules
        self.imports: list[str] = []
        self.future_annotations = False

    # --- collecting ---
    def name(self, obj) -> str:
        """The generated file's name for `obj` (a class or function of an `ops` module); collects its source."""
        modname = getattr(obj, "__module__", "") or ""
        user = _user_op_module(obj)
        if user and user not in self.packages:
            self.packages += (user,)
        if not self._copyable(modname):
            raise UserError(f"export: {obj!r} is neither defined in the '{PACKAGE}' package nor a registered op; "
                            f"only op source is copied")
        key = self._resolve(modname, obj.__name__)
        if key is None or key[0] != "def":
            raise ValueError(f"export: cannot find the definition of {obj.__name__} in {modname}")
        if key[1] not in self.roots:
            self.roots.append(key[1])
        return self.emitted[key[1]]

    def _copyable(self, modname: str) -> bool:
        return _in_package(modname, self.packages)

    def _resolve(self, modname: str, name: str):
        """What `name` means at the top level of `modname`: ("def", key), ("module", modname), ("import", line)."""
        module = sys.modules[modname]
        if name not in vars(module):
            return None  # a builtin, or a local variable
        obj = vars(module)[name]
        if inspect.ismodule(obj):
            if self._copyable(obj.__name__):
                return "module", obj.__name__
            return self._external(modname, name, obj)
        stmt = _module_source(modname)[2].get(name)
        if isinstance(stmt, ast.ImportFrom) and self._copyable(_absolute(modname, stmt)):
            alias = next(a for a in stmt.names if (a.asname or a.name) == name)
            return self._resolve(_absolute(modname, stmt), alias.name)
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            return self._external(modname, name, obj, stmt)
        if stmt is None:
            raise ValueError(f"export: {modname}.{name} is not bound by a top-level statement; cannot copy it")
        self._collect(modname, name, stmt)
        return "def", (modname, name)

    def _external(self, modname, name, obj, stmt=None):
        if name in HEADER_IMPORTS:
            if HEADER_IMPORTS[name][1] is not obj:
                raise ValueError(f"export: {modname} binds '{name}' to {obj!r}, which the generated file's header "
                                 f"binds to {HEADER_IMPORTS[name][1].__name__}; rename it in {modname}")
            return "import", None
        line = _import_line(modname, stmt or _module_source(modname)[2][name], name)
        if line not in self.imports:
            self.imports.append(line)
        return "import", line

    def _collect(self, modname: str, name: str, stmt: ast.stmt) -> None:
        key = (modname, name)
        if key in self.defs:
            return

        definition = self.defs[key] = Definition(modname, name, stmt)
        emitted = name if name not in self.taken else f"{name}_{modname.rpartition('.')[2]}"
        if emitted in self.taken:
            raise ValueError(f"export: cannot give {modname}.{name} a unique name in the generated file")
        self.taken.add(emitted)
        self.emitted[key] = emitted
        text, tree, _ = _module_source(modname)
        self.future_annotations |= any(isinstance(s, ast.ImportFrom) and s.module == "__future__" and
                                       any(a.name == "annotations" for a in s.names) for s in tree.body)
        kept = list(stmt.decorator_list) if hasattr(stmt, "decorator_list") else []
        for dec in list(kept):
            func = dec.func if isinstance(dec, ast.Call) else dec
            names = vars(sys.modules[modname])
            if isinstance(func, ast.Name):
                target = names.get(func.id)
            else:  # @registry.register_op(...)
                outer = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else None
                target = getattr(names.get(outer), func.attr, None) if outer else None
            if target is register_op:
                kept.remove(dec)
                definition.op_name = getattr(vars(sys.modules[modname])[name], "op_name", None)
        definition.kept_decorators = kept
        for node in self._walk(stmt, kept):
            target = None
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                target = self._resolve(modname, node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                outer = self._resolve(modname, node.value.id)
                if outer and outer[0] == "module":
                    target = self._resolve(outer[1], node.attr)
            if target and target[0] == "def" and target[1] != key and target[1] not in definition.deps:
                definition.deps.append(target[1])

    @staticmethod
    def _walk(stmt: ast.stmt, kept_decorators: list):
        """Every AST node of `stmt` except the decorators that are dropped."""
        dropped = [d for d in getattr(stmt, "decorator_list", []) if d not in kept_decorators]
        skip = {id(n) for d in dropped for n in ast.walk(d)}
        return (n for n in ast.walk(stmt) if id(n) not in skip)

    # --- emitting ---
    def order(self) -> list[Definition]:
        """Every collected definition, each after the definitions it refers to (cycles keep first-seen order)."""
        done: list[tuple[str, str]] = []
        seen: set[tuple[str, str]] = set()

        def visit(key):
            if key in seen:
                return
            seen.add(key)
            for dep in self.defs[key].deps:
                visit(dep)
            done.append(key)

        for key in self.roots:
            visit(key)
        return [self.defs[k] for k in done]

    def source(self, definition: Definition) -> str:
        """A definition's source text, dropped decorators removed, references renamed to the emitted names."""
        text, _, _ = _module_source(definition.module)
        lines = text.splitlines()
        node = definition.node
        parts = [ast.get_source_segment(text, d) for d in definition.kept_decorators]
        body = "\n".join(lines[node.lineno - 1:node.end_lineno])
        body = "\n".join(["@" + p for p in parts] + [body])
        body = self._rename(definition, body)
        if definition.op_name:
            body += f"\n\n\n{self.emitted[(definition.module, definition.name)]}.op_name = {definition.op_name!r}"
        return body

    def _rename(self, definition: Definition, body: str) -> str:
        """Rewrite references whose emitted name differs: `x` -> `x_mod`, `layers.make_act` -> `make_act`."""
        modname = definition.module
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(body).readline)
                  if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                                    tokenize.COMMENT, tokenize.ENDMARKER)]
        line_starts = [0]
        for line in body.splitlines(keepends=True):
            line_starts.append(line_starts[-1] + len(line))
        offset = lambda pos: line_starts[pos[0] - 1] + pos[1]  # noqa: E731
        edits = []
        scoped = list(definition.node.body) if isinstance(definition.node, (ast.ClassDef, ast.FunctionDef)) else []
        scoped += [definition.node.args] if isinstance(definition.node, ast.FunctionDef) else []
        inner = [n for part in scoped for n in ast.walk(part)]
        local = {n.id for n in inner if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
        local |= {a.arg for n in inner if isinstance(n, ast.arguments)
                  for a in [*n.posonlyargs, *n.args, *n.kwonlyargs, n.vararg, n.kwarg] if a is not None}
        for i, tok in enumerate(tokens):
            if tok.type != tokenize.NAME or (i and tokens[i - 1].string == "."):
                continue
            target = self._resolve(modname, tok.string) if tok.string in vars(sys.modules[modname]) else None
            end = tok.end
            if target and target[0] == "module" and i + 2 < len(tokens) and tokens[i + 1].string == ".":
                end, target = tokens[i + 2].end, self._resolve(target[1], tokens[i + 2].string)
            if not target or target[0] != "def":
                continue
            new = self.emitted[target[1]]
            if new != body[offset(tok.start):offset(end)]:
                if tok.string in local:
                    raise ValueError(f"export: {modname}.{definition.name} uses '{tok.string}' both as a local "
                                     f"and as a global that must be renamed; rename one of them in {modname}")
                edits.append((offset(tok.start), offset(end), new))
        if len(edits) != self._renames_needed(definition):  # e.g. a reference inside an f-string (Python 3.11)
            raise ValueError(f"export: cannot rename every reference in {modname}.{definition.name}; give its "
                             f"global names that other ops modules also define unique names")
        for start, end, new in reversed(edits):
            body = body[:start] + new + body[end:]
        return body

    def _renames_needed(self, definition: Definition) -> int:
        """How many references in the definition's AST stand under another name in the generated file."""
        count = 0
        for node in self._walk(definition.node, definition.kept_decorators):
            if isinstance(node, ast.Name):  # loads, and the targets of a module-level assignment
                target = self._resolve(definition.module, node.id)
                count += bool(target and target[0] == "def" and self.emitted[target[1]] != node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                outer = self._resolve(definition.module, node.value.id)
                target = self._resolve(outer[1], node.attr) if outer and outer[0] == "module" else None
                count += bool(target and target[0] == "def")
        own = (definition.module, definition.name)
        return count + (isinstance(definition.node, (ast.ClassDef, ast.FunctionDef)) and self.emitted[own] != definition.name)

    def text(self) -> str:
        """All collected definitions as source, separated as PEP 8 asks (a statement binding two names once)."""
        nodes, out = set(), []
        for d in self.order():
            if id(d.node) not in nodes:
                nodes.add(id(d.node))
                out.append(self.source(d))
        return "\n\n\n".join(out)
