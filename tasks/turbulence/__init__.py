"""2D Kolmogorov-forced turbulence (docs/turbulence.md): the task (`task`), the
pseudo-spectral DNS (`solver`, fused kernels in `kernels`), the classical coarse solvers
(`coarse`, `arakawa`), its metrics and its conservation law, the net circulation
(`metrics`), and its continuous PDE for pointwise solvers (`pointwise`)."""

from tasks.turbulence.task import Turbulence

__all__ = ["Turbulence"]
