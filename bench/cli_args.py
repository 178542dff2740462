"""The command line's parsers (`bench.cli` holds the commands): every subcommand's
options, their defaults and help texts. ``run_parser()`` is also the source of the
experiment-file keys (`bench.experiment`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

EPILOG = "Exit codes: 0 all cells ok or n/a; 1 a cell failed, diverged or timed out; 2 bad input."


def _ints(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(t) for t in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like '4,8', got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return vals


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _budget_help() -> str:
    from bench.config import BUDGETS

    return "; ".join(f"{size}: {b.describe()}" for size, b in BUDGETS.items())


def _add_budget_args(p: argparse.ArgumentParser, who: str) -> None:
    """The training-budget overrides, the same for ``run`` and ``tune`` (`bench.runner.resolve_budget`)."""
    p.add_argument("--epochs", type=int,
                   help=f"train {who} for N epochs (an epoch budget); default per size: " + _budget_help())
    p.add_argument("--flops", type=float,
                   help=f"train {who} for F training FLOPs, turned into its own step count "
                        "(an equal-compute budget, e.g. 2e13)")
    p.add_argument("--batch-size", type=int, help=f"training batch size of {who} (default per size)")
    p.add_argument("--max-train-s", type=float,
                   help="wall-clock safety cap on training per cell, seconds: a cell it stops is recorded "
                        "'truncated', never as a normal result (not part of a cell's identity)")


def build_parser() -> argparse.ArgumentParser:
    from bench.config import BUDGETS
    from bench.tracking import TRACKERS

    p = argparse.ArgumentParser(prog="python -m bench", description="NeuroScale Bench: multiscale "
                                "neural-operator benchmark (task x method matrix).", epilog=EPILOG)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a task x method matrix and write records, results.csv, report",
                       epilog=EPILOG)
    r.add_argument("--tasks", default="all", help="'all' (the registered tasks except those `bench list` marks "
                   "'not in --tasks all', e.g. kuramoto), comma list, or quoted glob; variants as name:field=value")
    r.add_argument("--methods", default="all",
                   help="'all', comma list, quoted glob ('neuroscale*'), variants (fno:n_modes=12), module:Class")
    r.add_argument("--size", default="small", choices=list(BUDGETS), help="benchmark size (default: small)")
    r.add_argument("--seeds", type=_ints, default=(0,), help="training seeds, e.g. '0,1,2' (default: 0)")
    r.add_argument("--k-train", type=_ints, default=(4, 8), help="coarse-graining factors to train on (default: 4,8)")
    r.add_argument("--k-test", type=_ints, default=(4, 8, 16), help="factors to evaluate (default: 4,8,16)")
    r.add_argument("--n-train", type=_ints, metavar="N,...",
                   help="data-scaling run: each cell once per training-set size, on the first N samples of the "
                        "task's training split, e.g. 64,128,256 (default: the whole split; docs/experiments.md)")
    r.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
    r.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="training dtype")
    r.add_argument("--threads", type=int, help="CPU threads per cell (default: available cores / jobs)")
    r.add_argument("--jobs", type=int, default=1,
                   help="cells run in parallel worker processes (default 1; timings taken in parallel are "
                        "flagged as loaded, use 1 for publishable speedups)")
    r.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="where cells run: 'local' (this process, or --jobs worker processes; default) or 'ray' "
                        "(one Ray task per cell; see docs/distributed.md)")
    r.add_argument("--address", help="with --executor ray: the cluster to use ('auto', HOST:PORT or "
                                     "ray://HOST:PORT; default $RAY_ADDRESS, else a local Ray instance)")
    r.add_argument("--out", type=Path, help="run directory (default: results/<size>); re-running resumes it")
    r.add_argument("--data-dir", type=Path,
                   help="dataset cache (default: $NEUROSCALE_DATA or ~/.cache/neuroscale-bench)")
    r.add_argument("--overwrite", action="store_true", help="recompute cells that already have a record")
    r.add_argument("--retry-failed", action="store_true",
                   help="recompute failed/diverged/timeout/truncated cells (training resumes from its checkpoint)")
    _add_budget_args(r, "every neural method")
    r.add_argument("--checkpoint-every", type=float, default=30.0, metavar="SECONDS",
                   help="write a resumable training checkpoint at most this often (default 30; 0: every epoch)")
    r.add_argument("--timeout", type=float, help="hard wall-clock limit per cell in seconds (default: per size)")
    r.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    r.add_argument("--no-ladder", action="store_true",
                   help="skip the classical error-cost ladder (bench.ladder: every classical solver on every grid "
                        "between the coarse and the fine one, on the whole test split; slow on large fine grids): "
                        "the equal-error rows are recorded n/a with this reason; the other scores are unchanged")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument("--log", default="none", choices=list(TRACKERS),
                   help="log each cell's learning curve and final scores to TensorBoard (<out>/tensorboard/) or to "
                        "Weights & Biases in offline mode (<out>/wandb/); default none (docs/experiments.md)")
    r.add_argument("--config", type=Path, metavar="FILE",
                   help="experiment file (TOML) setting any of these options, keys with underscores (k_train = "
                        "[4, 8]); options given here override it. Every run writes its resolved options to "
                        "<out>/experiment.toml (docs/experiments.md)")

    t = sub.add_parser("tune", help="hyperparameter search of one method on one task (Optuna TPE), scored on the "
                       "validation split; prints the best variant string (docs/tuning.md)",
                       epilog="Exit codes: 0 a best variant was found; 1 no trial finished ok; 2 bad input.")
    t.add_argument("--task", required=True, help="one task, e.g. darcy or turbulence:re=1e4")
    t.add_argument("--method", required=True,
                   help="one method with a search space (methods/search_spaces.py); a variant's parameters stay "
                        "fixed, e.g. neuroscale:scales=2")
    t.add_argument("--trials", type=int, default=20,
                   help="trials of the study in all (default 20; the same for every tuned method: docs/tuning.md)")
    t.add_argument("--size", default="small", choices=list(BUDGETS), help="benchmark size (default: small)")
    t.add_argument("--seed", type=int, default=0, help="seeds the sampler and every trial's training (default: 0)")
    t.add_argument("--k-train", type=_ints, default=(4, 8), help="training factors, also scored on validation")
    t.add_argument("--out", type=Path, help="study directory (default: results/tune/<task>-<method>); "
                                            "re-running resumes it")
    t.add_argument("--data-dir", type=Path,
                   help="dataset cache (default: $NEUROSCALE_DATA or ~/.cache/neuroscale-bench)")
    t.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
    t.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="training dtype")
    t.add_argument("--threads", type=int, help="CPU threads (default: available cores)")
    _add_budget_args(t, "every trial")
    t.add_argument("--timeout", type=float, help="hard wall-clock limit per trial in seconds (default: per size)")
    t.add_argument("--quiet", action="store_true", help="no progress bars")

    sub.add_parser("list", help="list tasks, methods (with parameters), variants and metrics")

    d = sub.add_parser("data", help="generate (or verify) the cached datasets only; --export writes them out")
    d.add_argument("--tasks", default="all")
    d.add_argument("--size", default="small", choices=list(BUDGETS))
    d.add_argument("--data-dir", type=Path)
    d.add_argument("--export", type=Path, metavar="DIR",
                   help="also write each task's dataset as a self-contained HDF5 file (with its split indices) "
                        "into DIR, beside a copy of docs/data-format.md")

    rep = sub.add_parser("report", help="write leaderboards and figures for a run directory")
    rep.add_argument("run_dir", type=Path)
    rep.add_argument("--out", type=Path, help="output folder (default: reports/<run name>)")
    pr = sub.add_parser("predict", help="reload a cell's trained model from its checkpoint and re-score it",
                        epilog="Exit codes: 0 the re-scored rel_l2 matches the record to 1e-6; 1 it does not; "
                               "2 bad input or no usable checkpoint.")
    pr.add_argument("run_dir", type=Path)
    pr.add_argument("--task", required=True, help="as in the run, e.g. darcy or turbulence:re=1e4")
    pr.add_argument("--method", required=True, help="as in the run, e.g. fno or neuroscale:gamma=0")
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--n-train", type=int, help="the cell's training-set size, in a run with --n-train")
    pr.add_argument("--data-dir", type=Path,
                    help="dataset cache (default: $NEUROSCALE_DATA or ~/.cache/neuroscale-bench)")
    c = sub.add_parser("compare", help="regression check: exit 1 if NEW is worse than BASELINE",
                       epilog="Exit codes: 0 nothing regressed; 1 something regressed; 2 bad input.")
    c.add_argument("baseline", type=Path, help="baseline run directory or results.csv")
    c.add_argument("new", type=Path, help="new run directory or results.csv")
    c.add_argument("--tol", action="append", default=[], metavar="METRIC=RTOL[:ATOL]",
                   help="tolerance override, repeatable (e.g. rel_l2=0.02, speedup=0.5)")
    c.add_argument("--tol-file", type=Path, help='JSON {"metric": {"rtol": r, "atol": a}}')
    c.add_argument("--z", type=float, default=2.0, help="seed-spread multiplier (default 2)")
    c.add_argument("--all", action="store_true", help="show unchanged rows too")
    return p


def run_parser() -> argparse.ArgumentParser:
    """A fresh parser of the ``run`` subcommand: the source of the experiment-file keys."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["run"]
