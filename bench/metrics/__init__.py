"""The suite's metric registry: ``METRICS`` maps a metric name (as in ``results.csv``) to
its `nskernel.Metric` record, registered once.

Scores of a prediction have a function (array-level pure functions in `core`); costs
and rollout scores are measured by the harness (``fn=None``) and registered here for
their direction, tolerance and description. Tasks declare their own metrics on the task
class (``Task.metrics``); ``bench.catalog`` merges both. Importing this package imports
NumPy and SciPy only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bench.metrics import core, samples
from nskernel import Metric, Prediction, TaskSpec, Tolerance, build_registry


def _of_variance(fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    """A Gaussian score ``fn(mean, var, target)`` as a metric function."""

    def metric(p: Prediction, y: np.ndarray, x: np.ndarray, k: int, spec: TaskSpec) -> np.ndarray:
        assert p.var is not None  # guaranteed by requires=("variance",)
        return fn(p.mean, p.var, y)

    return metric


def _of_samples(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    """A score of draws ``fn(samples, target)`` as a metric function."""

    def metric(p: Prediction, y: np.ndarray, x: np.ndarray, k: int, spec: TaskSpec) -> np.ndarray:
        assert p.samples is not None  # guaranteed by requires=("samples",)
        return fn(p.samples, y)

    return metric


def _rank_counts(draws: np.ndarray, target: np.ndarray) -> np.ndarray:
    # ties (rare with continuous draws) are broken by a fixed stream: the score is a
    # pure function of the prediction
    return samples.rank_counts(draws, target, np.random.default_rng(0))


_TIME = Tolerance(1.0)  # single timings on shared machines are noisy: flag a 2x change only
#: a neural row whose validation error still fell by more than this over the last fifth
#: of its training is flagged "not converged" in every leaderboard
CONVERGENCE_TOL = 0.02

METRICS: dict[str, Metric] = build_registry([
    # -- scores of a prediction, per sample -------------------------------------------
    Metric("rel_l2", "||yhat - y|| / ||y|| per sample", fn=lambda p, y, x, k, s: core.rel_l2(p.mean, y),
           group="accuracy", headline=True),
    Metric("fluct_rel_l2", "||yhat - y|| / ||y - c|| per sample, c the climatological mean of the test targets "
           "(over samples and homogeneous axes): error on what moves; predicting c scores 1",
           fn=lambda p, y, x, k, s: core.fluct_rel_l2(p.mean, y, s.climatology_axes),
           requires=("time_dependent",), group="accuracy", headline=True),
    Metric("nll", "Gaussian negative log-likelihood per point", fn=_of_variance(core.gaussian_nll),
           tolerance=Tolerance(0.0, 0.05), requires=("variance",), group="uncertainty", headline=True,
           ratio_scale=False),
    Metric("ece", "quantile calibration error pooled over all test points of the cell (Kuleshov et al. 2018), "
           "binomial sampling noise removed per level", fn=_of_variance(core.ece_stats), pooled=core.pooled_ece,
           tolerance=Tolerance(0.1, 0.005), requires=("variance",), group="uncertainty", headline=True),
    Metric("ece_per_sample", "diagnostic: the quantile calibration error of each test sample's points alone, "
           "averaged (noise floor ~0.33/sqrt(points per sample); inflated by correlated errors)",
           fn=_of_variance(core.quantile_ece), tolerance=None, requires=("variance",), group="uncertainty",
           leaderboard=False),
    Metric("crps", "continuous ranked probability score (Gaussian)", fn=_of_variance(core.crps_gaussian),
           requires=("variance",), group="uncertainty"),
    Metric("crps_ensemble", "fair CRPS of the predictive draws, mean over points (Ferro 2014)",
           fn=_of_samples(samples.crps_ensemble), requires=("samples",), group="uncertainty"),
    Metric("energy_score", "fair energy score of the draws over each whole coarse field, / sqrt(points) "
           "(Gneiting & Raftery 2007)", fn=_of_samples(samples.energy_score), requires=("samples",),
           group="uncertainty"),
    Metric("spread_skill", "sqrt((S+1)/S mean draw variance) / RMSE of the draws' mean, pooled over test points "
           "(1: spread matches error)", fn=_of_samples(samples.spread_skill_stats), pooled=samples.spread_skill_ratio,
           direction="target:1", tolerance=Tolerance(0.1, 0.02), requires=("samples",), group="uncertainty"),
    Metric("rank_flatness", "reliability index sum_j |f_j - 1/(S+1)| of the truth's rank among the draws, pooled "
           "(0: flat rank histogram; floor ~sqrt(2S/(pi P)) for P points)", fn=_of_samples(_rank_counts),
           pooled=samples.rank_flatness, tolerance=Tolerance(0.1, 0.01), requires=("samples",), group="uncertainty"),
    Metric("coverage_90", "share of points in the central 90% interval", fn=_of_variance(core.coverage),
           direction="target:0.9", tolerance=Tolerance(0.0, 0.02), requires=("variance",), group="uncertainty"),
    # -- rollouts of time-dependent tasks (bench.scoring) ------------------------------
    Metric("rollout_rel_l2", "relative L2 error of a coarse rollout after n horizons (column @n)",
           requires=("time_dependent",), group="rollout"),
    Metric("decorrelation_time", "first horizon at which the rollout error exceeds 1 (censored)",
           direction="higher", tolerance=None, requires=("time_dependent",), group="rollout"),
    Metric("rollout_corr", "correlation <p, y> / (|p| |y|) of a coarse rollout with the filtered truth after n "
           "horizons (column @n; Kochkov et al. 2021's vorticity correlation)", direction="higher",
           tolerance=Tolerance(0.0, 0.02), requires=("time_dependent",), group="rollout", leaderboard=False),
    Metric("corr_time_095", "horizons for which the rollout's correlation with the filtered truth stays >= 0.95 "
           "(censored at the rollout's length; times the task's horizon for a time, Kochkov et al. 2021)",
           direction="higher", tolerance=None, requires=("time_dependent",), group="rollout"),
    # -- costs (bench.costs, bench.cell) ---------------------------------------------
    Metric("speedup", "fine solver wall time / inference wall time, same batch, device and threads",
           direction="higher", tolerance=Tolerance(0.5), group="cost", headline=True),
    Metric("train_s", "training wall time", tolerance=_TIME, group="cost", per_k=False, unit="s"),
    Metric("n_params", "trainable parameters", tolerance=None, group="cost", per_k=False, unit="count"),
    Metric("infer_s", "inference wall time of one timed batch", tolerance=_TIME, group="cost", leaderboard=False,
           unit="s"),
    Metric("fine_s", "fine-solver wall time of the timed batch (the speedup's numerator)", tolerance=None,
           group="cost", per_k=False, leaderboard=False, unit="s"),
    Metric("peak_mem_mb", "rise of resident (or CUDA) memory during fit and evaluation", tolerance=None,
           group="cost", per_k=False, leaderboard=False, unit="MB"),
    # -- against the classical error-cost ladder (bench.ladder, bench.costs) --------------
    Metric("data_s", "fine-solver time to generate the training and validation data (fine_s per sample x "
           "samples; 0 for methods that learn nothing from data)", tolerance=None, group="cost", per_k=False,
           leaderboard=False, unit="s"),
    Metric("equal_error_cost_ratio", "the classical solvers' cost at the method's rel_l2 / the method's inference "
           "cost, per sample (> 1: the method is cheaper at equal accuracy)", direction="higher", tolerance=None,
           group="cost", headline=True),
    Metric("ladder_error_at_cost", "the classical solvers' rel_l2 at the method's inference cost", tolerance=None,
           group="cost", leaderboard=False),
    Metric("breakeven_solves", "new solves after which data generation + training + inference cost less than "
           "classical solves at equal error", tolerance=None, group="cost"),
    # -- training (bench.cell) -------------------------------------------------------------
    Metric("late_val_gain", "relative fall of the validation error over the last fifth of training "
           f"(above {CONVERGENCE_TOL:g}: the row is flagged not converged)", tolerance=None, group="training",
           per_k=False, leaderboard=False),
])

#: Metrics no longer computed, kept so that reports and `bench compare` still read run
#: directories that recorded them (never scored again; not in leaderboards).
RETIRED: dict[str, Metric] = build_registry([
    Metric("conservation", "retired: ||B_k (yhat - y)|| / ||f_k|| (Darcy) and differences from the truth's balances: "
           "errors against the truth, not conservation laws; replaced by each task's physics laws (docs/metrics.md)",
           tolerance=None, group="physics", leaderboard=False),
])

#: the suite's primary accuracy score (figures plot it against k and against cost)
PRIMARY = "rel_l2"
#: the leading accuracy column of time-dependent tasks, where it is recorded: the error on
#: the fluctuations, which a static mean profile cannot fake
FLUCTUATION = "fluct_rel_l2"
#: the cost axis of the accuracy-versus-cost figures
SPEEDUP = "speedup"

__all__ = ["CONVERGENCE_TOL", "FLUCTUATION", "METRICS", "PRIMARY", "RETIRED", "SPEEDUP", "core", "samples"]
