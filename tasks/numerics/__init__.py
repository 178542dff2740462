"""Numerics shared by several tasks: periodic pseudo-spectral tools (`spectral`), sparse
SPD solvers (`spd_solve`) and helpers for continuous PDEs (`pointwise`)."""
