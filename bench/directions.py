"""Which way is better for every column a report or `bench compare` may show.

Kept free of torch and the metric implementations, so that reading results
(`bench compare`, `bench report`) does not import the numerical stack.
"""

from __future__ import annotations

# Direction of "better" for every column a report may show. "target:x" = closest to x.
BETTER: dict[str, str] = {
    "rel_l2": "lower", "conservation": "lower", "nll": "lower", "ece": "lower",
    "crps": "lower", "coverage_90": "target:0.9", "speedup": "higher",
    "train_s": "lower", "infer_s": "lower", "fine_s": "lower", "n_params": "lower",
    "peak_mem_mb": "lower", "spectrum_err": "lower", "nusselt_err": "lower",
    "profile_err": "lower", "decorrelation_time": "higher",
}


def better(metric: str) -> str:
    """Direction for a metric column (``rollout_rel_l2@n`` included)."""
    if metric.startswith("rollout_rel_l2@"):
        return "lower"
    return BETTER.get(metric, "lower")


__all__ = ["BETTER", "better"]
