"""Kuramoto oscillators on scale-free graphs (issue #22, docs/kuramoto.md): power-law
graphs and their nested partition hierarchy (`graphs`), the batched Dormand-Prince fine
solver and the order parameter (`solver`), the Ott-Antonsen coarse model on the
super-node graph (`coarse`), the task's own metrics (`metrics`) and the registered task
`Kuramoto` (`task`), the suite's graph-domain task."""

from tasks.kuramoto.task import Kuramoto

__all__ = ["Kuramoto"]
