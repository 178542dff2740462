"""Benchmark problems. ``TASKS`` maps a task name to its frozen dataclass; each task
family is a subpackage (``tasks/darcy``, ``tasks/turbulence``, ``tasks/convection``,
``tasks/kuramoto``: the graph task),
with numerics shared between them in ``tasks/numerics``.

``TASKS`` holds the built-in tasks only. Tasks of other packages plug in without a line
here: published under the entry-point group ``neuroscale_bench.tasks`` or named as
``package.module:Class``; `bench.names.task_classes` merges the published ones with these
(docs/architecture.md, "Adding an external task")."""

from nskernel import build_registry
from tasks.convection import Convection
from tasks.darcy import Darcy
from tasks.kuramoto import Kuramoto
from tasks.turbulence import Turbulence

TASKS = build_registry([Darcy, Turbulence, Convection, Kuramoto])

# Registered parameter variants (``name:field=value``): listed by ``bench list`` and
# selected by name or pattern (``--tasks 'turbulence*'``); ``--tasks all`` runs the
# base tasks only, to keep the default matrix within its time budget.
TASK_VARIANTS: tuple[str, ...] = (
    "turbulence:re=1e4", "turbulence:re=1e5",
    "turbulence:horizon=1",  # one eddy turnover: the filtered target decorrelated from the input (hard)
    # Kochkov et al. (PNAS 2021)'s "Re 1000" (nu = 1e-3; U_rms L_f / nu ~ 2000 in the suite's
    # convention) on a 256^2 grid, so that k = 4 is their 64^2 coarse grid, with rollouts of 32
    # horizons (8 time units) so that corr_time_095 is not censored at 2 (docs/turbulence.md)
    "turbulence:nu=1e-3,resolution=256,rollout=32",
    "convection:ra=1e6", "convection:ra=1e7", "convection:ra=1e8",
    # ROMA's noise experiments (Table 2): 2% and 10% noise on the inputs and the training targets
    "kuramoto:noise=0.02", "kuramoto:noise=0.1",
)

# Registered tasks that ``--tasks all`` leaves out (select them by name), with the reason:
# the default `small` matrix is the README's main job, whose run time is measured.
NOT_IN_ALL: dict[str, str] = {
    "kuramoto": "its `small` matrix took ~1.5 h on a 2-core CPU (50k-node graphs; `roma` needs ~7 min per "
                "epoch and is cut by the training cap), so the README's main job stays the grid tasks "
                "(docs/kuramoto.md)",
}

__all__ = ["NOT_IN_ALL", "TASKS", "TASK_VARIANTS"]
