"""NeuroScale Bench: a task x method benchmark harness for multiscale neural operators.

Registries live in each package's ``__init__``: ``tasks.TASKS``, ``methods.METHODS``,
``bench.metrics.METRICS``. This module stays import-light on purpose.
"""

__version__ = "0.1.0"
SCHEMA_VERSION = 1
