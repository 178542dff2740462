"""Resolving names on the command line into tasks and methods.

* ``all``, comma lists, and quoted glob patterns (``'neuroscale*'``) over the registered
  names and variants.
* Variants: ``name:param=value[,param=value]`` (``fno:n_modes=12,width=64``); values are
  parsed to the type of the parameter's default. A wrapper's ``base`` is itself a method
  spec with at most one parameter (``conformal:base=fno:width=32``), built here.
* External methods: ``package.module:Class`` (optionally ``:param=value,...``), or any
  class published under the entry-point group ``neuroscale_bench.methods``.
* External tasks the same way: ``package.module:Class`` (optionally ``:field=value,...``),
  or any class published under ``neuroscale_bench.tasks``; a task class must satisfy the
  `nskernel.Task` protocol (`task_problems` says what it lacks).

Every bad name or parameter raises `UsageError` listing the valid choices.
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import importlib
import inspect
from collections.abc import Iterable
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from nskernel import SIZES, Method, Metric, WrapperMethod
from nskernel.errors import UsageError

ENTRY_POINT_GROUP = "neuroscale_bench.methods"
TASK_ENTRY_POINT_GROUP = "neuroscale_bench.tasks"


def split_list(text: str) -> list[str]:
    """Split a comma list where a variant's own ``a=1,b=2`` parameters stay together."""
    out: list[str] = []
    for tok in (t.strip() for t in text.split(",")):
        if not tok:
            continue
        if out and "=" in tok and ":" not in tok.split("=", 1)[0]:  # name=value (the value may hold ':')
            out[-1] += "," + tok
        else:
            out.append(tok)
    return out


