"""The law form of the physics loss: ``TaskSpec.laws`` of every task against the task's
law metrics (an independent NumPy implementation), zero on the filtered truth; the
NeuroScale terms built on it; the warm-up schedule and the loop's progress callback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from methods.neuroscale import NeuroScale
from methods.neuroscale.losses import LAW_EPS, PhysicsLoss
from methods.training import train
from nskernel import Budget, Context, Prediction
from nskernel.grid import restrict
from tasks import TASKS
from tasks.darcy.laws import compliance_bounds

LAW_TASKS = [name for name in TASKS if TASKS[name].sized("smoke").spec().laws is not None]


@pytest.fixture(scope="module")
def smoke_samples() -> dict:
    out = {}
    for name in LAW_TASKS:
        task = TASKS[name].sized("smoke")
        out[name] = (task, task.spec(), task.generate(3, seed=11))
    return out


def _law_metrics(task, spec, pred: np.ndarray, inputs: np.ndarray, k: int) -> np.ndarray:
    """Sum over the task's physics-group metrics of their squared per-sample values."""
    laws = [m for m in task.metrics if m.group == "physics"]
    assert laws, f"{spec.name} publishes laws but no physics metric"
    total = np.zeros(len(pred))
    for m in laws:
        total += np.asarray(m.fn(Prediction(pred), None, inputs, k, spec), dtype=np.float64) ** 2
    return total


def test_every_task_publishes_laws() -> None:
    assert set(LAW_TASKS) == set(TASKS), "a task without TaskSpec.laws gets no law-form physics loss"


@pytest.mark.parametrize("name", LAW_TASKS)
@pytest.mark.parametrize("k", [4, 8, 16])
def test_laws_vanish_on_the_truth_and_match_the_law_metrics(smoke_samples, name: str, k: int) -> None:
    task, spec, data = smoke_samples[name]
    y = torch.as_tensor(data.targets[k], dtype=torch.float64)
    assert float(spec.laws(y, data.inputs, k).pow(2).sum(1).max()) < 1e-12
    # fields that break the laws: an offset of 30 % of the rms, and the negated truth
    rng = np.random.default_rng(k)
    worst = 0.0
    # (the third, the truth scaled so that its largest point vector has norm 2, breaks a bound
    # such as a graph task's |z| <= 1, which the negated truth keeps)
    for bad in (y + 0.3 * y.pow(2).mean().sqrt() * (1 + torch.as_tensor(rng.random(y.shape))), -y,
                2 * y / y.norm(dim=1).max()):
        got = spec.laws(bad, data.inputs, k).pow(2).sum(1).numpy()
        want = _law_metrics(task, spec, bad.numpy(), data.inputs, k)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)
        worst = max(worst, float(want.max()))
    assert worst > 1e-3, "a violating field should score"  # -y keeps a zero mean, an offset may stay in bounds


@pytest.mark.parametrize("name", LAW_TASKS)
def test_laws_are_differentiable(smoke_samples, name: str) -> None:
    _, spec, data = smoke_samples[name]
    y = torch.as_tensor(data.targets[8], dtype=torch.float64)
    y = (-2 * y / y.norm(dim=1).max()).requires_grad_(True)  # negated, largest point vector of norm 2
    spec.laws(y, data.inputs, 8).pow(2).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all() and y.grad.abs().max() > 0


