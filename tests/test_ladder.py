"""The classical error-cost ladder (`bench.ladder`): each task's classical solvers
converge to the filtered truth as their grid is refined, and the interpolation at equal
error and the break-even count follow their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.ladder import FINE, Rung, breakeven, build_ladder, cost_at_error, error_at_cost, front, rung_factors
from tasks import TASKS


def test_rung_factors():
    assert rung_factors(16) == [16, 8, 4, 2, 1] and rung_factors(4) == [4, 2, 1] and rung_factors(1) == [1]
    assert rung_factors(6) == [6, 3, 1]


GRID_TASKS = [name for name in TASKS if TASKS[name].sized("smoke").spec().kind == "grid"]
GRAPH_TASKS = [name for name in TASKS if name not in GRID_TASKS]


@pytest.fixture(scope="module", params=GRID_TASKS)
def ladder(request):
    task = TASKS[request.param].sized("smoke")
    data = task.generate(6, seed=11)
    return request.param, build_ladder(task.spec(), data, (8,), data.inputs[:2])


@pytest.mark.parametrize("name", GRAPH_TASKS)
def test_graph_ladder_rungs_are_the_partition_levels(name):
    """On a graph the rungs of a classical solver are the partition levels finer than k
    and the fine graph (j = 1), restricted by the size-weighted member mean; there a
    coarse model on singleton super-nodes is the fine model (the Ott-Antonsen model is,
    docs/kuramoto.md), so j = 1 is exact. The levels in between need not converge (a
    closure is not a discretisation), so only the exact end is required."""
    task = TASKS[name].sized("smoke")
    spec = task.spec()
    data = task.generate(6, seed=11)
    assert rung_factors(16, spec) == [16, 8, 4, 1]
    rungs = build_ladder(spec, data, (8, 16), data.inputs[:2])
    for family in spec.coarse_solvers:
        for k in (8, 16):
            errs = {r.j: r.error for r in rungs if r.family == family and r.k == k}
            assert sorted(errs) == [j for j in (1, 4, 8, 16) if j <= k]
            assert errs[1] < 1e-5 < min(e for j, e in errs.items() if j > 1), (family, k, errs)
    assert [r.error < 1e-5 for r in rungs if r.family == FINE] == [True, True]


def test_each_classical_solver_converges_as_its_grid_is_refined(ladder):
    """At k = 8, the error of every family falls (or stays at round-off) from the k grid
    to the fine grid. Orders measured on the smoke grids: Darcy's upscaled FV (arithmetic
    block means, to the restricted fine FV solution) and the coarse flow schemes (to the
    filtered DNS after one horizon) all improve by >= 1.5x per halving of the spacing
    between the coarsest and the finest rung, and the finest rung of Darcy's FV and of
    turbulence's DNS family, the fine solver itself, is exact."""
    name, rungs = ladder
    fine = [r for r in rungs if r.family == FINE]
    assert sorted(r.k for r in fine) == [8] and fine[0].j == 1 and fine[0].error < 1e-5  # the top rung is exact
    for family in {r.family for r in rungs} - {FINE}:
        errs = {r.j: r.error for r in rungs if r.family == family and r.k == 8}
        assert sorted(errs) == [1, 2, 4, 8]
        assert errs[1] < errs[2] < errs[4] < errs[8], (family, errs)
        order = math.log2(errs[8] / max(errs[1], 1e-300)) / 3  # mean order over three halvings
        assert order > math.log2(1.5), (family, errs)
        if (name, family) in (("darcy", "fv"), ("turbulence", "dns")):
            assert errs[1] < 1e-5, errs  # j = 1 is the fine solver: the truth up to float32 storage
    assert all(r.cost_s > 0 and r.batch == 2 for r in rungs)


def _rungs() -> list[Rung]:
    # cost doubles while error halves, plus a dominated rung
    return [Rung("a", 8, 8, 0.4, 1.0, 1), Rung("a", 4, 8, 0.2, 2.0, 1), Rung("a", 2, 8, 0.1, 4.0, 1),
            Rung("b", 8, 8, 0.5, 3.0, 1)]


