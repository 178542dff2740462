"""Dataset cache: keyed by config, checksum verified, corruption detected and repaired."""

import dataclasses

import numpy as np
import pytest

from bench import timing
from bench.data import load, load_or_generate
from tasks import TASKS


@pytest.fixture
def task():
    return dataclasses.replace(TASKS["darcy"].sized("smoke"), n_train=3, n_test=1)


def test_cache_roundtrip_and_key(tmp_path, task):
    ds, digest, path = load_or_generate(task, tmp_path)
    again, digest2, path2 = load_or_generate(task, tmp_path)
    assert path == path2 and digest == digest2
    np.testing.assert_array_equal(ds.inputs, again.inputs)
    for k in ds.targets:
        np.testing.assert_array_equal(ds.targets[k], again.targets[k])
    other = dataclasses.replace(task, contrast=(10.0, 1.0))
    assert load_or_generate(other, tmp_path)[2] != path  # a different config, a different file


def test_corrupted_file_is_detected_and_regenerated(tmp_path, task):
    ds, digest, path = load_or_generate(task, tmp_path)
    raw = bytearray(path.read_bytes())
    # flip bytes inside the array payload (the file tail holds data, not metadata)
    for i in range(len(raw) // 2, len(raw) // 2 + 64):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises((ValueError, OSError)):  # checksum mismatch, or HDF5 refuses the file
        load(path)
    with pytest.warns(UserWarning, match="unusable"):
        fixed, digest2, _ = load_or_generate(task, tmp_path)
    assert digest2 == digest
    np.testing.assert_array_equal(fixed.inputs, ds.inputs)


def test_truncated_file_is_regenerated(tmp_path, task):
    _, digest, path = load_or_generate(task, tmp_path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.warns(UserWarning, match="unusable"):
        assert load_or_generate(task, tmp_path)[1] == digest


def test_timing_flags_and_retries_under_load(monkeypatch):
    # Simulate a machine where other processes keep 1.5 cores busy: /proc/stat busy time
    # grows faster than our own CPU time.
    clock = {"busy": 0.0}

    def fake_busy():
        clock["busy"] += 10.0
        return clock["busy"]

    monkeypatch.setattr(timing, "_busy_seconds", fake_busy)
    t = timing.measure(lambda: None, repeats=2, attempts=2, pause_s=0.0)
    assert t.loaded and t.attempts == 2 and t.other_load > 0.5
    monkeypatch.setattr(timing, "_busy_seconds", lambda: 0.0)
    t = timing.measure(lambda: None, repeats=2, attempts=3, pause_s=0.0)
    assert not t.loaded and t.attempts == 1
