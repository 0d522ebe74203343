"""Workflow files: a task configuration in JSON, TOML or YAML, checked with file:line locations.

The rules themselves live in :mod:`triggerhooks.config` (one schema for
``update_configuration``, workflow files and the JSON Schema). This module
reads a file, remembers where each key and value sits, and turns the
problems :func:`~triggerhooks.config.parse_configuration` reports into
``file:line:column: location: message``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import parse_configuration
from .exceptions import ConfigurationError, InvalidSettingError, Problem
from .models import TaskConfig

__all__ = [
    "FORMATS",
    "LIMIT_ENVS",
    "FileProblem",
    "WorkflowFile",
    "WorkflowFileError",
    "WorkflowLimits",
    "load_workflow",
    "parse_workflow",
    "validate_workflow",
]

Key = str | int
KeyPath = tuple[Key, ...]

FORMATS = {".json": "json", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}
"""File suffix -> format name."""


@dataclass(frozen=True, slots=True)
class FileProblem(Problem):
    """A problem in a workflow file: where (file, line, column) and in which key."""

    file: str = ""
    line: int | None = None
    column: int | None = None

    @property
    def position(self) -> str:
        """``file:line:column`` (as much of it as is known)."""
        text = self.file
        if self.line is not None:
            text += f":{self.line}"
            if self.column is not None:
                text += f":{self.column}"
        return text

    def __str__(self) -> str:
        parts = [p for p in (self.position, self.location) if p]
        return ": ".join([*parts, self.message])


class WorkflowFileError(ConfigurationError):
    """A workflow file cannot be read or is not a valid workflow; ``problems`` lists every
    problem as a :class:`FileProblem`."""

    def __init__(self, file: str, problems: list[FileProblem]) -> None:
        super().__init__(problems)
        self.file = file
        count = len(problems)
        lines = "\n".join(f"  {problem}" for problem in problems)
        self.args = (f"{file}: {count} problem{'s' * (count != 1)}:\n{lines}",)


@dataclass(slots=True)
class WorkflowFile:
    """A parsed workflow file: its data and the line and column of each key path."""

    file: str
    format: str
    data: Any
    positions: dict[KeyPath, tuple[int, int | None]] = field(default_factory=dict)
    duplicates: list[KeyPath] = field(default_factory=list)

    def position_of(self, path: KeyPath) -> tuple[int, int | None] | None:
        """Line and column of ``path``, or of its nearest known ancestor."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found is not None:
                return found
        return None

    def problem(self, path: KeyPath, location: str, message: str) -> FileProblem:
        found = self.position_of(path)
        line, column = found if found else (None, None)
        return FileProblem(location, message, self.file, line, column)

    def locate(self, error: ConfigurationError) -> list[FileProblem]:
        """The problems of ``error`` (found in :attr:`data`) with this file's lines."""
        return [self.problem(resolve_location(p.location, self.data), p.location, p.message)
                for p in error.problems]


# -- locating problems -------------------------------------------------------------------------

_INDEX = re.compile(r"\[(\d+)\]")


def resolve_location(location: str, data: Any) -> KeyPath:
    """Turn a location such as ``t_x.withParams.a[0]`` back into a key path of ``data``.

    Keys may contain dots, so each step takes the longest key of the current
    mapping that the rest of the location starts with; the path stops where
    the data does.
    """
    path: list[Key] = []
    node, rest = data, location
    while rest:
        match = _INDEX.match(rest)
        if match:
            index = int(match.group(1))
            if not isinstance(node, list) or index >= len(node):
                break
            path.append(index)
            node, rest = node[index], rest[match.end():]
            continue
        if path and rest.startswith("."):
            rest = rest[1:]
        if not isinstance(node, Mapping):
            break
        keys = [k for k in node if isinstance(k, str) and rest.startswith(k)
                and (len(rest) == len(k) or rest[len(k)] in ".[")]
        if not keys:
            break
        key = max(keys, key=len)
        path.append(key)
        node, rest = node[key], rest[len(key):]
    return tuple(path)