def test_front_and_interpolation_at_equal_error():
    f = front(_rungs(), 8)
    assert [(r.family, r.j) for r in f] == [("a", 8), ("a", 4), ("a", 2)]  # b is dominated
    cost, why = cost_at_error(_rungs(), 8, 0.2 / math.sqrt(2))  # halfway in log between rungs 2 and 3
    assert why == "" and cost == pytest.approx(2.0 * math.sqrt(2))
    assert cost_at_error(_rungs(), 8, 0.05)[0] is None and "more accurate" in cost_at_error(_rungs(), 8, 0.05)[1]
    assert cost_at_error(_rungs(), 8, 0.9)[0] is None and "less accurate" in cost_at_error(_rungs(), 8, 0.9)[1]
    err, _ = error_at_cost(_rungs(), 8, 2.0 * math.sqrt(2))
    assert err == pytest.approx(0.2 / math.sqrt(2))
    assert error_at_cost(_rungs(), 8, 0.5)[0] is None and error_at_cost(_rungs(), 8, 100.0)[0] == 0.1


def test_breakeven():
    n, why = breakeven(overhead_s=100.0, classical_per_solve=1.0, method_per_solve=0.5)
    assert why == "" and n == 200.0  # 100 s of data and training, 0.5 s saved per solve
    n, why = breakeven(100.0, 0.5, 1.0)
    assert n is None and why.startswith("never")
    assert np.isfinite(breakeven(0.0, 2.0, 1.0)[0])


def test_a_finer_grid_is_never_cheaper_on_the_front():
    """Timing noise that makes a finer rung look cheaper than a coarser one is taken for
    noise: costs are made monotone per solver (a finer grid costs at least as much)
    before the front is taken, so the finer rung is not credited with a lower cost."""
    noisy = [Rung("a", 4, 4, 0.3, 2.0e-3, 2), Rung("a", 2, 4, 0.1, 1.5e-3, 2), Rung("a", 1, 4, 1e-9, 5e-3, 2)]
    f = front(noisy, 4)
    assert [(r.j, r.cost_s) for r in f] == [(2, 2.0e-3), (1, 5e-3)]  # j=2 at j=4's cost, which it dominates


def test_parallel_cells_measure_the_ladder_once(tmp_path, monkeypatch):
    """Two cells of one task asking at once: the second waits for the first's ladder and
    reads it, instead of timing the solvers a second time under the first's load."""
    import threading
    import time

    from bench import ladder as lad

    calls = []

    def slow_build(spec, test, ks, batch):  # noqa: ANN001, ANN202 -- stands in for build_ladder
        calls.append(1)
        time.sleep(0.3)
        return _rungs()

    monkeypatch.setattr(lad, "build_ladder", slow_build)
    got: list[list[Rung]] = []
    args = (tmp_path, "darcy", "smoke", "cpu", 1, None, None, (8,), np.zeros((2, 1, 4, 4)))
    threads = [threading.Thread(target=lambda: got.append(lad.ladder_for(*args))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and got[0] == got[1] == _rungs()
    assert lad.ladder_for(*args) == _rungs() and len(calls) == 1  # cached on disk


def test_equal_error_rows_value_or_reason():
    """At every k a method gets the three rows: values where its error lies on the
    front, n/a with the reason off it, and n/a naming a failed ladder."""
    from bench.costs import equal_error_rows
    from bench.records import measurement
    from nskernel import Factors

    factors = Factors(train=(8,), test=(8,))
    rows = [measurement("rel_l2", 0.2 / math.sqrt(2), k=8), measurement("infer_s", 0.5, k=8, n=1)]
    got = {r["metric"]: r for r in equal_error_rows(rows, _rungs(), factors, overhead_s=100.0)}
    assert got["equal_error_cost_ratio"]["value"] == pytest.approx(2.0 * math.sqrt(2) / 0.5)
    assert got["breakeven_solves"]["value"] == pytest.approx(100.0 / (2.0 * math.sqrt(2) - 0.5))
    assert got["ladder_error_at_cost"]["status"] == "n/a" and "cheaper" in got["ladder_error_at_cost"]["reason"]
    failed = equal_error_rows(rows, [], factors, 100.0, failed="the classical ladder failed: boom")
    assert len(failed) == 3 and all(r["status"] == "n/a" and "boom" in r["reason"] for r in failed)
    rows[1] = measurement("infer_s", np.nan, k=8, status="n/a", reason="timed out")
    assert all(r["reason"] == "timed out" for r in equal_error_rows(rows, _rungs(), factors, 100.0))
