"""Per-instance solvers on a task's continuous PDE: `pinn` (DeepXDE) and `bpinn` (HMC,
`hmc`), on their shared protocol `solver.PointwiseSolver`."""

from methods.pinn.bpinn import BPINN
from methods.pinn.pinn import PINN

__all__ = ["BPINN", "PINN"]
