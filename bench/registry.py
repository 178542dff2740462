"""Building registries (plain dicts, duplicate keys are an error)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

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
