"""Tests of `neuroscale` on tiny synthetic TaskSpecs (independent of the real tasks).

* ``poisson``: -Lap u = f on the unit square, cell-centred 5-point stencil, Dirichlet
  data from the input channel ``g`` (wall value by linear extrapolation of ``R_k g``).
  Bilinear fields with f = 0, g = u are exact discrete solutions at EVERY level k,
  because the block average of a bilinear field is the same bilinear field at the
  coarse cell centres.
* ``flow``: 3 channels (vx, vy, p), periodic, central-difference divergence.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from bench.names import build_method
from methods.ensemble import mixture_moments
from methods.neuroscale import NeuroScale
from methods.neuroscale.attention import CrossScaleAttention
from methods.neuroscale.losses import PhysicsLoss, gaussian_nll
from methods.neuroscale.uncertainty import VarianceHead, mc_dropout
from nskernel import Budget, Context, Dataset, TaskSpec
from nskernel.errors import UsageError
from nskernel.grid import cell_centres, prolong, restrict

N = 32  # fine grid of the synthetic tasks
TINY = dict(width=8, heads=2, layers=1, mc_samples=3)
CTX = Context(seed=0, threads=2)


# -- synthetic tasks ------------------------------------------------------------------
def poisson_residual(u: torch.Tensor, inputs: torch.Tensor, k: int) -> torch.Tensor:
    """-Lap_h u - R_k f with ghost cells 2 g_wall - u (g_wall extrapolated from R_k g)."""
    f = restrict(inputs[:, 0:1], k)
    g = restrict(inputs[:, 1:2], k)
    n = u.shape[-1]
    h = 1.0 / n
    west = 2 * (1.5 * g[..., :, :1] - 0.5 * g[..., :, 1:2]) - u[..., :, :1]
    east = 2 * (1.5 * g[..., :, -1:] - 0.5 * g[..., :, -2:-1]) - u[..., :, -1:]
    south = 2 * (1.5 * g[..., :1, :] - 0.5 * g[..., 1:2, :]) - u[..., :1, :]
    north = 2 * (1.5 * g[..., -1:, :] - 0.5 * g[..., -2:-1, :]) - u[..., -1:, :]
    ux = torch.cat([west, u, east], dim=-1)
    uy = torch.cat([south, u, north], dim=-2)
    lap = (ux[..., :, 2:] + ux[..., :, :-2] + uy[..., 2:, :] + uy[..., :-2, :] - 4 * u) / h**2
    return -lap - f


def flow_divergence(u: torch.Tensor, k: int) -> torch.Tensor:
    """Periodic central-difference divergence of channels (vx, vy) on the k-coarse grid."""
    h = 1.0 / u.shape[-1]
    vx, vy = u[:, 0], u[:, 1]
    return (vx.roll(-1, -1) - vx.roll(1, -1) + vy.roll(-1, -2) - vy.roll(1, -2)) / (2 * h)


POISSON = TaskSpec(
    name="synthetic_poisson", fine_shape=(N, N), in_channels=2, out_channels=1,
    in_names=("f", "g"), out_names=("u",), boundary="dirichlet", residual=poisson_residual,
)
FLOW = TaskSpec(
    name="synthetic_flow", fine_shape=(N, N), in_channels=3, out_channels=3,
    in_names=("vx", "vy", "p"), out_names=("vx", "vy", "p"), boundary="periodic",
    divergence=flow_divergence,
)


def poisson_matrix(n: int) -> sp.csr_matrix:
    """-Lap_h with zero Dirichlet data (ghost = -u), the same stencil as the residual."""
    t = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n)).tolil()
    t[0, 0] = t[-1, -1] = 3.0
    eye = sp.identity(n)
    return ((sp.kron(eye, t) + sp.kron(t, eye)) * n * n).tocsr()


def poisson_data(n_samples: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = cell_centres(N)
    X, Y = np.meshgrid(x, x)
    a = poisson_matrix(N)
    inputs = np.zeros((n_samples, 2, N, N))
    fine = np.zeros((n_samples, 1, N, N))
    for i in range(n_samples):
        c = rng.normal(size=4)
        f = c[0] + c[1] * np.sin(2 * np.pi * X) + c[2] * np.cos(3 * np.pi * Y) + c[3] * (X > 0.5)
        inputs[i, 0] = f
        fine[i, 0] = spla.spsolve(a, f.ravel()).reshape(N, N)
    return Dataset(inputs=inputs, targets={k: restrict(fine, k) for k in (4, 8, 16)}, fine=fine)


def flow_data(n_samples: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(n_samples, 3, N, N))
    smooth = 0.5 * (inputs + np.roll(inputs, 1, -1))
    return Dataset(inputs=inputs, targets={k: restrict(smooth, k) for k in (4, 8, 16)})


def bilinear(n: int, coef: tuple[float, float, float, float]) -> np.ndarray:
    x = cell_centres(n)
    X, Y = np.meshgrid(x, x)
    return coef[0] + coef[1] * X + coef[2] * Y + coef[3] * X * Y


@pytest.fixture(scope="module")
def fitted_poisson() -> NeuroScale:
    data = poisson_data(12).for_training((4, 8))
    # Generous time, few epochs: the epochs bind, so the run is deterministic. The
    # proposal's residual form (the default law form needs TaskSpec.laws: test_physics_laws).
    budget = Budget(epochs=3, max_train_s=60, batch_size=4)
    return NeuroScale(**TINY, physics="residual").fit(data, POISSON, budget, CTX)


# -- parameters ------------------------------------------------------------------------
def test_params_stored_unchanged_and_variants_construct() -> None:
    defaults = NeuroScale.param_defaults()
    for name in ("gamma", "beta", "scales", "ensemble", "dropout", "width", "heads", "window",
                 "lr", "weight_decay", "lambda_fine", "lambda_coarse", "lambda_div"):
        assert name in defaults
    params = dict(defaults, gamma=0.25, ensemble=3, lambda_div=0.5)
    assert NeuroScale(**params).get_params() == params
    assert NeuroScale().probabilistic and NeuroScale.name == "neuroscale"
    assert not NeuroScale(beta=0).probabilistic  # per instance
    for variant in ({"gamma": 0}, {"beta": 0}, {"scales": 1}, {"dropout": 0},
                    *({"ensemble": m} for m in (1, 2, 4, 8))):
        assert NeuroScale(**variant).get_params() == dict(defaults, **variant)
    with pytest.raises(ValueError, match="window=2"):
        NeuroScale(window=2)
    with pytest.raises(UsageError, match="window=2"):  # on the command line: exit code 2
        build_method("neuroscale:window=2")
    assert NeuroScale(scales=5, stem=4).not_applicable(POISSON) is not None


# -- attention -------------------------------------------------------------------------
def _levels(b: int, c: int, n: int, levels: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, c, n >> lvl, n >> lvl, generator=g, dtype=torch.float64) for lvl in range(levels)]


def test_attention_joint_softmax_sums_to_one_over_all_scales() -> None:
    torch.manual_seed(0)
    att = CrossScaleAttention(width=8, heads=2, levels=3, window=3, global_tokens=2).double()
    us = _levels(2, 8, 16, 3, seed=1)
    for lq, (w, sizes) in enumerate(att.weights(us)):
        # Blocks: one 3x3 window per level lk >= lq, then the 2x2 global tokens.
        assert sizes == [9] * (3 - lq) + [4]
        assert w.shape == (2, 2, 16 >> lq, 16 >> lq, sum(sizes))
        torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)), rtol=0, atol=1e-12)
        blocks = torch.stack([p.sum(-1) for p in w.split(sizes, dim=-1)])
        # One softmax over the union, not one per scale: every block gets a share < 1.
        assert (blocks > 0).all() and (blocks < 1).all()
        # Window positions outside the grid carry exactly zero weight.
        assert (w[:, :, 0, 0, :3] == 0).all()  # offsets (-1, -1..1) above the first row
    assert att.n_keys(0, (4, 4)) == 3 * 9 + 4


def test_attention_matches_brute_force_reference() -> None:
    torch.manual_seed(3)
    levels, width, heads, n = 3, 4, 2, 8
    att = CrossScaleAttention(width, heads, levels, window=3, global_tokens=2).double()
    with torch.no_grad():
        att.rel_bias.normal_()
        att.global_bias.normal_()
    us = _levels(1, width, n, levels, seed=2)
    out = att(us)
    dh = width // heads
    qkv = [att.qkv[lvl](u)[0] for lvl, u in enumerate(us)]
    pooled = torch.nn.functional.adaptive_avg_pool2d(us[-1], 2)
    kg, vg = att.kv_global(pooled)[0].flatten(1).chunk(2, dim=0)
    for lq in range(levels):
        q = qkv[lq][:width]
        ref = torch.zeros(width, n >> lq, n >> lq, dtype=torch.float64)
        for i in range(n >> lq):
            for j in range(n >> lq):
                for hd in range(heads):
                    sl = slice(hd * dh, (hd + 1) * dh)
                    logits, values = [], []
                    for lk in range(lq, levels):
                        kk, vv = qkv[lk][width:2 * width], qkv[lk][2 * width:]
                        ai, aj = i >> (lk - lq), j >> (lk - lq)  # ancestor cell
                        for o, (di, dj) in enumerate((a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)):
                            y, x = ai + di, aj + dj
                            if 0 <= y < kk.shape[1] and 0 <= x < kk.shape[2]:
                                logits.append(q[sl, i, j] @ kk[sl, y, x] / math.sqrt(dh) + att.rel_bias[lq, lk, hd, o])
                                values.append(vv[sl, y, x])
                    for t in range(kg.shape[1]):
                        logits.append(q[sl, i, j] @ kg[sl, t] / math.sqrt(dh) + att.global_bias[lq, hd])
                        values.append(vg[sl, t])
                    a = torch.softmax(torch.stack(logits), 0)
                    ref[sl, i, j] = (a[:, None] * torch.stack(values)).sum(0)
        expect = att.proj[lq](ref[None])
        torch.testing.assert_close(out[lq], expect, rtol=1e-10, atol=1e-12)


# -- physics ---------------------------------------------------------------------------
def _physics(lf: float = 1.0, lc: float = 1.0) -> tuple[PhysicsLoss, torch.Tensor, torch.Tensor]:
    u = torch.as_tensor(bilinear(N, (0.3, 1.0, -2.0, 1.5)))[None, None]
    inputs = torch.cat([torch.zeros_like(u), u], dim=1)  # f = 0, g = u
    targets = {k: restrict(u, k) for k in (4, 8)}
    return PhysicsLoss.from_data(POISSON, inputs, targets, lf, lc, 1.0, form="residual"), u, inputs


def test_physics_loss_zero_on_exact_field_and_exact_on_a_bump() -> None:
    phys, u, inputs = _physics()
    # Scales: the fine term by the prolonged finest target; a coarse term by its target,
    # which here solves the coarse equation exactly, hence the zero-field fallback.
    blocky = prolong(restrict(u, 4), 4)
    assert phys.scales["res1"] == pytest.approx(float(poisson_residual(blocky, inputs, 1).pow(2).mean()))
    zero = torch.zeros_like(restrict(u, 8))
    assert phys.scales["res8"] == pytest.approx(float(poisson_residual(zero, inputs, 8).pow(2).mean()))
    terms = phys(u, inputs)
    assert set(terms) == {"phys_fine", "phys_coarse"}
    assert all(float(t) < 1e-20 for t in terms.values())
    # A bump delta in one interior fine cell changes the fine residual by 4 delta/h^2 there
    # and -delta/h^2 at its 4 neighbours; at level k the cell average changes by
    # delta/k^2 in one coarse cell, with the same 5-point pattern at spacing k h.
    delta, i = 1e-3, 13
    bumped = u.clone()
    bumped[..., i, i] += delta
    terms = phys(bumped, inputs)
    fine = 20 * (delta * N**2) ** 2 / N**2 / phys.scales["res1"]
    coarse = np.mean(
        [20 * (delta / k**2 * (N // k) ** 2) ** 2 / (N // k) ** 2 / phys.scales[f"res{k}"] for k in (4, 8)]
    )
    assert float(terms["phys_fine"]) == pytest.approx(fine, rel=1e-9)
    assert float(terms["phys_coarse"]) == pytest.approx(coarse, rel=1e-9)


def test_divergence_term_zero_for_uniform_flow_positive_otherwise() -> None:
    y = torch.zeros(2, 3, N, N, dtype=torch.float64)
    y[:, 0], y[:, 1] = 1.5, -0.5
    wave = torch.sin(2 * math.pi * torch.as_tensor(cell_centres(N)))
    rough = y.clone()
    rough[:, 0] += wave
    phys = PhysicsLoss.from_data(FLOW, rough, {k: restrict(rough, k) for k in (4, 8)}, 1.0, 1.0, 1.0, form="residual")
    assert set(phys(y, rough)) == {"phys_div"}
    assert float(phys(y, rough)["phys_div"]) < 1e-28
    # For a field with only vx varying, the scale IS its divergence energy: term == 1.
    assert float(phys(rough, rough)["phys_div"]) == pytest.approx(1.0, rel=1e-12)


# -- uncertainty -----------------------------------------------------------------------
def test_nll_head_gradcheck() -> None:
    torch.manual_seed(0)
    head = VarianceHead(width=3, out_channels=2, log2k_centre=2.5).double()
    feats = torch.randn(2, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    mean = torch.randn(2, 2, 2, 2, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 2, 2, 2, dtype=torch.float64)
    weight = head.net[0].weight.detach().clone().requires_grad_(True)

    def nll(feats: torch.Tensor, mean: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        params = {n: p for n, p in head.named_parameters()}
        params["net.0.weight"] = weight
        logvar = torch.func.functional_call(head, params, (feats, 16))  # an unseen factor
        return gaussian_nll(mean, logvar, target)

    assert torch.autograd.gradcheck(nll, (feats, mean, weight), eps=1e-6, atol=1e-8)


def test_mixture_variance_is_zero_only_where_members_agree() -> None:
    means = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.5, 5.0]])
    mean, var = mixture_moments(means, None)
    torch.testing.assert_close(mean, torch.tensor([1.0, 2.25, 4.0]))
    torch.testing.assert_close(var, torch.tensor([0.0, 0.0625, 1.0]))
    _, var = mixture_moments(means, torch.full_like(means, 0.5))
    torch.testing.assert_close(var, torch.tensor([0.5, 0.5625, 1.5]))


def test_ensemble_variance_positive_and_shrinks_where_members_agree(fitted_poisson: NeuroScale) -> None:
    m = copy.deepcopy(fitted_poisson)
    m.dropout = 0.0  # ensemble only (MC dropout is tested below)
    x = poisson_data(3, seed=9).inputs
    with torch.no_grad():
        xt = m.encode(m._tensor(x))
        outs = [member.predict(xt, 4) for member in m.networks]
    means = torch.stack([m.decode(mu) for mu, _ in outs])
    ale = torch.stack([torch.exp(lv) * m._y_std**2 for _, lv in outs])
    before = m.predict(x, 4)
    assert before.var is not None and (before.var > 0).all()
    spread = (means - means.mean(0)).pow(2).mean(0)
    assert (spread > 0).all()
    np.testing.assert_allclose(before.var, (ale.mean(0) + spread).numpy(), rtol=1e-4)
    m.networks[1].load_state_dict(m.networks[0].state_dict())  # the members now agree
    after = m.predict(x, 4)
    np.testing.assert_allclose(after.var, ale[0].numpy(), rtol=1e-4)  # aleatoric only


def test_mc_dropout_draws_differ_and_are_reproducible(fitted_poisson: NeuroScale) -> None:
    member = fitted_poisson.networks[0]
    x = torch.randn(2, 2, N, N)
    draws = []
    for seed in (1, 2, 1):
        with torch.no_grad(), mc_dropout(member, seed=seed):
            draws.append(member.predict(x, 4)[0])
    assert not torch.equal(draws[0], draws[1])
    assert torch.equal(draws[0], draws[2])
    assert not any(mod.training for mod in member.modules())  # eval mode restored


# -- fit and predict ---------------------------------------------------------------------
def test_fit_reduces_loss_and_predicts_every_factor(fitted_poisson: NeuroScale) -> None:
    m = fitted_poisson
    log = m.diagnostics()
    # Each member: an equal share of the time and of the epochs (rounded up).
    assert len(log["member_logs"]) == 2 and log["member_budget"] == {"epochs": 2, "max_train_s": 30.0}
    for mlog in log["member_logs"]:
        assert mlog["terms"]["data"][-1] < mlog["terms"]["data"][0]
    assert set(log["train_log"]["terms"]) == {"data", "nll", "phys_fine"}  # lambda_coarse=0 by default
    test = poisson_data(3, seed=5)
    many = m.predict_many(test.inputs, (2, 4, 8, 16))  # one pass per member and mask
    for k in (2, 4, 8, 16):  # 16 and 2 were never trained on
        pred = m.predict(test.inputs, k)
        assert pred.mean.shape == (3, 1, N // k, N // k) and np.isfinite(pred.mean).all()
        assert pred.var is not None and pred.var.shape == pred.mean.shape and np.isfinite(pred.var).all()
        np.testing.assert_allclose(many[k].mean, pred.mean, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(many[k].var, pred.var, rtol=1e-6, atol=1e-12)
    # R_k consistency of the mean: the k=16 prediction is the average of the k=8 one.
    p8, p16 = m.predict(test.inputs, 8).mean, m.predict(test.inputs, 16).mean
    np.testing.assert_allclose(p16, restrict(p8, 2), rtol=1e-5, atol=1e-7)
    assert m.n_params() == 2 * log["n_params_member"]


@pytest.mark.parametrize("variant", [{"beta": 0, "ensemble": 1, "physics": "residual"},
                                     {"gamma": 0, "scales": 1, "dropout": 0}])
def test_flow_variants_shapes(variant: dict[str, float]) -> None:
    data = flow_data(8).for_training((4, 8))
    spec = dataclasses.replace(FLOW, time_dependent=True)  # also exercises `advance`
    m = NeuroScale(**TINY, **variant).fit(data, spec, Budget(epochs=2, max_train_s=60, batch_size=4), CTX)
    if variant.get("gamma", 0.1) > 0:
        assert "phys_div" in m.diagnostics()["train_log"]["terms"]
    for k in (4, 8, 16):
        pred = m.predict(flow_data(2, seed=3).inputs, k)
        assert pred.mean.shape == (2, 3, N // k, N // k) and np.isfinite(pred.mean).all()
        assert (pred.var is None) == (not m.probabilistic)
    state = restrict(flow_data(2, seed=4).inputs, 8)
    nxt = m.advance(state, 8)
    assert nxt.mean.shape == state.shape and np.isfinite(nxt.mean).all()


def test_fine_physics_term_runs_at_the_tasks_physics_k() -> None:
    """A task may move the "fine" residual to a coarser level (turbulence: k=4); the term
    is then the residual of R_kf u at kf, scaled by the prolonged finest target there."""
    calls: list[int] = []

    def residual(u: torch.Tensor, inputs: torch.Tensor, k: int) -> torch.Tensor:
        calls.append(k)
        return poisson_residual(u, inputs, k)

    spec = dataclasses.replace(POISSON, residual=residual, physics_k=2)
    u = torch.as_tensor(bilinear(N, (0.3, 1.0, -2.0, 1.5)))[None, None]
    inputs = torch.cat([torch.zeros_like(u), u], dim=1)
    phys = PhysicsLoss.from_data(spec, inputs, {k: restrict(u, k) for k in (4, 8)}, 1.0, 0.0, 1.0, form="residual")
    assert set(phys.scales) == {"res2", "res4", "res8"} and 1 not in calls
    blocky = prolong(restrict(u, 4), 2)  # the finest target, prolonged to level 2
    assert phys.scales["res2"] == pytest.approx(float(poisson_residual(blocky, inputs, 2).pow(2).mean()))
    calls.clear()
    bump = u.clone()
    bump[..., N // 2, N // 2] += 1.0
    got = float(phys(bump, inputs)["phys_fine"])
    want = float(poisson_residual(restrict(bump, 2), inputs, 2).pow(2).mean()) / phys.scales["res2"]
    assert calls == [2] and got == pytest.approx(want, rel=1e-10)