# -- limits ------------------------------------------------------------------------------------

LIMIT_ENVS = {
    "max_bytes": "TRIGGERHOOKS_WORKFLOW_MAX_BYTES",
    "max_depth": "TRIGGERHOOKS_WORKFLOW_MAX_DEPTH",
    "max_nodes": "TRIGGERHOOKS_WORKFLOW_MAX_NODES",
}
"""The environment variable that sets each limit of :class:`WorkflowLimits`."""


@dataclass(frozen=True, slots=True)
class WorkflowLimits:
    """What reading one workflow file may cost at most: a file past a limit is refused with a
    :class:`WorkflowFileError` that names the limit, before it is parsed further.

    The defaults are far above what workflows need (a workflow's own structure is 4 levels
    deep: the tasks, a task, its ``withParams``, a trigger's parameters). Raise them for one
    call (``load_workflow(path, limits=WorkflowLimits(max_bytes=...))``)
    or for every reader, the command line included, with the variables of
    :data:`LIMIT_ENVS`."""

    max_bytes: int = 4 * 1024 * 1024
    """The size of the file, in bytes (of UTF-8)."""
    max_depth: int = 64
    """How deeply its mappings and lists nest (the top mapping is level 1)."""
    max_nodes: int = 100_000
    """How many keys and values it holds, each YAML alias counted as what it repeats (a
    "billion laughs" file of a few lines repeats one value billions of times)."""

    def __post_init__(self) -> None:
        for name in LIMIT_ENVS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidSettingError(
                    f"workflow limit {name} must be a positive whole number, not {value!r}")

    @classmethod
    def from_env(cls) -> WorkflowLimits:
        """The defaults, each replaced by its variable of :data:`LIMIT_ENVS` when set."""
        given: dict[str, int] = {}
        for name, env in LIMIT_ENVS.items():
            raw = os.environ.get(env, "").strip()
            if not raw:
                continue
            digits = raw.replace("_", "")
            if not (digits.isascii() and digits.isdigit() and len(digits) <= 18) or not int(digits):
                raise InvalidSettingError(f"${env} must be a positive whole number, not {raw!r}")
            given[name] = int(digits)
        return cls(**given)

    def exceeded(self, name: str, what: str) -> str:
        """The message for a file past the limit ``name``: ``what``, the limit, how to raise it."""
        return (f"{what} (the limit is {getattr(self, name):,}; raise it with "
                f"${LIMIT_ENVS[name]} or WorkflowLimits({name}=...))")


class _Refused(Exception):
    """A text past a limit, or not of its format: becomes one :class:`FileProblem`."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.line, self.column = line, column


def _too_many(limits: WorkflowLimits, line: int | None = None, column: int | None = None,
              aliases: bool = False) -> _Refused:
    what = f"more than {limits.max_nodes:,} keys and values"
    if aliases:
        what += " once its aliases are expanded"
    return _Refused(limits.exceeded("max_nodes", what), line, column)


def _too_deep(limits: WorkflowLimits, line: int | None = None,
              column: int | None = None) -> _Refused:
    what = f"nested more than {limits.max_depth} levels deep"
    return _Refused(limits.exceeded("max_depth", what), line, column)


def _too_deep_for_python() -> _Refused:
    """What a parser that recursed past Python's recursion limit (a ``max_depth`` raised
    that high) reports."""
    return _Refused(f"nested too deeply to be parsed (deeper than Python's recursion limit, "
                    f"{sys.getrecursionlimit()}, allows)")


def _check_tree(data: Any, limits: WorkflowLimits) -> None:
    """Refuse parsed data (a tree: TOML) past the depth or node limits; no recursion."""
    nodes = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        children: Iterable[Any]
        if isinstance(node, dict):
            nodes += len(node)  # its keys
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if nodes > limits.max_nodes:
            raise _too_many(limits)
        if depth > limits.max_depth:
            raise _too_deep(limits)
        stack.extend((child, depth + 1) for child in children)


# -- JSON --------------------------------------------------------------------------------------

# Possessive quantifiers (*+, ++): the regex engine keeps no state per character of a long
# string, so a 10 MB string costs what it holds.
_JSON_TOKEN = re.compile(r'[ \t\n\r]*+(?:("(?:[^"\\]|\\.)*+")|([{}\[\]:,])|([^\s{}\[\]:,"]++))',
                         re.S)


class _Lines:
    """Line and column of offsets asked for in increasing order, in one pass over the text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.offset = 0
        self.line = 1
        self.start = 0

    def at(self, offset: int) -> tuple[int, int]:
        if offset < self.offset:
            self.offset, self.line, self.start = 0, 1, 0
        newlines = self.text.count("\n", self.offset, offset)
        if newlines:
            self.line += newlines
            self.start = self.text.rfind("\n", self.offset, offset) + 1
        self.offset = offset
        return self.line, offset - self.start + 1


