"""Exceptions shared by every layer; the harness turns them into cell statuses or CLI
exit codes."""

from __future__ import annotations


class UsageError(ValueError):
    """Bad user input (unknown name, impossible k, bad variant parameter): exit code 2."""


class Diverged(RuntimeError):
    """A loss or prediction became NaN/Inf: the cell is recorded ``diverged``."""


class CellTimeout(RuntimeError):
    """The cell exceeded its wall-clock budget: the cell is recorded ``timeout``."""


class NotApplicable(RuntimeError):
    """The method cannot produce this cell (or this k): recorded ``n/a`` with the reason."""
