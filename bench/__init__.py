"""NeuroScale Bench: a task x method benchmark harness for multiscale neural operators.

Registries live in each package's ``__init__``: ``tasks.TASKS``, ``methods.METHODS``,
``bench.metrics.METRICS``. This module stays import-light on purpose.
"""

import os

# OpenMP threads that spin while waiting (the default of torch's and numba's runtimes)
# make 2-thread CPU work collapse, up to 80x, when another process is busy (measured,
# docs/architecture.md). Set before torch is imported; an explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
SCHEMA_VERSION = 2  # 2: step-bound budgets, validation, checkpoints, `truncated`
