"""Registries are plain dicts: built here, so a duplicate key is an error everywhere and
an unknown name is an error that lists the valid ones."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from nskernel.errors import UsageError

T = TypeVar("T")


def build_registry(items: Iterable[T], key: str = "name") -> dict[str, T]:
    """``{item.<key>: item}``; raises on a duplicate or empty key."""
    out: dict[str, T] = {}
    for item in items:
        name = getattr(item, key)
        if not name:
            raise ValueError(f"{item!r} has no {key}")
        if name in out:
            raise ValueError(f"duplicate registry key {name!r}: {out[name]!r} and {item!r}")
        out[name] = item
    return out


def add_unique(registry: dict[str, Any], name: str, value: Any) -> None:
    if name in registry:
        raise ValueError(f"duplicate registry key {name!r}")
    registry[name] = value


def lookup(registry: Mapping[str, T], name: str, what: str) -> T:
    """``registry[name]``, or a `UsageError` naming the valid choices."""
    try:
        return registry[name]
    except KeyError:
        raise UsageError(f"unknown {what} {name!r}; valid: {', '.join(sorted(registry))}") from None