def test_law_form_terms_are_zero_for_the_fine_truth_and_positive_otherwise(smoke_samples) -> None:
    """Darcy: the law term and the flux balance of every coarse cell (block sums of the
    exact fine residual) vanish for the fine solution; its blocky prolongation breaks the
    balance (the proposal's fine residual would penalise the truth's own fine field as well)."""
    _, spec, data = smoke_samples["darcy"]
    x = torch.as_tensor(data.inputs, dtype=torch.float64)
    u = torch.as_tensor(data.fine, dtype=torch.float64)
    targets = {k: restrict(u, k) for k in (4, 8)}
    phys = PhysicsLoss.from_data(spec, x, targets, 1.0, 0.0, 1.0, form="laws", lambda_balance=1.0)
    assert PhysicsLoss.from_data(spec, x, targets, 1.0, 0.0, 1.0).terms_available() == ["law"]  # balance: opt-in
    assert phys.terms_available() == ["law", "balance"] and set(phys.scales) == {"bal4", "bal8"}
    terms = phys(u, x)
    assert float(terms["phys_law"]) < 1e-20 and float(terms["phys_balance"]) < 1e-8
    blocky = torch.repeat_interleave(torch.repeat_interleave(targets[4], 4, -2), 4, -1)
    assert float(phys(blocky, x)["phys_balance"]) == pytest.approx(1.0, rel=1e-9)  # its own scale
    # -u: every value has the wrong sign (max_principle 1) and the mean -m lies 1 + m/lo
    # below the lower bound lo; the term is the mean over k and samples of the two in
    # quadrature (smoothed by LAW_EPS)
    lo, _ = compliance_bounds(data.inputs)
    m = data.fine.astype(np.float64).mean(axis=(1, 2, 3)) / spec.physics.forcing
    want = np.mean(np.sqrt(1.0 + (1.0 + m / lo) ** 2 + LAW_EPS**2) - LAW_EPS)
    assert float(phys(-u, x)["phys_law"]) == pytest.approx(want, rel=1e-9)
    # an exact penalty: the pull on a wrong-signed corner (one coarse cell at k = 8) does
    # not fade with its size (a squared penalty's would drop 10x from c = 1e-1 to 1e-2)
    pulls = []
    for c in (1e-1, 1e-2):
        v = u.clone()
        v[:, 0, :8, :8] = -c * u.amax((1, 2, 3))[:, None, None]
        v.requires_grad_(True)
        phys(v, x)["phys_law"].backward()
        pulls.append(float(v.grad[:, 0, :8, :8].abs().mean()))
    assert 0.5 < pulls[1] / pulls[0] < 2.0, pulls


def test_time_dependent_tasks_have_no_balance_term(smoke_samples) -> None:
    for name in ("turbulence", "convection"):
        _, spec, data = smoke_samples[name]
        x = torch.as_tensor(data.inputs)
        phys = PhysicsLoss.from_data(spec, x, {k: torch.as_tensor(data.targets[k]) for k in (4, 8)}, 1.0, 0.0, 1.0)
        assert phys.terms_available() == ["law"], "their residuals are not laws of the truth"


def test_unknown_physics_form_names_the_choices() -> None:
    with pytest.raises(ValueError, match="laws, residual"):
        NeuroScale(physics="pde")
    with pytest.raises(ValueError, match="phys_warmup"):
        NeuroScale(phys_warmup=1.0)


def test_warmup_ramps_after_the_data_term() -> None:
    m = NeuroScale(phys_warmup=0.25)
    assert [m.warmup_factor(p) for p in (0.0, 0.25, 0.375, 0.5, 0.9)] == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert NeuroScale().warmup_factor(0.0) == 1.0


def test_the_loop_reports_progress_before_every_step() -> None:
    model = torch.nn.Linear(2, 1)
    x = torch.randn(20, 2)
    seen: list[tuple[int, int]] = []
    train(model, lambda idx: (model(x[idx]).pow(2).mean(), {}), 20, budget=Budget(3, 60, 8), ctx=Context(),
          progress=lambda s, t: seen.append((s, t)))
    assert seen == [(s, 9) for s in range(9)]  # 3 epochs of ceil(20 / 8) = 3 steps


def test_warmup_trains_on_the_data_alone_first_then_ramps_in(smoke_samples) -> None:
    """``phys_warmup=0.5`` over 8 steps (4 epochs of 2): the logged physics term is 0 in
    the first half of training and positive at its end. With Fourier mixing on."""
    _, spec, data = smoke_samples["darcy"]
    task = TASKS["darcy"].sized("smoke")
    train_data = task.generate(16, seed=3).for_training((4, 8))
    kw = dict(width=8, heads=2, layers=1, ensemble=1, beta=0, lambda_balance=1.0, phys_batch=2)
    m = NeuroScale(**kw, phys_warmup=0.5, spectral_modes=4)
    m.fit(train_data, spec, Budget(epochs=4, max_train_s=120, batch_size=8), Context(seed=0, threads=1))
    bal = m.diagnostics()["train_log"]["terms"]["phys_balance"]
    assert bal[0] == 0.0 and bal[1] == 0.0 and bal[3] > 0.0, bal
    from neuralop.layers.spectral_convolution import SpectralConv

    mixers = [mod for mod in m.networks[0].modules() if isinstance(mod, SpectralConv)]
    assert len(mixers) == 3  # one per level (scales=3) of the one block
    assert np.isfinite(m.predict(data.inputs, 16).mean).all()
