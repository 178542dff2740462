"""Learned graph methods (`methods.graph`): the torch graph operators against closed forms
and SciPy, the persistence start of every network, training and checkpoint round trips."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from methods import METHODS
from methods.graph.ops import GraphOps, segment_softmax_pool
from nskernel import Budget, Context
from tasks import TASKS

TASK = TASKS["kuramoto"].sized("smoke")
SPEC = TASK.spec()
NO_TRAINING = Budget(epochs=0, max_train_s=30.0, batch_size=8)
TINY = Budget(epochs=2, max_train_s=60.0, batch_size=8)
GRAPH_METHODS = ("gnn", "roma", "deeponet_graph")
SMALL = {"gnn": {"width": 8, "n_layers": 1}, "roma": {"width": 8, "n_layers": 1, "heads": 2},
         "deeponet_graph": {"width": 8, "basis": 4, "embed": 2}}


@pytest.fixture(scope="module")
def data():
    return TASK.generate(16, seed=0)


def test_propagate_is_the_coupling_matrix():
    g = SPEC.graph
    w = sp.csr_matrix((g.weights, (g.edges[0], g.edges[1])), shape=(g.n_nodes, g.n_nodes))
    h = np.random.default_rng(0).standard_normal((2, g.n_nodes, 3))  # channels last
    out = GraphOps(g).propagate(torch.as_tensor(h)).numpy()
    np.testing.assert_allclose(out, np.einsum("ij,bjc->bic", w.toarray(), h), rtol=1e-12, atol=1e-12)


def test_softmax_pool_closed_forms():
    g = SPEC.graph
    idx = torch.as_tensor(g.assignment(8))
    h = torch.as_tensor(np.random.default_rng(1).standard_normal((2, g.n_nodes, 3)))  # channels last
    equal = segment_softmax_pool(h, torch.zeros(2, g.n_nodes, dtype=h.dtype), idx, g.n_coarse(8))
    member_mean = g.restrict(h.numpy().transpose(0, 2, 1), 8).transpose(0, 2, 1)
    np.testing.assert_allclose(equal.numpy(), member_mean, rtol=1e-12)  # equal scores: the member mean
    score = torch.zeros(2, g.n_nodes, dtype=h.dtype)
    first = np.unique(g.assignment(8), return_index=True)[1]  # one member of every super-node
    score[:, first] = 1e3  # dominates its segment; scores far below other segments' do not underflow
    score[:, first[0]] = -1e3
    picked = segment_softmax_pool(h, score - 500.0, idx, g.n_coarse(8)).numpy()
    np.testing.assert_allclose(picked[:, 1:], h.numpy()[:, first[1:]], rtol=1e-12)
    assert np.isfinite(picked).all()


@pytest.mark.parametrize("name", GRAPH_METHODS)
def test_untrained_network_is_persistence(name, data):
    train = data.subset(slice(0, 8)).for_training((4, 8))
    m = METHODS[name](**SMALL[name]).fit(train, SPEC, NO_TRAINING, Context(seed=0))
    x = data.inputs[8:12]
    for k, pred in m.predict_many(x, (4, 8, 16)).items():
        np.testing.assert_allclose(pred.mean, SPEC.restrict(x.astype(np.float64), k), atol=2e-6)
        # a rollout step prolongs the level-k state to the nodes, applies the network and
        # restricts: persistence again (R_k P_k = I), off the unit circle too
        state = data.rollouts[k][8:12, 2]
        np.testing.assert_allclose(m.advance(state, k).mean, state, atol=2e-6)


@pytest.mark.parametrize("name", GRAPH_METHODS)
def test_graph_method_trains_and_restores(name, data, tmp_path):
    val = data.subset(slice(12, 16))
    train = data.subset(slice(0, 12)).for_training((4, 8), validation=val)
    m = METHODS[name](**SMALL[name]).fit(train, SPEC, TINY, Context(seed=0))
    assert m.train_log.steps > 0 and m.n_params() > 0
    pred = m.predict(data.inputs[:3], 16).mean
    assert pred.shape == (3, 2, SPEC.graph.n_coarse(16)) and np.isfinite(pred).all()
    assert m.save(tmp_path)
    again = METHODS[name](**SMALL[name]).restore(tmp_path, SPEC, Context(seed=0))
    np.testing.assert_array_equal(again.predict(data.inputs[:3], 16).mean, pred)


def test_roma_rejects_heads_that_do_not_divide_the_width():
    with pytest.raises(ValueError, match="multiple of heads"):
        METHODS["roma"](width=10, heads=4)
