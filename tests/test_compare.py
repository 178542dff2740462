"""`bench compare`: direction-aware regression verdicts with seed-aware tolerances."""

import pandas as pd
import pytest

from bench.cli import main
from bench.compare import compare, parse_tolerances
from bench.records import CSV_COLUMNS
from nskernel import Tolerance
from nskernel.errors import UsageError


def _write(path, rows):
    path.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame([{**dict.fromkeys(CSV_COLUMNS, ""), **r} for r in rows], columns=CSV_COLUMNS)
    df.to_csv(path / "results.csv", index=False)
    return path


def _rows(rel_l2_by_seed, speedup=10.0, method="fno", status="ok"):
    out = []
    for seed, v in enumerate(rel_l2_by_seed):
        if status != "ok":
            out.append(dict(task="darcy", method=method, seed=seed, metric="status", status=status, reason="boom"))
            continue
        out += [dict(task="darcy", method=method, seed=seed, k=4, unseen=False, metric="rel_l2", value=v, status="ok"),
                dict(task="darcy", method=method, seed=seed, k=4, unseen=False, metric="speedup", value=speedup,
                     status="ok"),
                dict(task="darcy", method=method, seed=seed, k=4, unseen=False, metric="nll", value="",
                     status="n/a", reason="deterministic")]
    return out


def test_identical_runs_pass(tmp_path):
    a = _write(tmp_path / "a", _rows([0.10, 0.11]))
    assert main(["compare", str(a), str(a)]) == 0


def test_worse_error_is_a_regression_better_is_an_improvement(tmp_path):
    base = _write(tmp_path / "a", _rows([0.100]))
    worse = _write(tmp_path / "b", _rows([0.120]))
    better = _write(tmp_path / "c", _rows([0.080]))
    t = compare(base, worse).set_index("metric")
    assert t.loc["rel_l2", "verdict"] == "regressed"
    assert compare(base, better).set_index("metric").loc["rel_l2", "verdict"] == "improved"
    assert main(["compare", str(base), str(worse)]) == 1
    assert main(["compare", str(base), str(better)]) == 0


def test_direction_higher_is_better_for_speedup(tmp_path):
    base = _write(tmp_path / "a", _rows([0.1], speedup=10.0))
    slower = _write(tmp_path / "b", _rows([0.1], speedup=2.0))
    faster = _write(tmp_path / "c", _rows([0.1], speedup=40.0))
    assert compare(base, slower).set_index("metric").loc["speedup", "verdict"] == "regressed"
    assert compare(base, faster).set_index("metric").loc["speedup", "verdict"] == "improved"


def test_change_inside_seed_spread_is_not_a_regression(tmp_path):
    base = _write(tmp_path / "a", _rows([0.10, 0.14, 0.06]))
    new = _write(tmp_path / "b", _rows([0.12, 0.16, 0.08]))  # +0.02, spread ~0.04 per side
    assert compare(base, new).set_index("metric").loc["rel_l2", "verdict"] == "same"
    # the same shift with no seed spread is beyond the default 5% tolerance
    assert compare(_write(tmp_path / "c", _rows([0.10])), _write(tmp_path / "d", _rows([0.12]))) \
        .set_index("metric").loc["rel_l2", "verdict"] == "regressed"


def test_tolerance_overrides(tmp_path):
    base = _write(tmp_path / "a", _rows([0.100]))
    new = _write(tmp_path / "b", _rows([0.120]))
    assert main(["compare", str(base), str(new), "--tol", "rel_l2=0.5"]) == 0
    f = tmp_path / "tol.json"
    f.write_text('{"rel_l2": {"rtol": 0.5}}')
    assert main(["compare", str(base), str(new), "--tol-file", str(f)]) == 0
    with pytest.raises(UsageError, match="metric=rtol"):
        parse_tolerances(["rel_l2"])


def test_per_method_tolerances_only_widen(tmp_path):
    base = _write(tmp_path / "a", _rows([0.100]))
    new = _write(tmp_path / "b", _rows([0.120]))
    f = tmp_path / "tol.json"
    f.write_text('{"by_method": {"fno": {"*": {"rtol": 0.5}}}}')
    assert main(["compare", str(base), str(new), "--tol-file", str(f)]) == 0  # fno may move by 50 %
    f.write_text('{"by_method": {"neuroscale": {"*": {"rtol": 0.5}}}}')
    assert main(["compare", str(base), str(new), "--tol-file", str(f)]) == 1  # other methods keep 5 %
    tols = parse_tolerances([], f)
    assert tols.for_("neuroscale", "rel_l2") == Tolerance(0.5, 1e-6)  # the wider of both, per bound
    f.write_text('{"by_method": {"fno": {"rel_l2": {"rtol": 0.0}}}}')
    assert parse_tolerances([], f).for_("fno", "rel_l2") == Tolerance(0.05, 1e-6)  # never narrower
    assert parse_tolerances([], f).for_("fno", "fine_s") is None  # not compared by default stays so
    f.write_text('{"rel_l2": {"rtol": 0.5, "rotl": 1}}')
    with pytest.raises(UsageError, match="cannot read tolerance file"):
        parse_tolerances([], f)


def test_cell_that_stopped_working_is_a_regression(tmp_path):
    base = _write(tmp_path / "a", _rows([0.1]))
    new = _write(tmp_path / "b", _rows([0.1], status="failed"))
    t = compare(base, new)
    assert "ok -> failed" in set(t.get("note", pd.Series(dtype=str)).dropna())
    assert main(["compare", str(base), str(new)]) == 1


def test_bad_input_exits_2(tmp_path, capsys):
    a = _write(tmp_path / "a", _rows([0.1]))
    assert main(["compare", str(a), str(tmp_path / "missing")]) == 2
    assert "no results file" in capsys.readouterr().err
    other = _write(tmp_path / "b", [dict(task="turbulence", method="fno", seed=0, k=4, metric="rel_l2", value=0.1,
                                         status="ok")])
    assert main(["compare", str(a), str(other)]) == 2
    assert "do not match" in capsys.readouterr().err
