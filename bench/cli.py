"""Command line: ``python -m bench {run,tune,list,data,report,compare,predict}``. Thin: parse, then call the
plain functions in `bench.runner`, `bench.tune`, `bench.data` and `bench.report`.

Exit codes: 0 success; 1 some cell failed / diverged / timed out; 2 bad input (nothing
is computed or written).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.cli_args import build_parser, default_threads, run_parser
from nskernel.errors import UsageError


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


def cmd_tune(a: argparse.Namespace) -> int:
    if a.threads is not None and a.threads < 1:
        raise UsageError("--threads must be at least 1")
    _check_device(a.device, "local")
    from bench.data import default_data_dir
    from bench.tune import TuneConfig, format_summary, tune

    s = tune(TuneConfig(task=a.task, method=a.method, trials=a.trials, size=a.size, seed=a.seed, out=a.out,
                        data_dir=a.data_dir or default_data_dir(), k_train=a.k_train, device=a.device, dtype=a.dtype,
                        threads=a.threads or default_threads(), epochs=a.epochs, flops=a.flops,
                        batch_size=a.batch_size, max_train_s=a.max_train_s, timeout_s=a.timeout,
                        progress=not a.quiet))
    print(format_summary(s))
    return 0 if s["best_variant"] else 1


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

    threads = a.threads or max(1, default_threads() // max(a.jobs, 1))
    out, data_dir = a.out or Path("results") / a.size, a.data_dir or default_data_dir()
    cfg = RunConfig(tasks=a.tasks, methods=a.methods, size=a.size, seeds=a.seeds, k_train=a.k_train,
                    k_test=a.k_test, device=a.device, dtype=a.dtype,
                    threads=threads, jobs=a.jobs, out=out, data_dir=data_dir,
                    overwrite=a.overwrite, retry_failed=a.retry_failed, timeout_s=a.timeout,
                    epochs=a.epochs, max_train_s=a.max_train_s, flops=a.flops, batch_size=a.batch_size,
                    checkpoint_every_s=a.checkpoint_every, n_train=a.n_train,
                    progress=not a.quiet, executor=a.executor, address=a.address, log=a.log, ladder=not a.no_ladder,
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
    from tasks import NOT_IN_ALL, TASK_VARIANTS

    tasks = task_classes()  # built-in and published (entry-point) tasks
    print("tasks:")
    for name, cls in tasks.items():
        print(f"  {name:<16} {(cls.__doc__ or '').strip().splitlines()[0]}")
        if name in NOT_IN_ALL:
            print(f"  {'':<16} [not in --tasks all: {NOT_IN_ALL[name]}]")
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
               "compare": cmd_compare, "predict": cmd_predict, "tune": cmd_tune}[args.command]
    try:
        return handler(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished cells are saved; re-run the same command to resume", file=sys.stderr)
        return 130
