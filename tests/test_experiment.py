"""Experiment files (`bench run --config exp.toml`): every run option as a key, the
precedence of the command line, clear errors, and the resolved `experiment.toml` that
reproduces the run."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

import bench.runner
from bench.cli import main, run_parser
from bench.experiment import FILENAME, convert, dumps, markdown_table, options, tomllib
from bench.records import read_results
from bench.runner import RunConfig

if tomllib is None:  # pragma: no cover - Python 3.10
    pytest.skip("experiment files need Python >= 3.11 (tomllib) or tomli", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
KEYS = ["tasks", "methods", "size", "seeds", "k_train", "k_test", "n_train", "device", "dtype", "threads", "jobs",
        "executor", "address", "out", "data_dir", "overwrite", "retry_failed", "epochs", "flops", "batch_size",
        "max_train_s", "checkpoint_every", "timeout", "no_report", "no_ladder", "quiet", "log"]
TINY_FNO = "fno:width=8,n_layers=2,n_modes=6"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def captured(monkeypatch):
    """Run `main` up to the RunConfig it would run, without running it."""
    seen: list[RunConfig] = []

    def fake_run(cfg, log=print):
        seen.append(cfg)
        return {"ok": 1}

    monkeypatch.setattr(bench.runner, "run", fake_run)
    return seen


def test_the_keys_are_every_run_option():
    opts = options(run_parser())
    assert list(opts) == KEYS
    flags = {a.dest for a in run_parser()._actions if a.option_strings} - {"help", "config"}
    assert set(opts) == flags
    # every setting of RunConfig comes from an option (renamed ones listed), so none can be
    # added to the runner without a key
    renamed = {"timeout_s": "timeout", "checkpoint_every_s": "checkpoint_every", "progress": "quiet",
               "ladder": "no_ladder"}
    fields = {f.name for f in dataclasses.fields(RunConfig)} - {"command", "experiment"}
    assert {renamed.get(f, f) for f in fields} <= set(opts)


def test_docs_list_every_key():
    text = (ROOT / "docs" / "experiments.md").read_text()
    documented = re.findall(r"^\| `([a-z_]+)` \| `--", text, flags=re.M)
    assert documented == KEYS, "docs/experiments.md's key table must list exactly the keys"
    assert markdown_table(options(run_parser())) in text, "regenerate the key table (see docs/experiments.md)"
    readme = (ROOT / "README.md").read_text()
    assert "`--config FILE`" in readme and "`--log`" in readme


def test_file_sets_options_and_the_command_line_overrides_it(tmp_path, captured):
    exp = write(tmp_path / "exp.toml", """
