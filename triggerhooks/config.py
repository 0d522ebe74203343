"""The workflow (task configuration) schema: one pydantic model, one place for the rules.

``update_configuration``, workflow files and the JSON Schema all go through
:func:`parse_configuration`, which reports every problem at once.
"""

from __future__ import annotations

import difflib
import inspect
import json
from collections.abc import Collection, Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, RootModel, ValidationError

from .core.rules import cycle_problems
from .exceptions import ConfigurationError, Problem, UnstorableKwargsError
from .models import RESERVED_TASK_NAMES, TaskConfig, name_problem
from .registries import failed_plugins_hint
from .serialization import dumps_value, safe_text

__all__ = ["TaskSpec", "Workflow", "parse_configuration", "workflow_json_schema"]


def _storable_name(name: str) -> str:
    problem = name_problem(name)
    if problem:
        raise ValueError(problem)
    return name


Name = Annotated[str, Field(min_length=1), AfterValidator(_storable_name)]

DIRECTIVES = ("after", "andEvery", "unless", "withParams", "using", "run")
_SNAKE = {"and_every": "andEvery", "with_params": "withParams"}


class TaskSpec(BaseModel):
    """One task of a workflow. Unknown directives are kept as ``extras``."""

    model_config = ConfigDict(extra="allow", validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)

    run: Name = Field(description="Name of a registered trigger task.")
    after: list[Name] = Field(
        default_factory=list,
        description="Triggers (or task names, for cascades) that must all have fired.")
    and_every: Name | None = Field(
        default=None, alias="andEvery",
        description="One more instance for each firing of this trigger.")
    unless: list[Name] = Field(
        default_factory=list,
        description="Once all of these fired, instances not started yet are abandoned.")
    with_params: dict[str, dict[str, JsonValue]] = Field(
        default_factory=dict, alias="withParams",
        description="Static kwargs merged under the trigger kwargs, keyed like them.")
    using: Name | None = Field(default=None, description="Task runner for this task.")


class Workflow(RootModel[dict[Name, TaskSpec]]):
    """A whole workflow: task name -> task."""


def workflow_json_schema() -> dict[str, Any]:
    """The JSON Schema of a workflow file."""
    schema = Workflow.model_json_schema(by_alias=True)
    schema["title"] = "triggerhooks workflow"
    return schema


_LOCATION_CHARS = 120
"""A location longer than this (a value nested very deeply) is shortened in the middle."""


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    text = safe_text(text)
    if len(text) > _LOCATION_CHARS:
        text = f"{text[:60]}...{text[-(_LOCATION_CHARS - 63):]}"
    return text


def _registry_problems(name: str, run: str | None, using: str | None,
                       known_tasks: Collection[str] | None,
                       known_runners: Collection[str] | None) -> list[Problem]:
    problems = []
    if known_tasks is not None and run is not None and run not in known_tasks:
        listed = ", ".join(sorted(known_tasks)) or "none"
        problems.append(Problem(f"{name}.run", f"unknown trigger task {run!r}; known: {listed}"
                                + _failed_plugins()))
    if known_runners is not None and using is not None and using not in known_runners:
        listed = ", ".join(sorted(known_runners))
        problems.append(Problem(f"{name}.using",
                                f"unknown task runner {using!r}; known: {listed}"
                                + _failed_plugins()))
    return problems


def _failed_plugins() -> str:
    """`` (plugins that failed to load: ...)`` for a name no registry knows, as a registry
    lookup says it (a missing name is often a plugin that did not load)."""
    hint = failed_plugins_hint()
    return f" ({hint})" if hint else ""


def _extras_problems(name: str, extras: Mapping[str, Any]) -> list[Problem]:
    """Problems among a task's unknown directives (kept as ``extras``): a likely typo of a
    directive, a directive given twice (camelCase and snake_case), a value that is not JSON."""
    problems = []
    for key, value in extras.items():
        if key in _SNAKE:
            problems.append(Problem(f"{name}.{key}", f"given twice, as {key!r} and {_SNAKE[key]!r}"))
            continue
        guess = next(iter(difflib.get_close_matches(key, DIRECTIVES, 1, 0.75)), None)
        if guess:
            problems.append(Problem(f"{name}.{key}", f"unknown directive (did you mean {guess!r}?)"))
            continue
        try:
            dumps_value(value, "the value")
        except UnstorableKwargsError as exc:
            problems.append(Problem(f"{name}.{key}", str(exc)))
    return problems


