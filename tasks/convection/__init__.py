"""2D Rayleigh-Benard convection (docs/convection.md): the task (`task`), the Boussinesq
solver (`boussinesq`, operators in `ops`), its physics operators and metrics (`physics`)
and its continuous PDE for pointwise solvers (`pointwise`)."""

from tasks.convection.task import Convection

__all__ = ["Convection"]
