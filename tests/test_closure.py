"""`closure`: a learned correction inside the differentiable LES. An untrained closure is
the LES (to float32 round-off), predictions do not depend on batch composition, training
through the solver lowers the validation error below the LES's, rollouts, checkpoints,
and `n/a` with a reason where a task has no differentiable coarse solver of the family."""

import dataclasses

import numpy as np
import pytest

from methods import closure as closure_module
from methods.closure import Closure
from nskernel import Budget, Context
from nskernel.grid import restrict
from tasks.convection.task import Convection
from tasks.darcy.task import Darcy
from tasks.turbulence.task import Turbulence

NO_TRAINING = Budget(epochs=0, max_train_s=60.0, batch_size=8)


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([np.linalg.norm(x - y) / np.linalg.norm(y) for x, y in zip(a, b)]))


@pytest.fixture(scope="module")
def turbulence():
    task = dataclasses.replace(Turbulence.sized("smoke"), spinup=3.0, snapshots=4, n_train=16, n_test=8, n_val=8)
    ds = task.generate(24, seed=2)
    train, val, test = ds.subset(slice(0, 16)), ds.subset(slice(16, 20)), ds.subset(slice(20, 24))
    return task.spec(), train.for_training((4, 8), validation=val.for_training((4, 8))), test, val


def test_not_applicable_where_there_is_no_differentiable_solver():
    assert "steady" in Closure().not_applicable(Darcy.sized("smoke").spec())
    reason = Closure(base="fv").not_applicable(Turbulence.sized("smoke").spec())
    assert "no differentiable 'fv' coarse solver" in reason and "families with one: spectral" in reason
    assert Closure().not_applicable(Turbulence.sized("smoke").spec()) is None
    assert Closure().not_applicable(Convection.sized("smoke").spec()) is None


def test_untrained_closure_is_the_les(turbulence, one_torch_thread):
    spec, train, test, _ = turbulence
    m = Closure().fit(train, spec, NO_TRAINING, Context(seed=0, threads=1))
    les = spec.coarse_solvers["spectral"]
    for k in (4, 8, 16):
        ref = les.solve(test.inputs, k, **les.params)
        got = m.predict(test.inputs, k).mean
        assert np.abs(got - ref).max() < 1e-5 * np.abs(ref).max(), k
    state = restrict(test.inputs.astype(np.float64), 8)
    np.testing.assert_allclose(m.advance(state, 8).mean, les.advance(state, 8, **les.params), rtol=0, atol=1e-4)


def test_training_through_the_solver_beats_the_les_and_is_batch_independent(turbulence, one_torch_thread, tmp_path):
    spec, train, test, val = turbulence
    m = Closure(lr=2e-3).fit(train, spec, Budget(epochs=4, max_train_s=120.0, batch_size=8), Context(seed=0, threads=1))
    les = spec.coarse_solvers["spectral"]
    for k in (4, 8):
        assert rel(m.predict(val.inputs, k).mean, val.targets[k]) < rel(les.solve(val.inputs, k, **les.params),
                                                                         val.targets[k]), k
    # the step count is fixed per k at fit time, so a sample's prediction is its own
    whole = m.predict(test.inputs, 4).mean
    np.testing.assert_array_equal(m.predict(test.inputs[1:3], 4).mean, whole[1:3])
    assert m.save(tmp_path)
    back = Closure(lr=2e-3).restore(tmp_path, spec, Context(seed=0, threads=1))
    np.testing.assert_array_equal(back.predict(test.inputs, 16).mean, m.predict(test.inputs, 16).mean)


def test_check_params():
    with pytest.raises(ValueError, match="width"):
        Closure(width=0)
    n = sum(p.numel() for p in Closure().build_model(Turbulence.sized("small").spec()).parameters())
    assert n == 9_857 and f"{n:,}" in closure_module.__doc__  # the count the module docstring states

