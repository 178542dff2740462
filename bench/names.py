"""Resolving names on the command line into tasks and methods.

* ``all``, comma lists, and quoted glob patterns (``'neuroscale*'``) over the registered
  names and variants.
* Variants: ``name:param=value[,param=value]`` (``fno:n_modes=12,width=64``); values are
  parsed to the type of the parameter's default. A wrapper's ``base`` is itself a method
  spec with at most one parameter (``conformal:base=fno:width=32``), built here.
* External methods: ``package.module:Class`` (optionally ``:param=value,...``), or any
  class published under the entry-point group ``neuroscale_bench.methods``.

Every bad name or parameter raises `UsageError` listing the valid choices.
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import importlib
import inspect
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from nskernel import SIZES, Method, WrapperMethod
from nskernel.errors import UsageError

ENTRY_POINT_GROUP = "neuroscale_bench.methods"


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


def _method_class(base: str) -> type:
    classes = method_classes()
    if base in classes:
        return classes[base]
    if ":" in base:
        module, _, attr = base.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise UsageError(f"cannot load external method {base!r}: {e}") from None
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
def build_task(spec: str, size: str) -> tuple[str, Any]:
    """Instantiate a task for ``size`` from ``name[:field=value,...]``."""
    from tasks import TASKS

    if size not in SIZES:
        raise UsageError(f"unknown size {size!r}; valid: {', '.join(SIZES)}")
    base, raw = parse_spec(spec)
    if base not in TASKS:
        raise UsageError(f"unknown task {base!r}; valid: {', '.join(sorted(TASKS))}")
    task = TASKS[base].sized(size)
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
    from tasks import TASK_VARIANTS, TASKS

    known = list(TASKS) + list(TASK_VARIANTS)
    out: list[str] = []
    for tok in split_list(text):
        if tok == "all":
            picked = list(TASKS)
        elif any(c in tok for c in "*?["):
            picked = [n for n in known if fnmatch.fnmatchcase(n, tok)]
            if not picked:
                raise UsageError(f"pattern {tok!r} matches no task; valid: {', '.join(known)}")
        else:
            base = parse_spec(tok)[0]
            if base not in TASKS:
                raise UsageError(f"unknown task {base!r}; valid: {', '.join(sorted(TASKS))}")
            picked = [tok]
        out += [p for p in picked if p not in out]
    if not out:
        raise UsageError("no tasks selected")
    return out
