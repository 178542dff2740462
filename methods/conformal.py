"""`conformal`: split-conformal calibration (Vovk et al. 2005; Angelopoulos & Bates 2023)
of any registered method, and isotonic recalibration (Kuleshov, Fenner & Ermon 2018).

The wrapped method (``base``: a method spec, ``conformal:base=fno:width=32``; the
harness builds it, `nskernel.WrapperMethod`) is fitted on the training set with the
first half of the validation split for its own model selection; the second half is the
calibration set, never seen by the base. At every *training* factor k:

* ``mode="conformal"``: the score of a calibration point is ``|y - mu| / sigma`` (the
  base's predictive standard deviation), or ``|y - mu|`` per channel for a deterministic
  base (sigma = 1). ``q_k`` is the ``ceil((n + 1) level) / n`` empirical quantile of the
  ``n`` pooled scores, so ``mu +- q_k sigma`` covers a new point with probability at least
  ``level`` when points are exchangeable (points of one field are not independent, so
  the guarantee is for the pooled share, which is what ``coverage_90`` measures). The
  prediction becomes ``N(mu, (s_k sigma)^2)`` with ``s_k = q_k / z`` and ``z`` the
  standard normal's ``(1 + level) / 2`` quantile: its central ``level`` interval is the
  conformal one. Draws of the base are spread about the mean by ``s_k``.
* ``mode="isotonic"``: the map ``R: p -> P(F(y) <= p)`` fitted on the calibration pairs
  ``(F(y_i), empirical CDF of the PIT values at F(y_i))`` by isotonic regression, as in
  Kuleshov et al.; those pairs are already monotone, so the fit is the empirical CDF of
  the calibration PIT values itself (computed directly). ``R(F(y))`` is the
  recalibrated CDF. It is reported through its Gaussian summary: the
  recalibrated median and the variance that matches the recalibrated central ``level``
  interval, plus draws at stratified recalibrated quantiles (so the sample-based scores
  see the recalibrated law itself).

An unseen factor (no calibration data there) uses the calibration of the nearest training
factor in log k: the rows at the unseen k answer "does calibration transfer across scales?".
Written by hand: the calibration must be per k and pooled over field points, with the
base's own fit and validation protocol, which no conformal library does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from nskernel import Budget, Context, Dataset, Method, Prediction, TaskSpec, WrapperMethod
from nskernel.errors import NotApplicable

MODES = ("conformal", "isotonic")
_FLOOR = 1e-12
_ISO_GRID = np.linspace(0.0, 1.0, 401)  # where the fitted isotonic map is tabulated


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ``ceil((n + 1) level) / n`` empirical quantile of ``n`` scores (the finite-sample
    split-conformal quantile; ``inf`` when ``n`` is too small for ``level``)."""
    s = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    rank = math.ceil((len(s) + 1) * level)
    return float(s[rank - 1]) if rank <= len(s) else math.inf


def nearest_factor(k: int, factors: Sequence[int]) -> int:
    """The factor of ``factors`` nearest to ``k`` in log k (ties: the smaller)."""
    return min(sorted(factors), key=lambda f: abs(math.log(f) - math.log(k)))