def _q(value: Any) -> str:
    """A value as it is written in a workflow (JSON, and Python alike)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def _registered_name(value: Any) -> tuple[str, str] | None:
    """A task or runner given where its registered name belongs: (what it is, the name)."""
    task = getattr(value, "__trigger_task__", None)
    if isinstance(getattr(task, "name", None), str):
        return "the function", task.name  # type: ignore[union-attr]
    if inspect.isclass(value):
        key = getattr(value, "name", None)
        return ("the class", key) if isinstance(key, str) else None
    key = getattr(type(value), "name", None)
    if isinstance(key, str) and type(value).__module__ != "builtins":
        return f"an instance of {type(value).__name__}", key
    return None


def _slip(field: str, value: Any) -> str | None:
    """What to write instead, for the common slips in a task's directives."""
    given = _registered_name(value)
    if given is not None and field in ("run", "using"):
        kind = "trigger task" if field == "run" else "task runner"
        return (f"{_q(field)} takes the name a {kind} is registered under, not {given[0]}: "
                f"write {_q(field)}: {_q(given[1])}")
    if field == "run" and inspect.isfunction(value):
        default = f"{value.__module__}.{value.__qualname__}"
        return (f'"run" takes the name of a registered trigger task, not a function: declare '
                f"{value.__name__} with @trigger_task (it is then registered as {_q(default)}, "
                'or under name=...) and write "run": that name')
    return None


def _hint(field: str, value: Any, message: str) -> str:
    """A pydantic message, with what to write instead for the usual shapes."""
    if field in ("after", "unless") and isinstance(value, str):
        return f"{message}; write a list: {_q(field)}: [{_q(value)}]"
    if field in ("andEvery", "and_every") and isinstance(value, (list, tuple)) and value:
        others = ' (and list the others in "after")' if len(value) > 1 else ""
        return f"{message}; it takes one trigger: {_q(field)}: {_q(value[0])}{others}"
    if field == "run" and message == "Field required":
        return (f"{message}; name the registered trigger task to run: "
                '"run": "app.tasks.ImportSubject"')
    return message


def _explain(loc: tuple[int | str, ...], message: str, raw: Any) -> str:
    field = loc[0] if loc else None
    if not isinstance(field, str) or not isinstance(raw, Mapping):
        return message
    value = raw.get(field)
    return _slip(field, value) or _hint(field, value, message)


def _params_problems(name: str, with_params: Mapping[Any, Any]) -> list[Problem]:
    """``withParams`` entries that cannot be stored as kwargs (NaN, infinities, too deep)."""
    problems = []
    for trigger, params in with_params.items():
        if not isinstance(trigger, str):
            continue  # pydantic reports it
        problem = name_problem(trigger)
        if problem:
            problems.append(Problem(safe_text(f"{name}.withParams.{trigger}"), problem))
            continue
        try:
            dumps_value(params, "the value")
        except UnstorableKwargsError as exc:
            problems.append(Problem(f"{name}.withParams.{trigger}", str(exc)))
    return problems


def _task_name_problem(name: object) -> Problem | None:
    if not isinstance(name, str) or not name:
        return Problem(safe_text(repr(name)), "a task name must be a non-empty string")
    problem = name_problem(name)
    if problem:
        return Problem(safe_text(name), problem)
    if name in RESERVED_TASK_NAMES:
        return Problem(name, f"{name!r} is reserved by triggerhooks: it cannot name a task "
                             "(tasks may wait for it in 'after')")
    return None


def _never_runs(name: str) -> Problem:
    return Problem(name, "needs 'after' or 'andEvery': it could never run")


def _invalid_task_problems(name: str, raw: Mapping[Any, Any], failed: set[int | str],
                           known_tasks: Collection[str] | None,
                           known_runners: Collection[str] | None) -> list[Problem]:
    """What can still be checked on a task that failed validation: its unknown
    directives, its ``withParams``, whether it names any trigger, and the names it runs
    and uses."""
    extras = {key: value for key, value in raw.items()
              if isinstance(key, str) and key not in DIRECTIVES
              and (key not in _SNAKE or _SNAKE[key] in raw)}
    problems = _extras_problems(name, extras)
    params = raw.get("withParams", raw.get("with_params"))
    if not failed & {"withParams", "with_params"} and isinstance(params, Mapping):
        problems += _params_problems(name, params)
    triggers = {"after", "andEvery", "and_every"}
    if not failed & triggers and not raw.get("after") and all(
            raw.get(key) is None for key in ("andEvery", "and_every")):
        problems.append(_never_runs(name))
    run, using = raw.get("run"), raw.get("using")
    problems += _registry_problems(
        name, run if isinstance(run, str) and "run" not in failed else None,
        using if isinstance(using, str) and "using" not in failed else None,
        known_tasks, known_runners)
    return problems