@dataclass(slots=True)
class _Open:
    """A JSON object or array whose end has not been read yet."""

    path: KeyPath
    is_object: bool
    index: int = 0
    key: str | None = None
    seen: set[str] = field(default_factory=set)

    def child(self) -> KeyPath:
        return (*self.path, self.key if self.is_object and self.key is not None else self.index)


class _JsonScan:
    """Where each value of a valid JSON text is (its key for a mapping entry, the value
    itself for an array element), its duplicate keys, and its depth and size against the
    limits: one pass over the tokens, no recursion, memory for the positions only."""

    def __init__(self, text: str, doc: WorkflowFile, limits: WorkflowLimits) -> None:
        self.text, self.doc, self.limits = text, doc, limits
        self.lines = _Lines(text)
        self.stack: list[_Open] = []
        self.nodes = 0

    def run(self) -> None:
        for match in _JSON_TOKEN.finditer(self.text):
            group = match.lastindex
            if group is None:
                continue
            offset, token = match.start(group), match.group(group)
            if group == 2 and token in ",:}]":
                self.punctuation(token)
                continue
            self.nodes += 1
            if self.nodes > self.limits.max_nodes:
                raise _too_many(self.limits, *self.lines.at(offset))
            top = self.stack[-1] if self.stack else None
            if top is not None and top.is_object and top.key is None:
                self.key(top, token, offset)
            else:
                self.value(top, token, offset)

    def punctuation(self, token: str) -> None:
        if token in "}]":
            self.stack.pop()
        elif token == ",":
            top = self.stack[-1]
            if top.is_object:
                top.key = None
            else:
                top.index += 1

    def key(self, top: _Open, token: str, offset: int) -> None:
        key = json.loads(token)
        if key in top.seen:
            self.doc.duplicates.append((*top.path, key))
        top.seen.add(key)
        top.key = key
        self.doc.positions[(*top.path, key)] = self.lines.at(offset)

    def value(self, top: _Open | None, token: str, offset: int) -> None:
        path = () if top is None else top.child()
        if top is None or not top.is_object:
            self.doc.positions[path] = self.lines.at(offset)
        if token in ("{", "["):
            if len(self.stack) >= self.limits.max_depth:
                raise _too_deep(self.limits, *self.lines.at(offset))
            self.stack.append(_Open(path, token == "{"))


