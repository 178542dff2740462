"""The Ray executor on a local Ray instance (2 CPUs, no dashboard, a small object store):
same run-directory format and, for deterministic methods, the same numbers as the
local executor; a failing or dying cell stays isolated."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.cli import main
from bench.executors import check_cluster
from bench.records import read_record, read_results
from bench.runner import RunConfig, run
from nskernel.errors import UsageError

DETERMINISTIC = "mean,coarse_fv"
MISBEHAVING = "tests.plugins:Raising,tests.fault_plugins:SelfKill"


def test_ray_executor_matches_the_local_executor(tmp_path, data_dir, capsys, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # a local instance, even on a cluster node
    out = tmp_path / "ray"
    rc = main(["run", "--tasks", "darcy", "--methods", f"{DETERMINISTIC},{MISBEHAVING}", "--size", "smoke",
               "--executor", "ray", "--threads", "1", "--out", str(out), "--data-dir", str(data_dir),
               "--quiet", "--no-report"])
    assert rc == 1, capsys.readouterr().err[-3000:]
    assert not ray.is_initialized()  # the local instance was stopped
    records = {p.stem: read_record(p) for p in (out / "records").glob("*.json")}
    status = {r["method"]: r["status"] for r in records.values()}
    assert status == {"mean": "ok", "coarse_fv": "ok", "tests.plugins:Raising": "failed",
                      "tests.fault_plugins:SelfKill": "failed"}
    assert "boom" in records["darcy__tests.plugins_Raising__seed0"]["error"]
    assert "worker process died" in records["darcy__tests.fault_plugins_SelfKill__seed0"]["error"]
    assert all(r["threads"] == 1 for r in records.values())

    run(RunConfig(tasks="darcy", methods=DETERMINISTIC, size="smoke", data_dir=data_dir, progress=False, threads=1,
                  out=tmp_path / "local"), log=lambda s: None)
    acc = ["rel_l2", "max_principle"]
    a, b = (read_results(tmp_path / d) for d in ("local", "ray"))
    a, b = (x[x.metric.isin(acc) & x.method.isin(DETERMINISTIC.split(","))]
            .sort_values(["method", "k", "metric"]).reset_index(drop=True) for x in (a, b))
    assert len(a) == 2 * 3 * 2
    pd.testing.assert_frame_equal(a, b)
    for name in ("darcy__mean__seed0", "darcy__coarse_fv__seed0"):  # same data, same configuration
        local = read_record(tmp_path / "local" / "records" / f"{name}.json")
        assert (records[name]["data_checksum"], records[name]["config_hash"]) == \
            (local["data_checksum"], local["config_hash"])


def test_an_unreachable_cluster_address_is_exit_2(tmp_path, data_dir, capsys):
    pytest.importorskip("ray")
    out = tmp_path / "never"
    rc = main(["run", "--tasks", "darcy", "--methods", "mean", "--size", "smoke", "--executor", "ray",
               "--address", "127.0.0.1:1", "--out", str(out), "--data-dir", str(data_dir), "--quiet", "--no-report"])
    assert rc == 2
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in capsys.readouterr().err and not out.exists()


class FakeRay:
    """Just enough of `ray` for the scheduling check: two CPU nodes, one dead GPU node."""

    @staticmethod
    def nodes() -> list[dict]:
        return [{"Alive": True, "Resources": {"CPU": 4.0}}, {"Alive": True, "Resources": {"CPU": 2.0}},
                {"Alive": False, "Resources": {"CPU": 8.0, "GPU": 1.0}}]


def test_a_cell_no_ray_node_can_schedule_is_refused_not_left_waiting():
    check_cluster(FakeRay, threads=4, device="cpu")
    with pytest.raises(UsageError, match="CPU 5.*the cluster has: CPU 4, GPU 0; CPU 2, GPU 0"):
        check_cluster(FakeRay, threads=5, device="cpu")
    with pytest.raises(UsageError, match="GPU 1"):
        check_cluster(FakeRay, threads=1, device="cuda")