def _validation_problems(name: str, exc: ValidationError,
                         raw: Any) -> tuple[list[Problem], set[int | str]]:
    """The problems pydantic found (with what to write instead for the usual slips), and
    the directives they are in."""
    problems: list[Problem] = []
    failed: set[int | str] = set()
    for error in exc.errors():
        message = error["msg"]
        if error["type"] == "string_unicode":  # a lone surrogate: say so
            if not error["loc"]:
                continue  # in a key: _unstorable_keys reports it
            message = name_problem(str(error["input"])) or message
        else:
            message = _explain(error["loc"], message, raw)
        problems.append(Problem(_location((name, *error["loc"])), message))
        failed.add(error["loc"][0] if error["loc"] else "")
    return problems, failed


def _unstorable_keys(name: str, raw: Any) -> tuple[Any, list[Problem]]:
    """``raw`` without the keys UTF-8 cannot hold (a lone surrogate), and a problem for each:
    the rest is still checked, so every problem is reported at once."""
    if not isinstance(raw, Mapping):
        return raw, []
    bad = {key: problem for key in raw
           if isinstance(key, str) and (problem := name_problem(key))}
    if not bad:
        return raw, []
    return ({key: value for key, value in raw.items() if key not in bad},
            [Problem(safe_text(f"{name}.{key}"), problem) for key, problem in bad.items()])


def _parse_task(name: object, raw: Any, known_tasks: Collection[str] | None,
                known_runners: Collection[str] | None) -> tuple[TaskConfig | None, list[Problem]]:
    """One task of a configuration, and every problem with it (no config if it is invalid)."""
    problem = _task_name_problem(name)
    if problem is not None:
        return None, [problem]
    assert isinstance(name, str)
    if isinstance(raw, TaskConfig):
        raw = raw.to_json()
    raw, key_problems = _unstorable_keys(name, raw)
    try:
        spec = TaskSpec.model_validate(raw)
    except ValidationError as exc:
        problems, failed = _validation_problems(name, exc, raw)
        if isinstance(raw, Mapping):  # still check what is well-formed: every problem at once
            problems += _invalid_task_problems(name, raw, failed, known_tasks, known_runners)
        return None, key_problems + problems
    extras = dict(spec.model_extra or {})
    problems = _extras_problems(name, extras) + _params_problems(name, spec.with_params)
    if not spec.after and spec.and_every is None:
        problems.append(_never_runs(name))
    problems += _registry_problems(name, spec.run, spec.using, known_tasks, known_runners)
    if key_problems:
        return None, key_problems + problems
    return TaskConfig(
        name=name,
        run=spec.run,
        after=tuple(dict.fromkeys(spec.after)),
        and_every=spec.and_every,
        unless=tuple(dict.fromkeys(spec.unless)),
        with_params=spec.with_params,
        using=spec.using,
        extras=extras,
    ), problems


def parse_configuration(
    configuration: Mapping[str, Any],
    *,
    known_tasks: Collection[str] | None = None,
    known_runners: Collection[str] | None = None,
    existing: Mapping[str, TaskConfig] | None = None,
    check_cycles: bool = True,
) -> dict[str, TaskConfig]:
    """Validate a workflow mapping and return its tasks, or raise one
    :class:`ConfigurationError` that lists every problem.

    ``known_tasks`` / ``known_runners`` check ``run`` and ``using`` against the
    registries; ``existing`` tasks take part in the cycle check. ``check_cycles=False``
    leaves that check to the caller (the manager's transition checks against the stored
    tasks), except when another problem is found: cycles are then listed with it, so every
    problem is still reported at once.
    """
    problems: list[Problem] = []
    if not isinstance(configuration, Mapping):
        raise ConfigurationError([Problem("", "a configuration must be a mapping of task "
                                              f"names to tasks, not {type(configuration).__name__}")])
    configs: dict[str, TaskConfig] = {}
    for name, raw in configuration.items():
        config, found = _parse_task(name, raw, known_tasks, known_runners)
        problems += found
        if config is not None:
            configs[name] = config
    if check_cycles or problems:
        problems += cycle_problems({**(existing or {}), **configs}, configs)
    if problems:
        raise ConfigurationError(problems)
    return configs
