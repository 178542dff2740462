"""Learned methods on graph tasks (``domains = ("graph",)``): torch graph operators
(`ops`), the networks (`models`) and the registered methods (`methods`): ``gnn``,
``roma``, ``deeponet_graph``."""

from methods.graph.methods import GNN, GraphDeepONet, Roma

__all__ = ["GNN", "GraphDeepONet", "Roma"]
