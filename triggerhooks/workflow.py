"""Workflow files: a task configuration in JSON, TOML or YAML, checked with file:line locations.

The rules themselves live in :mod:`triggerhooks.config` (one schema for
``update_configuration``, workflow files and the JSON Schema). This module
reads a file, remembers where each key and value sits, and turns the
problems :func:`~triggerhooks.config.parse_configuration` reports into
``file:line:column: location: message``.
"""

from __future__ import annotations

import json
import re
import tomllib
from bisect import bisect_right
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import parse_configuration
from .exceptions import ConfigurationError, Problem
from .models import TaskConfig

__all__ = [
    "FORMATS",
    "FileProblem",
    "WorkflowFile",
    "WorkflowFileError",
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


# -- JSON --------------------------------------------------------------------------------------

_JSON_TOKEN = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*")|([{}\[\]:,])|([^\s{}\[\]:,"]+))', re.S)


class _Lines:
    def __init__(self, text: str) -> None:
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def at(self, offset: int) -> tuple[int, int]:
        line = bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1


def _json_positions(text: str, doc: WorkflowFile) -> None:
    """Record where each value of an already valid JSON text is: its key for a mapping
    entry, the value itself for an array element."""
    lines = _Lines(text)
    tokens = [(m.start(m.lastindex or 0), m.group(m.lastindex or 0))
              for m in _JSON_TOKEN.finditer(text) if m.lastindex]
    position = 0

    def value(path: KeyPath) -> None:
        nonlocal position
        offset, token = tokens[position]
        doc.positions[path] = lines.at(offset)
        position += 1
        if token == "{":
            seen: set[str] = set()
            while tokens[position][1] != "}":
                key_offset, key_token = tokens[position]
                key = json.loads(key_token)
                if key in seen:
                    doc.duplicates.append((*path, key))
                seen.add(key)
                position += 2  # the key and ":"
                value((*path, key))
                doc.positions[(*path, key)] = lines.at(key_offset)
                if tokens[position][1] == ",":
                    position += 1
            position += 1
        elif token == "[":
            index = 0
            while tokens[position][1] != "]":
                value((*path, index))
                index += 1
                if tokens[position][1] == ",":
                    position += 1
            position += 1

    if tokens:
        value(())


def _parse_json(text: str, doc: WorkflowFile) -> list[FileProblem]:
    try:
        doc.data = json.loads(text)
    except json.JSONDecodeError as exc:
        return [FileProblem("", f"invalid JSON: {exc.msg}", doc.file, exc.lineno, exc.colno)]
    _json_positions(text, doc)
    return []


# -- TOML --------------------------------------------------------------------------------------

_TOML_KEY = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_TOML_DOTTED = rf"{_TOML_KEY}(?:\s*\.\s*{_TOML_KEY})*"
_TOML_TABLE = re.compile(rf"^\s*\[\[?\s*({_TOML_DOTTED})\s*\]\]?")
_TOML_ASSIGN = re.compile(rf"^\s*({_TOML_DOTTED})\s*=")
_TOML_PART = re.compile(_TOML_KEY)
_TOML_ERROR_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


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


def _parse_toml(text: str, doc: WorkflowFile) -> list[FileProblem]:
    try:
        doc.data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = _TOML_ERROR_AT.search(message)
        line, column = (int(at.group(1)), int(at.group(2))) if at else (None, None)
        message = message[:at.start()] if at else message
        return [FileProblem("", f"invalid TOML: {message}", doc.file, line, column)]
    _toml_positions(text, doc)
    return []


# -- YAML --------------------------------------------------------------------------------------

def _yaml_positions(node: Any, path: KeyPath, doc: WorkflowFile, mark: Any = None) -> None:
    """Record where each node is: its key for a mapping entry, the node for the rest."""
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


def _parse_yaml(text: str, doc: WorkflowFile) -> list[FileProblem]:
    try:
        import yaml
    except ImportError:
        return [FileProblem("", "reading YAML needs PyYAML: pip install 'triggerhooks[yaml]'",
                            doc.file)]
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        doc.data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = "; ".join(filter(None, [exc.context, exc.problem]))
        return [FileProblem("", f"invalid YAML: {problem}", doc.file, line, column)]
    except yaml.YAMLError as exc:
        return [FileProblem("", f"invalid YAML: {exc}", doc.file)]
    finally:
        loader.dispose()
    if node is not None:
        _yaml_positions(node, (), doc)
    return []


_PARSERS = {"json": _parse_json, "toml": _parse_toml, "yaml": _parse_yaml}


# -- the public functions ------------------------------------------------------------------------

def parse_workflow(text: str, format: str, file: str = "<workflow>") -> WorkflowFile:
    """Parse workflow ``text`` in ``format`` (``json``, ``toml`` or ``yaml``).

    Raises :class:`WorkflowFileError` for a syntax error. The result's data
    is not validated yet: see :func:`validate_workflow`.
    """
    parser = _PARSERS.get(format)
    if parser is None:
        raise WorkflowFileError(file, [FileProblem(
            "", f"unknown workflow format {format!r}; known: {', '.join(_PARSERS)}", file)])
    doc = WorkflowFile(file, format, None)
    problems = parser(text, doc)
    if problems:
        raise WorkflowFileError(file, problems)
    return doc


def load_workflow(path: str | Path) -> WorkflowFile:
    """Read and parse a workflow file; its suffix (``.json``, ``.toml``, ``.yaml``/``.yml``)
    gives the format. Raises :class:`WorkflowFileError` when it cannot be read or parsed."""
    file = str(path)
    format = FORMATS.get(Path(path).suffix.lower())
    if format is None:
        raise WorkflowFileError(file, [FileProblem(
            "", "unknown workflow file type; use one of " + ", ".join(FORMATS), file)])
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowFileError(file, [FileProblem("", "no such file", file)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise WorkflowFileError(file, [FileProblem("", f"cannot read: {reason}", file)]) from None
    return parse_workflow(text, format, file)


def validate_workflow(workflow: WorkflowFile | str | Path, *,
                      known_tasks: Collection[str] | None = None,
                      known_runners: Collection[str] | None = None) -> dict[str, TaskConfig]:
    """Check a workflow file against the workflow schema and return its tasks.

    ``known_tasks`` / ``known_runners`` also check ``run`` and ``using``
    against those names. Raises :class:`WorkflowFileError` listing every
    problem with its file, line and column.
    """
    doc = workflow if isinstance(workflow, WorkflowFile) else load_workflow(workflow)
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