def parse_value(text: str, default: Any) -> Any:
    """Parse ``text`` to the type of ``default`` (bool/int/float/str/tuple)."""
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"expected a boolean, got {text!r}")
    if isinstance(default, int):
        f = float(text)
        if not f.is_integer():
            raise ValueError(f"expected an integer, got {text!r}")
        return int(f)
    if isinstance(default, float):
        return float(text)
    if isinstance(default, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``'fno:n_modes=12,width=64'`` -> ``('fno', {'n_modes': '12', 'width': '64'})``.
    ``'pkg.mod:Cls:a=1'`` -> ``('pkg.mod:Cls', {'a': '1'})``."""
    parts = spec.split(":")
    if len(parts) >= 2 and "=" not in parts[1]:  # external module:Class
        base, rest = ":".join(parts[:2]), ":".join(parts[2:])
    else:
        base, rest = parts[0], ":".join(parts[1:])
    params: dict[str, str] = {}
    for item in filter(None, rest.split(",")):
        if "=" not in item:
            raise UsageError(f"bad parameter {item!r} in {spec!r}: expected name=value")
        key, value = item.split("=", 1)
        params[key.strip()] = value.strip()
    return base, params


def canonical(base: str, params: dict[str, Any]) -> str:
    """The display name used in records and tables (parameters in given order)."""
    return base if not params else base + ":" + ",".join(f"{k}={v}" for k, v in params.items())


# --------------------------------------------------------------------------- methods
@lru_cache(maxsize=1)
def _entry_point_methods() -> dict[str, type]:
    found: dict[str, type] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.load()
    return found


def method_classes() -> dict[str, type]:
    from methods import METHODS

    merged = dict(METHODS)
    for name, cls in _entry_point_methods().items():
        if name in merged:
            raise UsageError(f"entry point method {name!r} clashes with a built-in method")
        merged[name] = cls
    return merged


def _load_external(base: str, kind: str) -> Any:
    """The attribute ``Class`` of ``package.module:Class`` (UsageError if it cannot load)."""
    module, _, attr = base.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise UsageError(f"cannot load external {kind} {base!r}: {e}") from None


def _method_class(base: str) -> type:
    classes = method_classes()
    if base in classes:
        return classes[base]
    if ":" in base:
        cls = _load_external(base, "method")
        if not (isinstance(cls, type) and issubclass(cls, Method)) or inspect.isabstract(cls):
            raise UsageError(f"external method {base!r} is not a concrete subclass of nskernel.Method")
        return cls
    raise UsageError(f"unknown method {base!r}; valid: {', '.join(sorted(classes))}, or module:Class")


def build_method(spec: str) -> tuple[str, Any]:
    """Instantiate a method from its spec; returns ``(canonical name, instance)``."""
    base, raw = parse_spec(spec)
    cls = _method_class(base)
    defaults = cls.param_defaults()
    params: dict[str, Any] = {}
    for key, text in raw.items():
        if not cls.open_params and key not in defaults:
            valid = ", ".join(defaults) or "none (it takes no parameters)"
            raise UsageError(f"method {base!r} has no parameter {key!r}; valid: {valid}")
        try:
            params[key] = parse_value(text, defaults.get(key))
        except ValueError as e:
            raise UsageError(f"{base}:{key}={text}: {e}") from None
    try:
        method = cls(**params)
        if isinstance(method, WrapperMethod):  # the harness builds what a wrapper wraps
            method.wrap(build_method(method.base)[1])
    except (TypeError, ValueError) as e:
        raise UsageError(f"cannot build method {spec!r}: {e}") from None
    return canonical(base, {k: raw[k] for k in raw}), method


def resolve_methods(text: str) -> list[str]:
    """Method specs selected by ``text`` (``all``, a comma list, glob patterns)."""
    from methods import VARIANTS

    known = list(method_classes()) + list(VARIANTS)
    out: list[str] = []
    for tok in split_list(text):
        if tok == "all":
            picked = known
        elif any(c in tok for c in "*?["):
            picked = [n for n in known if fnmatch.fnmatchcase(n, tok)]
            if not picked:
                raise UsageError(f"pattern {tok!r} matches no method; valid: {', '.join(known)}")
        else:
            build_method(tok)  # validate now: nothing runs with a bad name
            picked = [tok]
        out += [p for p in picked if p not in out]
    if not out:
        raise UsageError("no methods selected")
    return out


# --------------------------------------------------------------------------- tasks
#: the methods and fields a task class must have (`nskernel.Task`) besides ``name``, ``metrics``
TASK_METHODS: tuple[str, ...] = ("sized", "spec", "generate", "with_threads")
TASK_FIELDS: tuple[str, ...] = ("n_train", "n_test", "n_val")


def task_problems(cls: Any) -> list[str]:
    """What ``cls`` lacks of the `nskernel.Task` protocol (empty: nothing): a frozen
    dataclass with a non-empty class attribute ``name``, ``metrics`` (a tuple of
    `nskernel.Metric`), the fields ``n_train``, ``n_test``, ``n_val`` and the methods
    ``sized`` (a classmethod), ``spec``, ``generate`` and ``with_threads``."""
    if not isinstance(cls, type):
        return [f"it is a {type(cls).__name__}, not a class"]
    out: list[str] = []
    if not dataclasses.is_dataclass(cls):
        out.append("it is not a dataclass (declare it with @dataclass(frozen=True))")
    elif not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        out.append("it is not frozen (declare it with @dataclass(frozen=True))")
    name = getattr(cls, "name", None)
    if not (isinstance(name, str) and name):
        out.append("no class attribute 'name' (a non-empty str: name: ClassVar[str] = ...)")
    elif any(c in name for c in ":,*?[ "):
        out.append(f"its name {name!r} holds one of ':,*?[ ' (names appear in --tasks lists)")
    metrics = getattr(cls, "metrics", None)
    if not (isinstance(metrics, tuple) and all(isinstance(m, Metric) for m in metrics)):
        out.append("no class attribute 'metrics' that is a tuple of nskernel.Metric (() for none)")
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    missing = [f for f in TASK_FIELDS if f not in fields and not hasattr(cls, f)]
    if missing:
        out.append(f"no field(s) {', '.join(missing)} (samples per split)")
    missing = [f for f in TASK_METHODS if not callable(getattr(cls, f, None))]
    if missing:
        out.append(f"no method(s) {', '.join(missing)}")
    return out


def _metric_clashes(cls: type, others: Iterable[type]) -> list[str]:
    """Names of ``cls.metrics`` that another metric already has (the suite's, a retired
    one, or one of ``others``' own): a metric has one record, so one name."""
    from bench.metrics import METRICS, RETIRED

    suite = {**METRICS, **RETIRED}  # scored (or once scored) for every task: never a task's own too
    taken: dict[str, Metric] = {}
    for other in others:  # another task may list the very same record (one definition)
        if other is not cls:
            for m in other.metrics:
                taken.setdefault(m.name, m)
    names = [m.name for m in cls.metrics]
    return [m.name for i, m in enumerate(cls.metrics)
            if m.name in suite or taken.get(m.name, m) is not m or m.name in names[:i]]


def _checked_task(cls: Any, where: str, others: Iterable[type]) -> type:
    problems = task_problems(cls)
    if not problems:
        problems = [f"its metric {m!r} clashes with another metric of that name; rename it"
                    for m in _metric_clashes(cls, others)]
    if problems:
        raise UsageError(f"{where} does not satisfy the nskernel.Task protocol: " + "; ".join(problems))
    return cls


@lru_cache(maxsize=1)
def entry_point_tasks() -> dict[str, type]:
    """Task classes published under `TASK_ENTRY_POINT_GROUP`, by entry-point name, which
    must be the class's ``name`` (a task has one name in records, data files and tables)."""
    from tasks import TASKS

    found: dict[str, type] = {}
    for ep in entry_points(group=TASK_ENTRY_POINT_GROUP):
        where = f"task entry point {ep.name!r} ({ep.value}) of group {TASK_ENTRY_POINT_GROUP}"
        if ep.name in TASKS or ep.name in found:
            raise UsageError(f"{where} clashes with the {'built-in' if ep.name in TASKS else 'other'} task "
                             "of that name")
        try:
            cls = ep.load()
        except Exception as e:  # noqa: BLE001 -- whatever a plugin's import raises is the plugin's problem
            raise UsageError(f"cannot load {where}: {type(e).__name__}: {e}") from None
        _checked_task(cls, where, [*TASKS.values(), *found.values()])
        if cls.name != ep.name:
            raise UsageError(f"{where} loads a task named {cls.name!r}: name the entry point {cls.name!r}")
        found[ep.name] = cls
    return found


#: external ``module:Class`` tasks loaded in this process, by that spec: their metrics
#: join the catalog (`bench.catalog`) once loaded
_EXTERNAL_TASKS: dict[str, type] = {}


def external_tasks() -> dict[str, type]:
    """The ``module:Class`` tasks this process has loaded (`task_class`), by that spec."""
    return dict(_EXTERNAL_TASKS)


def task_classes() -> dict[str, type]:
    """The registered tasks, by name: the built-in (`tasks.TASKS`), then those published
    under the entry-point group."""
    from tasks import TASKS

    return {**TASKS, **entry_point_tasks()}


def task_class(base: str) -> type:
    """The class of a task name without parameters: a registered name or an external
    ``package.module:Class`` (checked against the protocol, then remembered)."""
    classes = task_classes()
    if base in classes:
        return classes[base]
    if base in _EXTERNAL_TASKS:
        return _EXTERNAL_TASKS[base]
    if ":" in base:
        cls = _load_external(base, "task")
        where = f"external task {base!r}"
        _checked_task(cls, where, [*classes.values(), *_EXTERNAL_TASKS.values()])
        same_name = [c for c in [*classes.values(), *_EXTERNAL_TASKS.values()] if c.name == cls.name and c is not cls]
        if same_name:
            other = same_name[0]
            raise UsageError(f"{where} is named {cls.name!r}, like the task {other.__module__}.{other.__qualname__}: "
                             "a task's name keys its data files; give it another")
        _EXTERNAL_TASKS[base] = cls
        return cls
    raise UsageError(f"unknown task {base!r}; valid: {', '.join(sorted(classes))}, or module:Class")


def build_task(spec: str, size: str) -> tuple[str, Any]:
    """Instantiate a task for ``size`` from ``name[:field=value,...]`` (``name``: a
    registered task or ``package.module:Class``)."""
    if size not in SIZES:
        raise UsageError(f"unknown size {size!r}; valid: {', '.join(SIZES)}")
    base, raw = parse_spec(spec)
    cls = task_class(base)
    try:
        task = cls.sized(size)
    except (TypeError, ValueError) as e:
        raise UsageError(f"task {base!r} cannot be sized {size!r}: {e}") from None
    if not isinstance(task, cls):
        raise UsageError(f"task {base!r}: {cls.__qualname__}.sized({size!r}) returned a {type(task).__name__}, "
                         f"not a {cls.__qualname__}")
    fields = {f.name: getattr(task, f.name) for f in dataclasses.fields(task)}
    params: dict[str, Any] = {}
    for key, text in raw.items():
        if key not in fields:
            raise UsageError(f"task {base!r} has no field {key!r}; valid: {', '.join(fields)}")
        try:
            params[key] = parse_value(text, fields[key])
        except ValueError as e:
            raise UsageError(f"{base}:{key}={text}: {e}") from None
    try:
        return canonical(base, raw), dataclasses.replace(task, **params)
    except (TypeError, ValueError) as e:
        raise UsageError(f"cannot build task {spec!r}: {e}") from None


def resolve_tasks(text: str) -> list[str]:
    """Task specs selected by ``text``: ``all`` (the registered tasks, built-in and
    entry-point, without the registered variants and `tasks.NOT_IN_ALL`), a comma list,
    glob patterns over the registered names and variants,
    ``package.module:Class[:field=value,...]``."""
    from tasks import NOT_IN_ALL, TASK_VARIANTS

    registered = list(task_classes())
    known = registered + list(TASK_VARIANTS)
    out: list[str] = []
    for tok in split_list(text):
        if tok == "all":
            picked = [n for n in registered if n not in NOT_IN_ALL]
        elif any(c in tok for c in "*?["):
            picked = [n for n in known if fnmatch.fnmatchcase(n, tok)]
            if not picked:
                raise UsageError(f"pattern {tok!r} matches no task; valid: {', '.join(known)}")
        else:
            task_class(parse_spec(tok)[0])  # validate now: nothing runs with a bad name
            picked = [tok]
        out += [p for p in picked if p not in out]
    if not out:
        raise UsageError("no tasks selected")
    return out