tasks = ["darcy"]
methods = ["fno:n_modes=12,width=16", "mean"]
size = "smoke"
seeds = [0, 1]
k_train = "4"
k_test = [4, 8]
dtype = "float64"
threads = 1
epochs = 3
checkpoint_every = 0
timeout = 600
out = "elsewhere"
data_dir = "data"
quiet = true
no_report = true
""")
    # --dtype float32 is the default, yet given explicitly it wins over the file
    assert main(["run", "--config", str(exp), "--seeds", "2", "--dtype", "float32", "--out", str(tmp_path / "o")]) == 0
    (cfg,) = captured
    assert (cfg.tasks, cfg.methods, cfg.size) == ("darcy", "fno:n_modes=12,width=16,mean", "smoke")
    assert (cfg.seeds, cfg.k_train, cfg.k_test, cfg.dtype) == ((2,), (4,), (4, 8), "float32")
    assert (cfg.threads, cfg.epochs, cfg.checkpoint_every_s, cfg.timeout_s) == (1, 3, 0.0, 600.0)
    assert (cfg.out, cfg.data_dir, cfg.progress, cfg.log) == (tmp_path / "o", Path("data"), False, "none")
    # the resolved options: every key, after the merge, paths absolute
    res = cfg.experiment
    assert list(res) == KEYS
    assert res["seeds"] == (2,) and res["out"] == (tmp_path / "o").resolve() and res["data_dir"].is_absolute()
    assert res["flops"] is None and res["address"] is None and res["no_report"] is True


@pytest.mark.parametrize("key, value, expected", [
    ("seeds", [0, 1, 2], (0, 1, 2)),
    ("seeds", "0,1,2", (0, 1, 2)),
    ("seeds", 3, (3,)),
    ("k_test", "4 8", (4, 8)),
    ("n_train", [64, 128, 256], (64, 128, 256)),
    ("n_train", "64,128", (64, 128)),
    ("tasks", ["darcy", "turbulence:re=1e4"], "darcy,turbulence:re=1e4"),
    ("methods", "fno:n_modes=12,width=16,mean", "fno:n_modes=12,width=16,mean"),
    ("flops", 20000000000000, 2e13),
    ("max_train_s", 1.5, 1.5),
    ("out", "results/x", Path("results/x")),
])
def test_lists_as_arrays_or_comma_strings_and_numbers(key, value, expected):
    assert convert(options(run_parser())[key], value) == expected


@pytest.mark.parametrize("text, message", [
    ("k-train = [4]", "unknown key 'k-train' (keys use underscores: 'k-train' -> 'k_train'); valid keys: tasks, "
                      "methods, size, seeds, k_train"),
    ("bogus = 1\nseed = 1", "unknown keys 'bogus', 'seed'; valid keys: tasks, methods"),
    ("config = 'other.toml'", "unknown key 'config'"),
    ("epochs = 2.5", "key 'epochs' expects an integer, got float 2.5"),
    ("epochs = true", "key 'epochs' expects an integer, got boolean True"),
    ("seeds = [0, 'a']", "key 'seeds' expects an array of integers or a comma string like '4,8', got array"),
    ("seeds = 'a,b'", "key 'seeds' expects an array of integers or a comma string like '4,8': expected integers"),
    ("n_train = 64.5", "key 'n_train' expects an array of integers or a comma string like '4,8', got float"),
    ("quiet = 'yes'", "key 'quiet' expects a boolean (true or false), got string 'yes'"),
    ("size = 'huge'", "key 'size' expects one of 'smoke', 'small', 'paper', got string 'huge'"),
    ("log = 'mlflow'", "key 'log' expects one of 'none', 'tensorboard', 'wandb'"),
    ("flops = true", "key 'flops' expects a number, got boolean True"),
    ("out = 3", "key 'out' expects a path (a string), got integer 3"),
    ("methods = [1]", "key 'methods' expects a string (a comma list, as on the command line) or an array of strings"),
    ("[run]\nseeds = [0]", "unknown key 'run'"),
    ("seeds = [0", "is not valid TOML"),
])
def test_bad_files_exit_2_naming_the_key_and_write_nothing(tmp_path, capsys, text, message):
    exp = write(tmp_path / "exp.toml", text + "\n")
    out = tmp_path / "never"
    assert main(["run", "--config", str(exp), "--out", str(out), "--size", "smoke", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert message in err and str(exp) in err
    assert not out.exists()


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["run", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read the experiment file" in capsys.readouterr().err


def test_writer_round_trips_through_tomllib():
    values = {"s": 'a "quoted" \\ back\nslash\ttab \x7f\x01 é ✓ 𝄞', "p": Path("/a b/c"), "i": -3, "t": True,
              "f": False, "big": 2e13, "small": 1e-300, "x": 30.0, "inf": math.inf, "ninf": -math.inf,
              "ints": (4, 8, 16), "strs": ["a", "b,c"], "empty": [], "unset": None}
    text = dumps(values, "a header\nwith two lines\x01 and\x7f control characters")
    assert text.startswith("# a header\n# with two lines  and  control characters\n")
    assert "# unset = (not set)" in text
    back = tomllib.loads(text)
    expected = {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v)
                for k, v in values.items() if v is not None}
    assert back == expected
    with pytest.raises(TypeError):
        dumps({"d": {"a": 1}})
    with pytest.raises(ValueError):
        dumps({"a key": 1})
    nan = tomllib.loads(dumps({"n": math.nan}))["n"]
    assert math.isnan(nan)


def test_resolved_file_reads_back_to_the_same_options(tmp_path, captured):
    """experiment.toml, read again through --config, gives the same RunConfig."""
    from bench.experiment import write_experiment

    assert main(["run", "--tasks", "darcy", "--methods", "mean", "--size", "smoke", "--seeds", "0,3",
                 "--epochs", "2", "--max-train-s", "99.5", "--out", str(tmp_path / "r"), "--no-report",
                 "--quiet", "--log", "tensorboard"]) == 0
    first = captured[0]
    path = write_experiment(tmp_path / "r", first.experiment, first.command)
    assert main(["run", "--config", str(path)]) == 0
    second = captured[1]
    assert dataclasses.replace(second, command="") == dataclasses.replace(
        first, command="", out=first.out.resolve(), data_dir=Path(first.data_dir).resolve())
    assert second.experiment == first.experiment
    written = tomllib.loads(path.read_text())
    commented = re.findall(r"^# ([a-z_]+) = \(not set\)$", path.read_text(), flags=re.M)
    assert sorted([*written, *commented]) == sorted(KEYS)


def accuracy(run_dir: Path) -> pd.DataFrame:
    df = read_results(run_dir)
    df = df[df.metric.isin(["rel_l2", "max_principle", "energy_norm_err"])]
    return df.sort_values(["method", "k", "metric"]).reset_index(drop=True)


def test_the_resolved_file_reproduces_the_run(tmp_path, data_dir, capsys):
    exp = write(tmp_path / "exp.toml", f"""
tasks = "darcy"
methods = ["{TINY_FNO}", "mean", "coarse_fv"]
size = "smoke"
seeds = [0]
epochs = 2
data_dir = "{data_dir}"
quiet = true
no_report = true
""")
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", "--config", str(exp), "--out", str(a)]) == 0
    resolved = a / FILENAME
    assert json.loads((a / "run.json").read_text())["experiment"] == FILENAME
    values = tomllib.loads(resolved.read_text())
    assert values["out"] == str(a.resolve()) and values["epochs"] == 2 and values["seeds"] == [0]
    assert values["methods"] == f"{TINY_FNO},mean,coarse_fv" and "timeout" not in values
    # again into a fresh directory (the command line's --out wins over the file's): the same numbers
    assert main(["run", "--config", str(resolved), "--out", str(b)]) == 0
    pd.testing.assert_frame_equal(accuracy(a), accuracy(b))
    assert len(accuracy(a)) == 3 * 3 * 3  # 3 methods x 3 factors x 3 metrics
    strip = lambda p: [ln for ln in p.read_text().splitlines() if not ln.startswith(("#", "out ="))]  # noqa: E731
    assert strip(b / FILENAME) == strip(resolved)
    # without --out: the file's own directory, which resumes (nothing is run again)
    capsys.readouterr()
    assert main(["run", "--config", str(resolved)]) == 0
    assert "(3 already done, 0 to run)" in capsys.readouterr().out
