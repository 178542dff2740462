"""The graph-domain contract (`nskernel.GraphDomain`, `TaskSpec.graph`), the registered
task ``kuramoto`` and its metrics (closed forms), and the matrix end to end on it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from bench.data import file_checksum, load, save, task_config
from bench.names import build_method, build_task
from bench.records import read_results
from bench.runner import RunConfig, run
from methods import METHODS
from nskernel import GraphDomain, TaskSpec, domain_not_supported
from nskernel.grid import restrict
from tasks import TASKS
from tasks.kuramoto import metrics as km

TASK = TASKS["kuramoto"].sized("smoke")


def tiny_graph() -> GraphDomain:
    """A 6-node path with nested levels k=2 (pairs) and k=4 (two super-nodes of 2 and 4 nodes)."""
    i = np.arange(5)
    edges = np.stack([np.r_[i, i + 1], np.r_[i + 1, i]])
    return GraphDomain(6, edges, np.ones(10), {2: np.array([0, 0, 1, 1, 2, 2]), 4: np.array([0, 0, 1, 1, 1, 1])},
                       {"omega": np.linspace(-1, 1, 6)})


@pytest.fixture(scope="module")
def data():
    return TASK.generate(8, seed=0)


# -- kernel contract ---------------------------------------------------------------------
def test_graph_restriction_preserves_sums_and_composes():
    g, rng = tiny_graph(), np.random.default_rng(0)
    u = rng.standard_normal((3, 2, 6))
    for k in (2, 4):
        r = g.restrict(u, k)
        assert r.shape == (3, 2, g.n_coarse(k))
        np.testing.assert_allclose(r @ g.sizes(k), u.sum(-1), rtol=1e-13)
        np.testing.assert_array_equal(g.restrict(g.prolong(r, k), k), r)
    np.testing.assert_allclose(g.restrict(g.restrict(u, 2), 4, from_k=2), g.restrict(u, 4), rtol=1e-13)
    np.testing.assert_allclose(g.restrict(u, 4)[..., 1], u[..., 2:].mean(-1), rtol=1e-13)
    t = g.restrict(torch.as_tensor(u), 4)
    np.testing.assert_allclose(t.numpy(), g.restrict(u, 4), rtol=1e-13)


def test_graph_domain_rejects_bad_levels():
    g = tiny_graph()
    with pytest.raises(ValueError, match="not nested"):
        dataclasses.replace(g, levels={2: np.array([0, 0, 1, 1, 2, 2]), 4: np.array([0, 1, 1, 1, 0, 0])})
    with pytest.raises(ValueError, match="none empty"):
        dataclasses.replace(g, levels={2: np.array([0, 0, 2, 2, 2, 2])})
    with pytest.raises(ValueError, match=r"valid: 1, 2, 4"):
        g.n_coarse(8)


def test_spec_dispatches_on_the_domain():
    g = tiny_graph()
    spec = TaskSpec(name="g", fine_shape=(6,), in_channels=1, out_channels=1, in_names=("u",), out_names=("u",),
                    boundary="graph", k_values=(2, 4), graph=g)
    assert spec.kind == "graph" and spec.coarse_shape(4) == (2,) and not spec.supports_factor(3)
    with pytest.raises(ValueError, match="no partition level"):
        spec.coarse_shape(8)
    with pytest.raises(ValueError, match="k_values"):
        dataclasses.replace(spec, k_values=(2, 8))
    grid = TaskSpec(name="d", fine_shape=(16, 16), in_channels=1, out_channels=1, in_names=("u",),
                    out_names=("u",), boundary="periodic")
    u = np.random.default_rng(1).standard_normal((2, 1, 16, 16))
    assert grid.kind == "grid"
    np.testing.assert_array_equal(grid.restrict(u, 8), restrict(u, 8))  # grids: exactly the block average
    np.testing.assert_array_equal(grid.restrict(restrict(u, 4), 8, 4), restrict(restrict(u, 4), 2))


def test_methods_declare_their_domains():
    spec = TASK.spec()
    for name in ("mean", "persistence", "coarse_oa"):
        assert domain_not_supported(build_method(name)[1], spec) is None
    for name in ("fno", "coarse_fv", "unet", "conformal"):
        reason = domain_not_supported(build_method(name)[1], spec)
        assert reason and "graph" in reason and name in reason
    darcy = TASKS["darcy"].sized("smoke").spec()
    reason = domain_not_supported(build_method("coarse_oa")[1], darcy)
    assert reason and "grid" in reason
    assert all(set(cls.domains) <= {"grid", "graph"} for cls in METHODS.values())


# -- the task ------------------------------------------------------------------------------
def test_kuramoto_targets_are_member_means_of_the_fine_state(data):
    spec = TASK.spec()
    assert spec.k_values == (4, 8, 16)
    n = spec.graph.n_nodes
    for k in spec.k_values:  # nominal factors: about n / k super-nodes
        assert abs(spec.graph.n_coarse(k) - n / k) <= 1
        np.testing.assert_allclose(data.targets[k], spec.restrict(data.fine.astype(np.float64), k), atol=1e-6)
        np.testing.assert_allclose(data.rollouts[k][:, 0], spec.restrict(data.inputs.astype(np.float64), k),
                                   atol=1e-6)
        np.testing.assert_array_equal(data.rollouts[k][:, 1], data.targets[k])
    # one interval of the fine solver from the stored input reproduces the stored fine state
    np.testing.assert_allclose(TASK.fine_solve(data.inputs[:2]), data.fine[:2], atol=2e-6)
    assert km.disc(data.targets[16]).max() == 0.0


def test_kuramoto_data_are_prefixes_and_store_the_graph(tmp_path, data):
    small = TASK.generate(4, seed=0)
    np.testing.assert_array_equal(small.inputs, data.inputs[:4])
    path = tmp_path / "k.h5"
    digest = save(data, path, task_config(TASK))
    loaded, again = load(path)
    assert again == digest and file_checksum(path) == (digest, digest)
    g = TASK.spec().graph
    for k in g.k_values:
        np.testing.assert_array_equal(loaded.static[f"levels/k{k}"], g.levels[k])
    np.testing.assert_array_equal(loaded.static["node_features/omega"], g.node_features["omega"])
    np.testing.assert_array_equal(loaded.static["edges"], g.edges)


def test_kuramoto_noise_variant_perturbs_inputs_and_training_targets_only():
    """ROMA's noise on input and output training data: every input is noisy; the targets
    of training and validation samples are ``R_k`` of a noisy fine observation; the test
    targets and the rollouts stay clean."""
    splits = "n_train=4,n_test=4,n_val=4"  # one trajectory per split (4 snapshots each)
    clean = build_task(f"kuramoto:{splits}", "smoke")[1].generate(12, seed=0)
    d = build_task(f"kuramoto:noise=0.1,{splits}", "smoke")[1].generate(12, seed=0)
    rms = np.sqrt(((d.inputs - clean.inputs) ** 2).sum(axis=1).mean())  # magnitude of the 2-vector noise
    assert 0.09 < rms < 0.11
    test, noisy = slice(4, 8), np.r_[0:4, 8:12]
    for k in (4, 8, 16):
        np.testing.assert_array_equal(d.targets[k][test], clean.targets[k][test])
        np.testing.assert_array_equal(d.rollouts[k], clean.rollouts[k])
        diff = d.targets[k][noisy] - clean.targets[k][noisy]
        # the member mean of noise of RMS 0.1 over ~k members: RMS ~ 0.1 / sqrt(k), never 0
        rms_k = np.sqrt((diff**2).sum(axis=1).mean())
        assert 0.1 / np.sqrt(k) / 2 < rms_k < 0.1 / np.sqrt(k) * 2, (k, rms_k)
    fine_rms = np.sqrt(((d.fine[noisy] - clean.fine[noisy]) ** 2).sum(axis=1).mean())
    assert 0.09 < fine_rms < 0.11 and (d.fine[test] == clean.fine[test]).all()
    inputs_only = build_task(f"kuramoto:noise=0.1,target_noise=False,{splits}", "smoke")[1].generate(12, seed=0)
    np.testing.assert_array_equal(inputs_only.inputs, d.inputs)
    np.testing.assert_array_equal(inputs_only.targets[8], clean.targets[8])


def test_ott_antonsen_solver_shapes_and_one_step_error(data):
    spec = TASK.spec()
    oa = spec.coarse_solvers["oa"]
    for k in spec.k_values:
        out = oa.solve(data.inputs, k)
        assert out.shape == data.targets[k].shape
        np.testing.assert_allclose(oa.advance(data.rollouts[k][:, 0], k), out, atol=1e-6)  # float32 storage
        # one interval moves the state by ~0.3%: the model must be closer than a 10x worse step
        err = np.linalg.norm(out - data.targets[k]) / np.linalg.norm(data.targets[k])
        assert err < 0.03


def test_torch_dataset_reads_graph_splits(data_dir):
    from bench.torch_data import TaskDataset
    from nskernel.errors import UsageError

    ds = TaskDataset("kuramoto", "test", "smoke", k=(4, 16), normalise=True, data_dir=data_dir)
    x, ys = ds[0]
    n = TASK.spec().graph.n_nodes
    assert x.shape == (2, n) and ys[16].shape == (2, TASK.spec().graph.n_coarse(16))
    assert ds.stats["inputs"][0].shape == (2,)
    with pytest.raises(UsageError, match="graph"):
        TaskDataset("kuramoto", "test", "smoke", k=4, input_k=4, data_dir=data_dir)


# -- metrics (closed forms) -----------------------------------------------------------------
def test_symmetric_relative_l2_closed_forms():
    y = np.random.default_rng(2).standard_normal((3, 2, 10))
    assert np.all(km.sym_rel_l2(y, y) == 0.0)
    np.testing.assert_allclose(km.sym_rel_l2(-y, y), 1.0, rtol=1e-14)
    np.testing.assert_allclose(km.sym_rel_l2(3 * y, y), 0.5, rtol=1e-14)  # |c - 1| / (c + 1)
    zero = np.zeros_like(y)
    assert np.all(km.sym_rel_l2(zero, zero) == 0.0)
    half = y.copy()
    half[..., :5] = 0.0  # half of the nodes predicted 0: each contributes 1
    np.testing.assert_allclose(km.sym_rel_l2(half, y), np.sqrt(0.5), rtol=1e-14)


def test_order_parameter_error_closed_forms():
    g = tiny_graph()
    spec = TaskSpec(name="g", fine_shape=(6,), in_channels=2, out_channels=2, in_names=("c", "s"),
                    out_names=("c", "s"), boundary="graph", k_values=(2, 4), graph=g)
    phi = np.array([[0.0, 0.0, np.pi, np.pi, 0.0, 0.0]])
    y = g.restrict(np.stack([np.cos(phi), np.sin(phi)], axis=1), 4)  # sizes 2 and 4
    # r = |2 * 1 + 4 * 0| / 6 = 1/3 (the member mean keeps the fine sum)
    np.testing.assert_allclose(km.order_parameter(y, g.sizes(4)), [1 / 3], rtol=1e-14)
    assert km.order_err(y, y, spec, 4)[0] == 0.0
    np.testing.assert_allclose(km.order_err(np.zeros_like(y), y, spec, 4), [1 / 3], rtol=1e-14)
    # unweighted, the two super-nodes would give |1 + 0| / 2 = 1/2: the sizes matter
    rotated = np.stack([-y[:, 1], y[:, 0]], axis=1)  # every z_a times i: same |Z|
    np.testing.assert_allclose(km.order_err(rotated, y, spec, 4), [0.0], atol=1e-15)


def test_disc_law_closed_form_and_torch_form():
    z = np.zeros((2, 2, 4))
    assert np.all(km.disc(z) == 0.0)
    z[1, 0, 0] = 3.0  # one of 4 super-nodes at |z| = 3: sqrt((3 - 1)^2 / 4) = 1
    np.testing.assert_allclose(km.disc(z), [0.0, 1.0], rtol=1e-14)
    u = torch.tensor(z, requires_grad=True)
    law = km.disc_law(u, None, 4)
    np.testing.assert_allclose(law.detach().numpy()[:, 0], [0.0, 1.0], rtol=1e-7, atol=1e-100)
    law.sum().backward()  # d/dx (|x| - 1) / 2 = 1/2 at the violating node, 0 elsewhere (finite at z = 0)
    expected = np.zeros_like(z)
    expected[1, 0, 0] = 0.5
    np.testing.assert_allclose(u.grad.numpy(), expected, atol=1e-12)


# -- end to end ---------------------------------------------------------------------------
def test_kuramoto_smoke_matrix_end_to_end(tmp_path, data_dir):
    """Graph-capable methods score, a learned one's rollouts included; every grid method
    (and the grid coarse solvers) is n/a with a reason naming the domain."""
    methods = "mean,persistence,coarse_oa,coarse_fv,fno,gnn:width=8,n_layers=1"
    counts = run(RunConfig(tasks="kuramoto", methods=methods, size="smoke", data_dir=data_dir, progress=False,
                           out=tmp_path / "run", epochs=1), log=lambda s: None)
    assert counts == {"ok": 4, "n/a": 2}
    df = read_results(tmp_path / "run")
    ok = df[df.method.isin(["mean", "persistence", "coarse_oa"]) & (df.metric == "rel_l2")]
    assert sorted(set(ok.k)) == [4, 8, 16] and (ok.status == "ok").all()
    for metric in ("sym_rel_l2", "order_err", "disc", "rollout_rel_l2@8", "speedup", "equal_error_cost_ratio"):
        assert set(df[df.metric == metric].method) >= {"persistence", "coarse_oa"}, metric
    gnn = df[(df.method == "gnn:width=8,n_layers=1") & df.metric.str.startswith("rollout_rel_l2")]
    assert len(gnn) == 3 * 4 and (gnn.status == "ok").all() and gnn.value.notna().all()
    pers = df[(df.method == "persistence") & (df.metric == "rel_l2")].value.to_numpy()
    mean = df[(df.method == "mean") & (df.metric == "rel_l2")].value.to_numpy()
    assert (pers < 0.1 * mean).all()  # one interval: persistence is far better than the climatology
    na = df[df.method.isin(["coarse_fv", "fno"])]
    assert (na.status == "n/a").all() and na.reason.str.contains("graph").all()
