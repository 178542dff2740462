"""Darcy flow in a two-phase random medium (docs/darcy.md): the task (`task`), its
finite-volume operators (`fv`) and its continuous PDE for pointwise solvers (`pointwise`)."""

from tasks.darcy.task import Darcy

__all__ = ["Darcy"]
