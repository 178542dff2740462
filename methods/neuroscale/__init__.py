"""NeuroScale: multiscale cross-attention neural operator (the method this suite
evaluates). ``NeuroScale`` is the Method class (registry name ``"neuroscale"``); the
network, attention, losses and uncertainty live in the submodules."""

from methods.neuroscale.method import NeuroScale

__all__ = ["NeuroScale"]
