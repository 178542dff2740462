"""Scoring helpers of `bench.scoring` on closed forms: rollouts of a persistence map."""

import numpy as np
import pytest

from bench.scoring import evaluate_rollouts
from nskernel import Context, Dataset, Factors, Method, Prediction, TaskSpec
from nskernel.grid import restrict

SPEC = TaskSpec(name="decay", fine_shape=(16, 16), in_channels=1, out_channels=1, in_names=("u",),
                out_names=("u",), boundary="periodic", time_dependent=True, rollout_horizons=(1, 2, 4))
RATIO = 0.6  # the true state shrinks by this factor every horizon


class Persistence(Method):
    name = "persistence"

    def fit(self, train, spec, budget, ctx):
        return self

    def predict(self, inputs: np.ndarray, k: int) -> Prediction:
        return Prediction(mean=restrict(inputs, k))

    def advance(self, state: np.ndarray, k: int) -> Prediction:
        return Prediction(mean=state.copy())


def _decaying(n: int) -> Dataset:
    x = np.random.default_rng(0).standard_normal((n, 1, 16, 16))
    steps = 1 + max(SPEC.rollout_horizons)
    traj = {k: np.stack([restrict(x, k) * RATIO**j for j in range(steps)], axis=1) for k in (4, 8)}
    return Dataset(inputs=x, targets={k: v[:, 1] for k, v in traj.items()}, rollouts=traj)


@pytest.mark.parametrize("max_samples,n", [(None, 6), (3, 3)])
def test_rollout_errors_of_persistence_follow_the_closed_form(max_samples, n):
    rows = evaluate_rollouts(Persistence(), SPEC, _decaying(6), Factors((4,), (4, 8)), Context(),
                             max_samples=max_samples)
    by = {(r["metric"], r["k"]): r for r in rows}
    for k in (4, 8):
        for h in SPEC.rollout_horizons:
            # ||u0 - r^h u0|| / ||r^h u0|| = r^-h - 1 for every sample
            row = by[(f"rollout_rel_l2@{h}", k)]
            assert row["value"] == pytest.approx(RATIO**-h - 1, rel=1e-12) and row["n"] == n
        assert by[("decorrelation_time", k)]["value"] == 2  # 0.67 after one horizon, 1.78 after two
        assert by[("rollout_rel_l2@1", k)]["unseen"] == (k == 8)


class Rotating(Method):
    """Advances by turning away from the truth ``y``: after n steps the state is
    ``cos(n a) y + sin(n a) z``, ``z`` orthogonal to ``y`` with the same norm."""

    name = "rotating"
    angle = 0.25

    def fit(self, train, spec, budget, ctx):
        return self

    def predict(self, inputs: np.ndarray, k: int) -> Prediction:
        return Prediction(mean=restrict(inputs, k))

    def start(self, truth: dict[int, np.ndarray]) -> None:
        self.truth, self.n = truth, 0

    def advance(self, state: np.ndarray, k: int) -> Prediction:
        self.n += 1
        y = self.truth[k][:, self.n]
        f = np.flip(y, axis=-1)
        z = f - y * (f * y).sum((1, 2, 3), keepdims=True) / (y * y).sum((1, 2, 3), keepdims=True)
        z *= np.sqrt((y * y).sum((1, 2, 3), keepdims=True) / (z * z).sum((1, 2, 3), keepdims=True))
        return Prediction(mean=np.cos(self.n * self.angle) * y + np.sin(self.n * self.angle) * z)


def test_rollout_correlation_and_corr_time_follow_the_closed_form():
    """Persistence of a decaying state keeps correlation 1 (a positive multiple), so its
    corr_time_095 is censored at the rollout's length; a state rotated by n * 0.25 rad away
    from the truth has correlation cos(0.25 n): >= 0.95 for n = 1 only (cos 0.5 = 0.878)."""
    data = _decaying(4)
    rows = evaluate_rollouts(Persistence(), SPEC, data, Factors((4,), (4,)), Context())
    by = {(r["metric"], r["k"]): r["value"] for r in rows}
    assert all(by[(f"rollout_corr@{h}", 4)] == pytest.approx(1.0, abs=1e-12) for h in SPEC.rollout_horizons)
    assert by[("corr_time_095", 4)] == max(SPEC.rollout_horizons)
    method = Rotating()
    method.start(data.rollouts)
    rows = evaluate_rollouts(method, SPEC, data, Factors((4,), (4,)), Context())
    by = {(r["metric"], r["k"]): r["value"] for r in rows}
    for h in SPEC.rollout_horizons:
        assert by[(f"rollout_corr@{h}", 4)] == pytest.approx(np.cos(0.25 * h), rel=1e-9)
    assert by[("corr_time_095", 4)] == 1