def _parse_json(text: str, doc: WorkflowFile, limits: WorkflowLimits) -> None:
    try:
        doc.data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Refused(f"invalid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    except RecursionError:
        raise _too_deep_for_python() from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise _Refused(f"invalid JSON: {exc}") from None
    _JsonScan(text, doc, limits).run()


# -- TOML --------------------------------------------------------------------------------------

_TOML_KEY = r'(?:[A-Za-z0-9_-]++|"(?:[^"\\]|\\.)*+"|\'[^\']*+\')'
_TOML_DOTTED = rf"{_TOML_KEY}(?:\s*+\.\s*+{_TOML_KEY})*+"
_TOML_TABLE = re.compile(rf"^\s*+\[\[?\s*+({_TOML_DOTTED})\s*+\]\]?")
_TOML_ASSIGN = re.compile(rf"^\s*+({_TOML_DOTTED})\s*+=")
_TOML_PART = re.compile(_TOML_KEY)
_TOML_ERROR_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
# What nests in TOML text: brackets and dotted keys; strings and comments are skipped whole.
_TOML_LEX = re.compile(r"""
    "{3}(?:[^"\\]|\\.|"(?!""))*+"{3,5}
  | '{3}(?:[^']|'(?!''))*+'{3,5}
  | "(?:[^"\\\n]|\\.)*+"
  | '[^'\n]*+'
  | \#[^\n]*+
  | [\[\]{}.=,\n]
  | [^\s"'\#\[\]{}.=,]++
  | [ \t\r]++
""", re.X | re.S)


def _toml_nesting(text: str, limits: WorkflowLimits) -> None:
    """Refuse TOML text whose brackets nest, or whose keys have more dotted parts, than
    ``max_depth`` allows, before it is parsed: tomllib recurses into brackets, and takes
    time and memory that grow with the square of a key's parts."""
    depth = parts = 0
    dotted = False
    for match in _TOML_LEX.finditer(text):
        first = match.group()[0]
        if first in " \t\r#":
            continue
        if first == ".":
            dotted = True
            continue
        if first in "[{":
            depth, parts = depth + 1, 0
        elif first in "]}":
            depth, parts = max(0, depth - 1), 0
        elif first in "=,\n":
            parts = 0
        else:
            parts = parts + 1 if dotted else 1
        dotted = False
        if depth > limits.max_depth or parts > limits.max_depth:
            start = match.start()
            raise _too_deep(limits, text.count("\n", 0, start) + 1,
                            start - text.rfind("\n", 0, start))


def _toml_keys(dotted: str) -> KeyPath:
    keys: list[Key] = []
    for part in _TOML_PART.findall(dotted):
        if part.startswith('"'):
            keys.append(json.loads(part))
        elif part.startswith("'"):
            keys.append(part[1:-1])
        else:
            keys.append(part)
    return tuple(keys)


def _toml_positions(text: str, doc: WorkflowFile) -> None:
    """The line of each table header and key assignment (tomllib reports no positions).

    Array elements and inline tables are placed on the line of their key.
    """
    table: KeyPath = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _TOML_TABLE.match(line)
        if header:
            table = _toml_keys(header.group(1))
            doc.positions.setdefault(table, (number, None))
            continue
        assign = _TOML_ASSIGN.match(line)
        if assign:
            keys = _toml_keys(assign.group(1))
            for end in range(1, len(keys) + 1):
                doc.positions.setdefault((*table, *keys[:end]), (number, None))


def _parse_toml(text: str, doc: WorkflowFile, limits: WorkflowLimits) -> None:
    _toml_nesting(text, limits)
    try:
        doc.data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = _TOML_ERROR_AT.search(message)
        line, column = (int(at.group(1)), int(at.group(2))) if at else (None, None)
        message = message[:at.start()] if at else message
        raise _Refused(f"invalid TOML: {message}", line, column) from None
    except RecursionError:
        raise _too_deep_for_python() from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise _Refused(f"invalid TOML: {exc}") from None
    _check_tree(doc.data, limits)
    _toml_positions(text, doc)


# -- YAML --------------------------------------------------------------------------------------

def _yaml_positions(node: Any, path: KeyPath, doc: WorkflowFile, mark: Any = None) -> None:
    """Record where each node is: its key for a mapping entry, the node for the rest.

    Walks aliases as the values they repeat, on a node graph :func:`_yaml_expansion`
    bounded: at most ``max_nodes`` steps, ``max_depth`` deep."""
    import yaml

    mark = mark or node.start_mark
    doc.positions[path] = (mark.line + 1, mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is None:
                continue
            if key in seen:
                doc.duplicates.append((*path, key))
            seen.add(key)
            _yaml_positions(value_node, (*path, key), doc, key_node.start_mark)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _yaml_positions(item, (*path, index), doc)


def _yaml_children(node: Any) -> list[Any]:
    """The nodes a YAML node holds (a mapping's keys and values); none for a scalar."""
    value = node.value
    if isinstance(value, list):
        return [part for item in value for part in (item if isinstance(item, tuple) else (item,))]
    return []


def _yaml_expansion(root: Any, limits: WorkflowLimits, alias: tuple[int, int] | None) -> None:
    """Refuse a YAML node graph that, its aliases expanded, holds more than ``max_nodes``
    nodes or nests deeper than ``max_depth``, or that holds itself (a recursive alias).

    Each node is visited once (sizes and depths are memoized), so this costs what the
    file holds, however often its aliases repeat it; ``alias`` is where the first one is."""
    done: dict[int, tuple[int, int]] = {}
    opened: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    line, column = alias or (None, None)
    while stack:
        node, finished = stack.pop()
        key = id(node)
        children = _yaml_children(node)
        if finished:
            opened.discard(key)
            size = 1 + sum(done[id(child)][0] for child in children)
            depth = max((done[id(child)][1] for child in children), default=0) + (
                0 if isinstance(node.value, str) else 1)
            if size > limits.max_nodes:
                raise _too_many(limits, line, column, aliases=alias is not None)
            if depth > limits.max_depth:
                raise _too_deep(limits, line, column)
            done[key] = (size, depth)
        elif key not in done:
            if key in opened:
                raise _Refused("a YAML alias refers to a node that holds it (a recursive "
                               "alias): a workflow cannot contain itself", line, column)
            opened.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in done)


def _yaml_loader(text: str, limits: WorkflowLimits) -> Any:
    """A safe loader that refuses collections nested deeper than ``max_depth`` as it
    composes them (the composer recurses into them), and notes where the first alias is."""
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0
        first_alias: tuple[int, int] | None = None

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            mark = event.start_mark
            if isinstance(event, yaml.AliasEvent) and self.first_alias is None:
                self.first_alias = (mark.line + 1, mark.column + 1)
            nests = int(isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)))
            self.depth += nests
            try:
                if self.depth > limits.max_depth:
                    raise _too_deep(limits, mark.line + 1, mark.column + 1)
                return super().compose_node(parent, index)
            finally:
                self.depth -= nests

    return Loader(text)