class Conformal(WrapperMethod):
    name = "conformal"
    summary = "split-conformal (or isotonic) calibration of any method on held-out validation data, per k"

    base: str = "fno"
    level: float = 0.9
    mode: str = "conformal"

    def check_params(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; valid: {', '.join(MODES)}")
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"need 0 < level < 1, got {self.level}")

    @property
    def _base(self) -> Method:
        return self.wrapped

    # -- what the wrapper is ----------------------------------------------------------
    @property
    def probabilistic(self) -> bool:  # type: ignore[override]
        return True

    @property
    def timing(self) -> Any:  # type: ignore[override]
        return self._base.timing

    @property
    def uses_training_data(self) -> bool:  # type: ignore[override]
        return True

    def check_spec(self, spec: TaskSpec) -> None:
        self._base.check_spec(spec)

    def not_applicable(self, spec: TaskSpec) -> str | None:
        return self._base.not_applicable(spec)

    def k_not_supported(self, k: int, k_train: tuple[int, ...]) -> str | None:
        return self._base.k_not_supported(k, k_train)

    # -- fit and calibrate --------------------------------------------------------------
    def fit(self, train: Dataset, spec: TaskSpec, budget: Budget, ctx: Context) -> Conformal:
        val = train.validation
        if val is None or len(val) < 4:
            raise NotApplicable("conformal calibration needs a validation split of at least 4 samples")
        half = len(val) // 2
        selection, calibration = val.subset(slice(0, half)), val.subset(slice(half, len(val)))
        base_train = Dataset(inputs=train.inputs, targets=train.targets, meta=dict(train.meta),
                             validation=selection)
        self._base.fit(base_train, spec, budget, ctx)
        self._k_train = tuple(sorted(calibration.targets))
        self._calib: dict[int, Any] = {}
        preds = self._base.predict_many(calibration.inputs, self._k_train)
        for k in self._k_train:
            self._calib[k] = self._calibrate(preds[k], calibration.targets[k])
        self._n_calibration = len(calibration)
        return self

    def _sigma(self, pred: Prediction) -> np.ndarray:
        if pred.var is not None and self._base.probabilistic:
            return np.sqrt(np.maximum(pred.var, _FLOOR))
        return np.ones_like(pred.mean)

    def _calibrate(self, pred: Prediction, target: np.ndarray) -> Any:
        z = (np.asarray(target, dtype=np.float64) - pred.mean) / self._sigma(pred)
        if self.mode == "isotonic":
            pit = np.sort(ndtr(z).ravel())
            return np.searchsorted(pit, _ISO_GRID, side="right") / len(pit)  # R(p) tabulated on the grid
        if self._base.probabilistic:
            return conformal_quantile(np.abs(z), self.level)
        # deterministic base: one absolute-residual quantile per channel
        per_channel = np.moveaxis(np.abs(z), 1, 0).reshape(z.shape[1], -1)
        return np.array([conformal_quantile(c, self.level) for c in per_channel])

    # -- predict ------------------------------------------------------------------------
    def predict(self, inputs: np.ndarray, k: int) -> Prediction:
        return self.predict_many(inputs, (k,))[k]

    def predict_many(self, inputs: np.ndarray, ks: Sequence[int]) -> dict[int, Prediction]:
        base = self._base.predict_many(inputs, ks)
        return {k: self._apply(base[k], self._calib[nearest_factor(k, self._k_train)]) for k in ks}

    def _apply(self, pred: Prediction, calib: Any) -> Prediction:
        sigma = self._sigma(pred)
        z_level = float(ndtri(0.5 + self.level / 2))
        if self.mode == "conformal":
            scale = np.asarray(calib, dtype=np.float64) / z_level
            if scale.ndim == 1:  # per channel
                scale = scale.reshape(1, -1, 1, 1)
            sd = sigma * scale
            samples = None
            if pred.samples is not None:
                samples = pred.mean + (pred.samples - pred.mean) * scale
            return Prediction(mean=pred.mean, var=sd**2, samples=samples)
        # isotonic: recalibrated quantile u of the Gaussian = F^-1(R^-1(u))
        inv = self._inverse_map(calib)
        median = pred.mean + sigma * float(ndtri(inv(0.5)))
        lo, hi = ndtri(inv(0.5 - self.level / 2)), ndtri(inv(0.5 + self.level / 2))
        sd = sigma * float(hi - lo) / (2 * z_level)
        levels = (np.arange(16) + 0.5) / 16
        rng = np.random.default_rng(0)
        # each point gets the 16 stratified recalibrated quantiles in its own random order,
        # so draws are not comonotone across points
        quant = np.array([ndtri(inv(u)) for u in levels])
        order = rng.permuted(np.broadcast_to(np.arange(16)[:, None], (16, pred.mean.size)), axis=0)
        samples = pred.mean[None] + sigma[None] * quant[order].reshape(16, *pred.mean.shape)
        return Prediction(mean=median, var=np.maximum(sd, _FLOOR) ** 2, samples=samples)

    @staticmethod
    def _inverse_map(table: np.ndarray) -> Any:
        """``u -> R^-1(u)`` of the tabulated isotonic map (the smallest p with R(p) >= u),
        clipped away from 0 and 1 so that Gaussian quantiles stay finite."""

        def inv(u: float) -> float:
            idx = int(np.searchsorted(table, u, side="left"))
            p = _ISO_GRID[min(idx, len(_ISO_GRID) - 1)]
            return float(np.clip(p, 1e-4, 1 - 1e-4))

        return inv

    # -- fitted state: the base's checkpoint plus the calibration --------------------------
    def save(self, directory: Path) -> bool:
        if not self._base.save(Path(directory) / "base"):
            return False
        calib = {str(k): np.asarray(v, dtype=np.float64).tolist() for k, v in self._calib.items()}
        meta = {"method": self.name, "params": self.get_params(), "k_train": list(self._k_train),
                "n_calibration": self._n_calibration, "calibration": calib}
        (Path(directory) / "calibration.json").write_text(json.dumps(meta, indent=1))
        return True

    def restore(self, directory: Path, spec: TaskSpec, ctx: Context) -> Conformal:
        path = Path(directory) / "calibration.json"
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"checkpoint {directory}: cannot read {path.name}: {e}") from None
        if meta.get("method") != self.name or meta.get("params") != self.get_params():
            raise ValueError(f"checkpoint {directory} holds {meta.get('method')} {meta.get('params')}, "
                             f"not {self.name} {self.get_params()}")
        self._base.restore(Path(directory) / "base", spec, ctx)
        self._k_train = tuple(meta["k_train"])
        self._n_calibration = int(meta["n_calibration"])
        self._calib = {int(k): (float(v) if np.ndim(v) == 0 else np.asarray(v)) for k, v in meta["calibration"].items()}
        return self

    # -- delegated -----------------------------------------------------------------------
    def advance(self, state: np.ndarray, k: int) -> Prediction:
        return self._base.advance(state, k)

    def clear_cache(self) -> None:
        self._base.clear_cache()

    def truncation(self) -> str | None:
        return self._base.truncation()

    def late_validation_gain(self) -> float | None:
        return self._base.late_validation_gain()

    def max_eval_samples(self) -> int | None:
        return self._base.max_eval_samples()

    def estimate_s(self, budget: Budget) -> float:
        return self._base.estimate_s(budget)

    def n_params(self) -> int | None:
        return self._base.n_params()

    def diagnostics(self) -> dict[str, Any]:
        calib = {str(k): (np.asarray(v).tolist() if self.mode == "conformal" else "isotonic")
                 for k, v in self._calib.items()}
        # not "calibration": the record keeps the reliability curve under that key
        return {**self._base.diagnostics(), "conformal": {"mode": self.mode, "level": self.level,
                                                           "n_calibration": self._n_calibration,
                                                           "quantiles": calib}}


__all__ = ["MODES", "Conformal", "conformal_quantile", "nearest_factor"]
