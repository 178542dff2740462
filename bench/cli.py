"""Command line: ``python -m bench {run,list,data,report,compare,predict}``. Thin: parse, then call the
plain functions in `bench.runner`, `bench.data` and `bench.report`.

Exit codes: 0 success; 1 some cell failed / diverged / timed out; 2 bad input (nothing
is computed or written).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from nskernel.errors import UsageError

EPILOG = "Exit codes: 0 all cells ok or n/a; 1 a cell failed, diverged or timed out; 2 bad input."


def _ints(text: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(t) for t in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like '4,8', got {text!r}") from None
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one integer")
    return vals


def _default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _budget_help() -> str:
    from bench.config import BUDGETS

    return "; ".join(f"{size}: {b.describe()}" for size, b in BUDGETS.items())


def build_parser() -> argparse.ArgumentParser:
    from bench.config import BUDGETS
    from bench.tracking import TRACKERS

    p = argparse.ArgumentParser(prog="python -m bench", description="NeuroScale Bench: multiscale "
                                "neural-operator benchmark (task x method matrix).", epilog=EPILOG)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a task x method matrix and write records, results.csv, report",
                       epilog=EPILOG)
    r.add_argument("--tasks", default="all", help="'all', comma list, or quoted glob; variants as name:field=value")
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
    r.add_argument("--epochs", type=int,
                   help="train every neural method for N epochs (an epoch budget); default per size: "
                        + _budget_help())
    r.add_argument("--flops", type=float,
                   help="train every neural method for F training FLOPs, turned into its own step count "
                        "(an equal-compute budget, e.g. 2e13)")
    r.add_argument("--batch-size", type=int, help="training batch size of every neural method (default per size)")
    r.add_argument("--max-train-s", type=float,
                   help="wall-clock safety cap on training per cell, seconds: a cell it stops is recorded "
                        "'truncated', never as a normal result (not part of a cell's identity)")
    r.add_argument("--checkpoint-every", type=float, default=30.0, metavar="SECONDS",
                   help="write a resumable training checkpoint at most this often (default 30; 0: every epoch)")
    r.add_argument("--timeout", type=float, help="hard wall-clock limit per cell in seconds (default: per size)")
    r.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument("--log", default="none", choices=list(TRACKERS),
                   help="log each cell's learning curve and final scores to TensorBoard (<out>/tensorboard/) or to "
                        "Weights & Biases in offline mode (<out>/wandb/); default none (docs/experiments.md)")
    r.add_argument("--config", type=Path, metavar="FILE",
                   help="experiment file (TOML) setting any of these options, keys with underscores (k_train = "
                        "[4, 8]); options given here override it. Every run writes its resolved options to "
                        "<out>/experiment.toml (docs/experiments.md)")

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


def cmd_predict(a: argparse.Namespace) -> int:
    from bench.predict import rescore

    rows = rescore(a.run_dir, a.task, a.method, a.seed, a.data_dir, n_train=a.n_train)
    worst = 0.0
    print(f"{'k':>3}  {'recorded rel_l2':>16}  {'re-scored':>16}  {'difference':>10}")
    for r in rows:
        diff = abs(r["rescored"] - r["recorded"]) if r["recorded"] is not None else float("inf")
        worst = max(worst, diff)
        print(f"{r['k']:>3}  {r['recorded']!s:>16.16}  {r['rescored']:>16.10g}  {diff:>10.2e}")
    ok = worst <= 1e-6
    print("matches the record" if ok else "DIFFERS from the record (beyond 1e-6)")
    return 0 if ok else 1


def cmd_compare(a: argparse.Namespace) -> int:
    from bench.compare import compare, format_table, parse_tolerances

    table = compare(a.baseline, a.new, parse_tolerances(a.tol, a.tol_file), z=a.z)
    print(format_table(table, show_all=a.all))
    n_bad = int((table.verdict == "regressed").sum())
    print(f"{n_bad} regression(s), {int((table.verdict == 'improved').sum())} improvement(s), "
          f"{int((table.verdict == 'same').sum())} unchanged")
    return 1 if n_bad else 0


def _check_device(device: str, executor: str) -> None:
    """A device torch knows; for local cells also one this machine has (Ray checks its
    cluster's GPUs itself, and assigns them: hence plain ``cuda`` there)."""
    from nskernel import Device

    try:
        dev = Device(device)
    except ValueError:
        raise UsageError(f"unknown --device {device!r}; expected cpu, cuda, cuda:N or mps") from None
    if not dev.is_cuda:
        return
    import torch

    if executor == "ray":
        if dev.index is not None:
            raise UsageError(f"--device {device} with --executor ray: Ray assigns each cell its GPU; use --device cuda")
    elif not torch.cuda.is_available():
        raise UsageError(f"--device {device}, but torch sees no CUDA device on this machine")
    elif (dev.index or 0) >= torch.cuda.device_count():
        raise UsageError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def _check_run_args(a: argparse.Namespace) -> None:
    """Everything about the options alone, before any task is built (exit 2 if bad)."""
    if a.jobs < 1 or (a.threads is not None and a.threads < 1):
        raise UsageError("--jobs and --threads must be at least 1")
    if a.timeout is not None and not a.timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {a.timeout}")
    if any(s < 0 for s in a.seeds):
        raise UsageError(f"--seeds must be non-negative, got {','.join(map(str, a.seeds))}")
    if a.executor != "ray" and a.address:
        raise UsageError("--address is for --executor ray")
    if a.executor == "ray" and a.jobs != 1:
        raise UsageError("--jobs is for the local executor; with --executor ray the cluster's CPUs and "
                         "--threads (CPUs per cell) set how many cells run at once")
    _check_device(a.device, a.executor)
    if a.executor == "ray":
        from bench.executors import import_ray

        import_ray()  # not installed: a clear error now, not after planning


def run_parser() -> argparse.ArgumentParser:
    """A fresh parser of the ``run`` subcommand: the source of the experiment-file keys."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["run"]


def _apply_config(a: argparse.Namespace) -> None:
    """``--config FILE``: its values replace the defaults, not the options given explicitly."""
    from bench.experiment import explicit_keys, merge, options, read_experiment

    from_file = read_experiment(a.config, options(run_parser()))
    argv = getattr(a, "argv", None)
    merge(a, from_file, explicit_keys(run_parser(), argv[1:]) if argv is not None else set())


def cmd_run(a: argparse.Namespace) -> int:
    if a.config is not None:
        _apply_config(a)
    _check_run_args(a)
    from bench.data import default_data_dir
    from bench.experiment import options, resolved
    from bench.runner import RunConfig, run

    threads = a.threads or max(1, _default_threads() // max(a.jobs, 1))
    out, data_dir = a.out or Path("results") / a.size, a.data_dir or default_data_dir()
    cfg = RunConfig(tasks=a.tasks, methods=a.methods, size=a.size, seeds=a.seeds, k_train=a.k_train,
                    k_test=a.k_test, device=a.device, dtype=a.dtype,
                    threads=threads, jobs=a.jobs, out=out, data_dir=data_dir,
                    overwrite=a.overwrite, retry_failed=a.retry_failed, timeout_s=a.timeout,
                    epochs=a.epochs, max_train_s=a.max_train_s, flops=a.flops, batch_size=a.batch_size,
                    checkpoint_every_s=a.checkpoint_every, n_train=a.n_train,
                    progress=not a.quiet, executor=a.executor, address=a.address, log=a.log,
                    experiment=resolved(a, options(run_parser()), threads=threads, out=out, data_dir=data_dir))
    counts = run(cfg)
    if not a.no_report:
        from bench.report import summary_table, write_report

        folder = write_report(cfg.out)
        print(summary_table(cfg.out))
        print(f"report: {folder}")
    print("cells: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return 1 if any(s not in ("ok", "n/a") for s in counts) else 0


def cmd_list(a: argparse.Namespace) -> int:
    from bench.catalog import metric_catalog
    from bench.names import task_classes
    from methods import METHODS, VARIANTS
    from tasks import TASK_VARIANTS

    tasks = task_classes()  # built-in and published (entry-point) tasks
    print("tasks:")
    for name, cls in tasks.items():
        print(f"  {name:<16} {(cls.__doc__ or '').strip().splitlines()[0]}")
    for v in TASK_VARIANTS:
        print(f"  {v}")
    print("methods (parameter=default):")
    for name, cls in METHODS.items():
        params = ", ".join(f"{k}={v}" for k, v in cls.param_defaults().items()) or (
            "the task's solver parameters, e.g. coarse_fv:mean=geometric" if cls.open_params else "no parameters")
        print(f"  {name:<16} {cls.summary}\n  {'':<16} [{params}]")
    if VARIANTS:
        print("registered variants:\n  " + "\n  ".join(VARIANTS))
    owners = {m.name: cls.name for cls in tasks.values() for m in cls.metrics}
    print("metrics (direction; task metrics name their task):")
    for name, m in metric_catalog().items():
        where = f" [{owners[name]}]" if name in owners else ""
        print(f"  {name:<19} {m.direction:<10} {m.description}{where}")
    return 0


def cmd_data(a: argparse.Namespace) -> int:
    from bench.data import default_data_dir, load_or_generate
    from bench.names import build_task, resolve_tasks

    tasks = [(t, build_task(t, a.size)[1]) for t in resolve_tasks(a.tasks)]  # every name checked first
    if a.export is not None:
        if a.export.exists() and not a.export.is_dir():
            raise UsageError(f"--export {a.export} exists and is not a directory")
        return _export_data(a, tasks)
    for t, task in tasks:
        ds, digest, path = load_or_generate(task, a.data_dir or default_data_dir(), progress=True)
        print(f"{t}: {len(ds)} samples, sha256 {digest[:12]}, {path}")
    return 0


def _export_data(a: argparse.Namespace, tasks: list[tuple[str, object]]) -> int:
    import h5py

    from bench.data import copy_format_doc, default_data_dir, export_dataset

    for i, (t, task) in enumerate(tasks, 1):
        print(f"[{i}/{len(tasks)}] {t} ({a.size}): exporting ...", flush=True)
        out = export_dataset(task, a.data_dir or default_data_dir(), a.export, task_label=t, size=a.size,
                             progress=True)
        with h5py.File(out, "r") as f:
            n, digest = f["inputs"].shape[0], str(f.attrs["checksum"])
        print(f"[{i}/{len(tasks)}] {t}: {n} samples, sha256 {digest[:12]}, {out} "
              f"({out.stat().st_size / 2**20:.1f} MiB)", flush=True)
    doc = copy_format_doc(a.export)
    print(f"format: {doc}" if doc else "format: docs/data-format.md is not installed here; see the repository")
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from bench.report import summary_table, write_report

    if not (a.run_dir / "results.csv").exists():
        raise UsageError(f"{a.run_dir} has no results.csv (is it a run directory?)")
    folder = write_report(a.run_dir, a.out)
    print(summary_table(a.run_dir))
    print(f"report: {folder}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `run --config`: what the command line gave
    handler = {"run": cmd_run, "list": cmd_list, "data": cmd_data, "report": cmd_report,
               "compare": cmd_compare, "predict": cmd_predict}[args.command]
    try:
        return handler(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished cells are saved; re-run the same command to resume", file=sys.stderr)
        return 130