def _compose_yaml(text: str, doc: WorkflowFile, limits: WorkflowLimits) -> Any:
    """The document's node graph, checked against the limits before it is constructed
    (into :attr:`WorkflowFile.data`)."""
    import yaml

    loader = None
    try:
        loader = _yaml_loader(text, limits)  # reads the text: refuses what YAML cannot hold
        node = loader.get_single_node()
        if node is not None:
            _yaml_expansion(node, limits, loader.first_alias)
            doc.data = loader.construct_document(node)
        return node
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = "; ".join(filter(None, [exc.context, exc.problem]))
        raise _Refused(f"invalid YAML: {problem}", line, column) from None
    except yaml.YAMLError as exc:
        raise _Refused(f"invalid YAML: {exc}") from None
    except RecursionError:
        raise _too_deep_for_python() from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise _Refused(f"invalid YAML: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _parse_yaml(text: str, doc: WorkflowFile, limits: WorkflowLimits) -> None:
    try:
        import yaml  # noqa: F401
    except ImportError:
        raise _Refused("reading YAML needs PyYAML: pip install 'triggerhooks[yaml]'") from None
    node = _compose_yaml(text, doc, limits)
    if node is not None:
        _yaml_positions(node, (), doc)


_PARSERS = {"json": _parse_json, "toml": _parse_toml, "yaml": _parse_yaml}


# -- the public functions ------------------------------------------------------------------------

def parse_workflow(text: str, format: str, file: str = "<workflow>",
                   limits: WorkflowLimits | None = None) -> WorkflowFile:
    """Parse workflow ``text`` in ``format`` (``json``, ``toml`` or ``yaml``).

    Raises :class:`WorkflowFileError` for a syntax error or a text past ``limits``
    (default: :meth:`WorkflowLimits.from_env`). The result's data is not validated
    yet: see :func:`validate_workflow`.
    """
    parser = _PARSERS.get(format)
    if parser is None:
        raise WorkflowFileError(file, [FileProblem(
            "", f"unknown workflow format {format!r}; known: {', '.join(_PARSERS)}", file)])
    limits = limits or WorkflowLimits.from_env()
    doc = WorkflowFile(file, format, None)
    try:
        if len(text) > limits.max_bytes or len(text.encode("utf-8", "surrogatepass")) > (
                limits.max_bytes):
            raise _Refused(limits.exceeded("max_bytes", f"larger than {limits.max_bytes:,} bytes"))
        parser(text, doc, limits)
    except _Refused as refused:
        raise WorkflowFileError(file, [FileProblem("", str(refused), file, refused.line,
                                                   refused.column)]) from None
    return doc


def _read(path: str | Path, file: str, limits: WorkflowLimits) -> str:
    """The text of a workflow file; never more than ``max_bytes`` (and one) of it is read."""
    try:
        with open(path, "rb") as stream:
            raw = stream.read(limits.max_bytes + 1)
    except FileNotFoundError:
        raise WorkflowFileError(file, [FileProblem("", "no such file", file)]) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise WorkflowFileError(file, [FileProblem("", f"cannot read: {reason}", file)]) from None
    if len(raw) > limits.max_bytes:
        raise WorkflowFileError(file, [FileProblem("", limits.exceeded(
            "max_bytes", f"larger than {limits.max_bytes:,} bytes"), file)])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkflowFileError(file, [FileProblem("", f"cannot read: {exc}", file)]) from None


def load_workflow(path: str | Path, limits: WorkflowLimits | None = None) -> WorkflowFile:
    """Read and parse a workflow file; its suffix (``.json``, ``.toml``, ``.yaml``/``.yml``)
    gives the format. Raises :class:`WorkflowFileError` when it cannot be read or parsed,
    or is past ``limits`` (default: :meth:`WorkflowLimits.from_env`)."""
    file = str(path)
    format = FORMATS.get(Path(path).suffix.lower())
    if format is None:
        raise WorkflowFileError(file, [FileProblem(
            "", "unknown workflow file type; use one of " + ", ".join(FORMATS), file)])
    limits = limits or WorkflowLimits.from_env()
    return parse_workflow(_read(path, file, limits), format, file, limits)


def validate_workflow(workflow: WorkflowFile | str | Path, *,
                      known_tasks: Collection[str] | None = None,
                      known_runners: Collection[str] | None = None,
                      limits: WorkflowLimits | None = None) -> dict[str, TaskConfig]:
    """Check a workflow file against the workflow schema and return its tasks.

    ``known_tasks`` / ``known_runners`` also check ``run`` and ``using``
    against those names; ``limits`` bound reading a file given by its path (see
    :func:`load_workflow`). Raises :class:`WorkflowFileError` listing every
    problem with its file, line and column.
    """
    doc = workflow if isinstance(workflow, WorkflowFile) else load_workflow(workflow, limits)
    problems = [doc.problem(path, _key_path_text(path), "duplicate key: the last one would silently win")
                for path in doc.duplicates]
    try:
        configs = parse_configuration(doc.data, known_tasks=known_tasks,
                                      known_runners=known_runners)
    except ConfigurationError as exc:
        problems += doc.locate(exc)
    if problems:
        problems.sort(key=lambda p: p.line or 0)
        raise WorkflowFileError(doc.file, problems)
    return configs


def _key_path_text(path: KeyPath) -> str:
    """A key path as people write it (``a.b[0].c``), for messages; not a Python dotted name."""
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else key)
    return text
