"""The contracts of NeuroScale Bench, and nothing else.

Tasks, methods and metrics meet here; the harness (``bench``) builds on all of them.
Everything in this package imports NumPy only (torch is imported lazily where a value
needs it), so importing the kernel or the metric registry never imports torch.

* `Task` (``task``): what a benchmark problem implements; `TaskSpec`, `CoarseSolver`
  (``spec``): what it publishes to methods; `Dataset` (``data``): its samples;
  `PointwisePDE` (``pointwise``): its continuous PDE for pointwise solvers.
* `Method`, `TimingHints` (``method``) and `Prediction` (``prediction``): what a method
  implements and returns.
* `Metric`, `Tolerance` (``metric``): one record per score.
* `Budget` (``budget``), `Context`, `Device`, `Factors` (``context``): explicit inputs.
* `restrict` / `prolong` (``grid``): the coarse-graining operators R_k and P_k on grids;
  `GraphDomain` (``graph``): a graph task's nodes, edges and nested partition levels, whose
  ``restrict`` is the member mean (`TaskSpec.restrict` dispatches on the domain).
* Errors (``errors``) and the registry helpers (``registry``).
"""

from nskernel.budget import Budget
from nskernel.context import Context, Device, Factors
from nskernel.data import Dataset
from nskernel.errors import CellTimeout, Diverged, NotApplicable, UsageError
from nskernel.graph import GraphDomain
from nskernel.grid import prolong, restrict
from nskernel.method import Method, TimingHints, WrapperMethod, domain_not_supported
from nskernel.metric import Metric, Tolerance
from nskernel.pointwise import PointSet, PointwisePDE
from nskernel.prediction import Prediction
from nskernel.registry import build_registry, lookup
from nskernel.spec import K_VALUES, SIZES, CoarseSolver, TaskSpec
from nskernel.task import Task

__all__ = [
    "K_VALUES", "SIZES", "Budget", "CellTimeout", "CoarseSolver", "Context", "Dataset", "Device", "Diverged",
    "Factors", "GraphDomain", "Method", "Metric", "NotApplicable", "PointSet", "PointwisePDE", "Prediction", "Task",
    "TaskSpec", "TimingHints", "Tolerance", "UsageError", "WrapperMethod", "build_registry", "domain_not_supported",
    "lookup", "prolong", "restrict",
]
