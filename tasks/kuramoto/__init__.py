"""Kuramoto oscillators on scale-free graphs (issue #22, docs/kuramoto.md): power-law
graphs and their nested partition hierarchy (`graphs`), the batched Dormand-Prince fine
solver and the order parameter (`solver`), and the Ott-Antonsen coarse model on the
super-node graph (`coarse`). Not yet a registered task."""
