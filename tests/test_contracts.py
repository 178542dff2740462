"""Contract tier: every registered task, method and metric honours its interface."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from bench.catalog import metric_catalog
from bench.metrics import METRICS, RETIRED
from bench.names import build_method, build_task, parse_spec, resolve_methods, split_list
from bench.scoring import scored_metrics
from methods import METHODS, VARIANTS
from nskernel import SIZES, Method, Prediction, TaskSpec, build_registry, domain_not_supported
from nskernel.errors import UsageError
from nskernel.metric import GROUPS
from tasks import TASK_VARIANTS, TASKS


@pytest.mark.parametrize("name", TASKS.keys())
def test_task_spec_is_consistent(name):
    task = TASKS[name].sized("smoke")
    spec = task.spec()
    assert isinstance(spec, TaskSpec) and spec.name == name
    if spec.kind == "grid":
        assert all(n % 16 == 0 for n in spec.fine_shape), "every fine resolution is divisible by 16"
    else:  # a graph: nested partition levels for every factor, fields on nodes
        assert spec.fine_shape == (spec.graph.n_nodes,) and set(spec.k_values) <= set(spec.graph.levels)
    assert len(spec.in_names) == spec.in_channels and len(spec.out_names) == spec.out_channels
    assert spec.fine_solve is not None and spec.fine_solver_name
    # every task declares the laws its truth satisfies exactly (docs/metrics.md)
    assert any(m.group == "physics" and m.headline for m in TASKS[name].metrics)
    if spec.time_dependent:
        assert spec.in_channels == spec.out_channels and spec.rollout_horizons
        assert all(s.advance is not None for s in spec.coarse_solvers.values())
    for size in SIZES:
        TASKS[name].sized(size)
    with pytest.raises(ValueError, match="smoke"):
        TASKS[name].sized("huge")


@pytest.mark.parametrize("name", TASKS.keys())
def test_task_generates_deterministic_samples_of_the_right_shape(name):
    task = TASKS[name].sized("smoke")
    spec = task.spec()
    a, b = task.generate(2, seed=3), task.generate(2, seed=3)
    assert a.inputs.shape == (2, spec.in_channels, *spec.fine_shape)
    for k in spec.k_values:
        assert a.targets[k].shape == (2, spec.out_channels, *spec.coarse_shape(k))
        np.testing.assert_array_equal(a.targets[k], b.targets[k])
    for family, solver in spec.coarse_solvers.items():
        out = solver.solve(a.inputs, 8, **solver.params)
        assert out.shape == a.targets[8].shape, family
        assert np.isfinite(out).all()


@pytest.mark.parametrize("name", METHODS.keys())
def test_method_hyperparameters_are_stored_unchanged(name):
    cls = METHODS[name]
    assert issubclass(cls, Method) and cls.name == name and cls.summary
    defaults = cls.param_defaults()
    assert cls(**defaults).get_params() == defaults


@pytest.mark.parametrize("variant", VARIANTS + TASK_VARIANTS)
def test_registered_variants_build(variant):
    base = parse_spec(variant)[0]
    if base in TASKS:
        build_task(variant, "smoke")
    else:
        build_method(variant)


def test_registries_reject_duplicates():
    class A:
        name = "x"

    with pytest.raises(ValueError, match="duplicate"):
        build_registry([A, A])


@pytest.mark.parametrize("name", metric_catalog().keys())
def test_metric_records_are_complete(name):
    metric = metric_catalog()[name]
    assert metric.name == name and metric.description and metric.group in GROUPS
    assert metric.fn is None or callable(metric.fn)
    assert metric.tolerance is None or (metric.tolerance.rtol >= 0 and metric.tolerance.atol >= 0)
    if metric.fn is None:  # measured by the harness (or retired): only the suite's own registries have these
        assert name in METRICS or (name in RETIRED and not metric.leaderboard)
    assert metric.pooled is None or callable(metric.pooled)


@pytest.mark.parametrize("name", TASKS.keys())
def test_scored_metrics_give_one_finite_value_per_sample(name):
    """Every metric scored on a task (the suite's and the task's own) maps a prediction
    of the right shape to one finite value per sample (a pooled metric: per-sample
    statistics that pool to one finite value); metrics whose requirements the task does
    not meet say why."""
    task = TASKS[name].sized("smoke")
    spec = task.spec()
    data = task.generate(3, seed=1)
    for metric in scored_metrics(TASKS[name].metrics):
        y = data.targets[8]
        draws = y[None] * np.array([0.9, 1.0, 1.2]).reshape(-1, *[1] * y.ndim)
        pred = Prediction(mean=y * 1.1 + 0.01, var=np.ones_like(y), samples=draws)
        why = metric.unmet(spec, pred, probabilistic=True)
        if why:
            assert isinstance(why, str) and why
            continue
        vals = metric.fn(pred, y, data.inputs, 8, spec)
        assert len(vals) == 3 and np.isfinite(vals).all(), metric.name
        if metric.pooled is None:
            assert np.shape(vals) == (3,), metric.name
        else:
            assert np.isfinite(metric.pooled(vals)), metric.name
    assert {m.name for m in TASKS[name].metrics} <= {m.name for m in scored_metrics(TASKS[name].metrics)}


@pytest.mark.parametrize("name", METHODS.keys())
def test_methods_are_abstract_or_final_and_not_applicable_is_pure(name):
    cls = METHODS[name]
    assert not inspect.isabstract(cls)
    for base in cls.__mro__[1:]:
        if issubclass(base, Method):
            assert inspect.isabstract(base), f"{name} inherits from the concrete method {base.__name__}"
    with pytest.raises(TypeError, match="abstract or final"):
        type("Sub", (cls,), {"__module__": __name__})
    method = build_method(name)[1]  # the harness wires a wrapper's base
    for task in TASKS:
        spec = TASKS[task].sized("smoke").spec()
        # the harness asks not_applicable only on a domain the method declares (`Method.domains`)
        reason = domain_not_supported(method, spec) or method.not_applicable(spec)  # never raises
        assert reason is None or (isinstance(reason, str) and reason)
        if spec.kind not in type(method).domains:
            assert spec.kind in reason and method.name in reason


def test_hyperparameters_without_defaults_are_refused():
    with pytest.raises(TypeError, match="need a default"):
        type("NoDefault", (Method,), {"__module__": __name__, "__annotations__": {"alpha": "float"}})


def test_variant_parsing_and_patterns():
    assert split_list("fno:n_modes=12,width=64,mean") == ["fno:n_modes=12,width=64", "mean"]
    assert split_list("fno:schedule=step:100:0.5,width=8,neuroscale:gamma=0") == [
        "fno:schedule=step:100:0.5,width=8", "neuroscale:gamma=0"]
    assert parse_spec("fno:n_modes=12,width=64") == ("fno", {"n_modes": "12", "width": "64"})
    assert parse_spec("pkg.mod:Cls:a=1") == ("pkg.mod:Cls", {"a": "1"})
    name, m = build_method("fno:n_modes=8,width=16")
    assert name == "fno:n_modes=8,width=16" and m.n_modes == 8 and m.width == 16
    assert resolve_methods("coarse_*") == ["coarse_fv", "coarse_spectral", "coarse_dns", "coarse_oa"]
    assert set(resolve_methods("all")) >= set(METHODS)
    with pytest.raises(UsageError, match=r"no parameter .modes.; valid: .*\bn_modes\b"):
        build_method("fno:modes=3")
    with pytest.raises(UsageError, match="expected an integer"):
        build_method("fno:n_modes=2.5")
