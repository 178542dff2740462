"""Hyperparameter search: ``bench tune --task T --method M --trials N`` (docs/tuning.md).

An Optuna study (TPE) over the method's declared search space
(`methods.search_spaces.SEARCH_SPACES`). Each trial is one harness cell (`bench.cell`,
the code path of ``bench run``) of the trial's variant string, fitted on the task's
training split and scored on its **validation** split at the training factors
(`bench.scoring.validation_score`, the suite's ``rel_l2``); the test split is never
predicted. Every trial trains with the same seed and budget, so trials differ by their
hyperparameters only.

* Everything lives in the output directory (held with `bench.lock.RunLock`): the study in
  ``study.db`` (SQLite), each trial's record in ``trials/records/``, the summary in
  ``tune.json``. The same command again resumes: finished trials are not rerun, a trial
  that was interrupted is run again with the same parameters (its training resumes from
  its checkpoint), and a variant that already has a record (two trials may draw the same
  one) is read, not retrained. ``--trials`` is the study's total: a larger number extends it.
* Seeded: trial ``n`` draws from a `TPESampler` seeded by ``SeedSequence([seed, n])``, so
  the same command gives the same trials, also across interruptions.
* A study is bound to its configuration (task, method, size, budget, factors, device,
  dtype, seed, space): resuming it under another is refused.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.cell import CellConfig, run_cell
from bench.lock import RunLock
from bench.names import build_method, build_task, canonical, parse_spec, resolve_methods, resolve_tasks
from bench.records import read_record, write_json_atomic
from bench.runner import RunConfig, plan, prepare_data
from nskernel import WrapperMethod
from nskernel.errors import UsageError

OPTUNA_REQUIREMENT = "optuna>=4.0,<5"
INSTALL_HINT = f"pip install -e '.[tune]' (or pip install '{OPTUNA_REQUIREMENT}')"
STUDY_NAME = "bench-tune"
KINDS = ("log-float", "float", "int", "log-int", "choice")


@dataclass(frozen=True)
class TuneConfig:
    task: str
    method: str
    trials: int = 20
    size: str = "small"
    seed: int = 0
    out: Path | None = None  # None: results/tune/<task>-<method>
    data_dir: Path = Path()
    k_train: tuple[int, ...] = (4, 8)
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 2
    #: overrides of the size's training budget, as ``bench run`` has them (`bench.runner.resolve_budget`)
    epochs: int | None = None
    flops: float | None = None
    batch_size: int | None = None
    max_train_s: float | None = None
    timeout_s: float | None = None
    checkpoint_every_s: float = 30.0
    progress: bool = False
    command: str = field(default_factory=lambda: shlex.join([Path(sys.executable).name, "-m", "bench", *sys.argv[1:]]))

    @property
    def out_dir(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        return Path("results/tune") / re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{self.task}-{self.method}")


def import_optuna() -> Any:
    try:
        import optuna
    except ModuleNotFoundError:
        raise UsageError(f"bench tune needs Optuna, which is not installed: {INSTALL_HINT}") from None
    return optuna


def search_space(method: str) -> dict[str, tuple[Any, ...]]:
    """The space searched for ``method`` (a name, or a variant whose parameters stay fixed)."""
    from methods.search_spaces import SEARCH_SPACES

    base, fixed = parse_spec(method)
    if base not in SEARCH_SPACES:
        raise UsageError(f"method {base!r} has no search space; methods with one: {', '.join(SEARCH_SPACES)} "
                         "(methods/search_spaces.py)")
    space = {k: v for k, v in SEARCH_SPACES[base].items() if k not in fixed}
    if not space:
        raise UsageError(f"{method!r} fixes every parameter of {base}'s search space: nothing to tune")
    return space


def distributions(space: dict[str, tuple[Any, ...]], optuna: Any) -> dict[str, Any]:
    """Optuna distributions of a search space (`methods.search_spaces` entries)."""
    d = optuna.distributions
    out: dict[str, Any] = {}
    for name, (kind, *args) in space.items():
        if kind == "choice":
            out[name] = d.CategoricalDistribution(tuple(args[0]))
        elif kind in ("log-float", "float"):
            out[name] = d.FloatDistribution(float(args[0]), float(args[1]), log=kind == "log-float")
        elif kind in ("log-int", "int"):
            out[name] = d.IntDistribution(int(args[0]), int(args[1]), log=kind == "log-int")
        else:
            raise ValueError(f"search space entry {name}: unknown kind {kind!r}; valid: {', '.join(KINDS)}")
    return out


def variant(method: str, params: dict[str, Any]) -> str:
    """The variant string of a trial: ``method``'s own parameters, then the drawn ones
    (floats to 3 significant digits, so that names stay readable and a rerun equal)."""
    base, fixed = parse_spec(method)
    drawn = {k: f"{v:.3g}" if isinstance(v, float) else str(v) for k, v in params.items()}
    return canonical(base, {**fixed, **drawn})


def trial_seed(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


@dataclass(frozen=True)
class _Setup:
    cfg: TuneConfig
    space: dict[str, tuple[Any, ...]]
    cell: CellConfig  # the trial cell of the method as given; a trial replaces its method
    run_cfg: RunConfig

    def identity(self) -> dict[str, Any]:
        ident = {k: v for k, v in self.cell.identity().items() if k != "method"}
        return {**ident, "method": self.cfg.method, "space": {k: list(map(_plain, v)) for k, v in self.space.items()}}


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def prepare(cfg: TuneConfig) -> _Setup:
    """Validate everything (a `UsageError` naming the valid choices) before anything is written."""
    if cfg.trials < 1:
        raise UsageError(f"--trials must be at least 1, got {cfg.trials}")
    if cfg.seed < 0:
        raise UsageError(f"--seed must be non-negative, got {cfg.seed}")
    if resolve_tasks(cfg.task) != [cfg.task]:
        raise UsageError(f"--task {cfg.task!r}: bench tune tunes on one task (a name or variant, no list or pattern)")
    if resolve_methods(cfg.method) != [cfg.method]:
        raise UsageError(f"--method {cfg.method!r}: bench tune tunes one method (a name or variant, no list, "
                         "no pattern)")
    name, method = build_method(cfg.method)
    space = search_space(cfg.method)
    if not method.uses_training_data or isinstance(method, WrapperMethod):
        raise UsageError(f"{name} learns nothing from the training data (or is a wrapper): it has no validation "
                         "score to tune on")
    _, task = build_task(cfg.task, cfg.size)
    if task.n_val < 1:
        raise UsageError(f"task {cfg.task} has no validation split at size {cfg.size}: trials are scored on it")
    run_cfg = RunConfig(tasks=cfg.task, methods=cfg.method, size=cfg.size, seeds=(cfg.seed,), k_train=cfg.k_train,
                        k_test=cfg.k_train, device=cfg.device, dtype=cfg.dtype, threads=cfg.threads,
                        out=cfg.out_dir / "trials", data_dir=cfg.data_dir, overwrite=True, timeout_s=cfg.timeout_s,
                        epochs=cfg.epochs, max_train_s=cfg.max_train_s, flops=cfg.flops, batch_size=cfg.batch_size,
                        checkpoint_every_s=cfg.checkpoint_every_s, progress=cfg.progress, command=cfg.command)
    (cell,) = plan(run_cfg).cells  # the run path's validation: names, factors, budget, the task's checks
    return _Setup(cfg, space, dataclasses.replace(cell, scored_split="validation"), run_cfg)


def tune(cfg: TuneConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) the study to ``cfg.trials`` finished trials; returns the summary
    also written to ``<out>/tune.json``."""
    optuna = import_optuna()
    setup = prepare(cfg)
    out = cfg.out_dir
    with RunLock(out):
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the trials' table is ours
        study = optuna.create_study(study_name=STUDY_NAME, direction="minimize", load_if_exists=True,
                                    storage=optuna.storages.RDBStorage(f"sqlite:///{out.resolve() / 'study.db'}"))
        stored = study.user_attrs.get("config")
        if stored is None:
            study.set_user_attr("config", setup.identity())
        elif stored != setup.identity():
            raise UsageError(f"{out} holds a study of another configuration ({_diff(stored, setup.identity())}); "
                             "use --out for a new one")
        space = distributions(setup.space, optuna)
        state = optuna.trial.TrialState
        stale = study.get_trials(deepcopy=False, states=(state.RUNNING,))  # we hold the lock: interrupted ones
        finished = lambda: len(study.get_trials(deepcopy=False, states=(state.COMPLETE, state.FAIL)))  # noqa: E731
        if stale or finished() < cfg.trials:
            prepare_data([setup.cell], setup.run_cfg, log)
        for t in stale:
            log(f"trial {t.number} was interrupted: running it again")
            _finish(study, t.number, setup, t.params, log, optuna)
        while (done := finished()) < cfg.trials:
            study.sampler = optuna.samplers.TPESampler(seed=trial_seed(cfg.seed, done))
            trial = study.ask(space)
            trial.set_user_attr("variant", variant(cfg.method, trial.params))
            _finish(study, trial.number, setup, trial.params, log, optuna)
            write_json_atomic(out / "tune.json", summary(study, setup, optuna))
        result = summary(study, setup, optuna)
        write_json_atomic(out / "tune.json", result)
    return result


def _diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return "; ".join(f"{k}: {a.get(k)!r} there, {b.get(k)!r} now" for k in keys)


def _finish(study: Any, number: int, setup: _Setup, params: dict[str, Any], log: Callable[[str], None],
            optuna: Any) -> None:
    """Run (or read) trial ``number``'s cell and tell the study its validation score."""
    name = variant(setup.cfg.method, params)
    cell = dataclasses.replace(setup.cell, method=name)
    rec = _existing(cell)
    log(f"trial {number} of {setup.cfg.trials}: {name}" + (" (recorded already)" if rec else ""))
    if rec is None:
        rec = run_cell(cell)
    if rec["status"] == "ok":
        study.tell(number, rec["validation"]["value"])
        log(f"  ok: validation rel_l2 {rec['validation']['value']:.4g} ({rec.get('wall_s', 0.0):.0f} s)")
    else:
        study.tell(number, state=optuna.trial.TrialState.FAIL)
        why = (rec.get("error") or rec.get("reason") or "").strip().splitlines()
        log(f"  {rec['status']}: {why[0] if why else ''}")


def _existing(cell: CellConfig) -> dict[str, Any] | None:
    """The finished record of a trial's cell (None: none, or a corrupt one)."""
    try:
        rec = read_record(cell.path)
    except ValueError:
        return None
    if rec["config_hash"] != cell.config_hash:
        raise UsageError(f"{cell.path} was produced by another configuration; use --out for a new study")
    return rec


def summary(study: Any, setup: _Setup, optuna: Any) -> dict[str, Any]:
    """``tune.json``: the configuration, every finished trial of the first ``--trials``
    (variant, status, validation score, from its record) and the best of them."""
    cfg, rows = setup.cfg, []
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    for t in sorted(study.get_trials(deepcopy=False, states=finished), key=lambda t: t.number)[: cfg.trials]:
        cell = dataclasses.replace(setup.cell, method=variant(cfg.method, t.params))
        try:
            status = read_record(cell.path)["status"]
        except ValueError:  # the record was deleted or damaged since: the study still knows the score
            status = "ok" if t.value is not None else "failed"
        value = t.value if status == "ok" else None
        rows.append({"trial": t.number, "variant": cell.method, "status": status, "val_rel_l2": value,
                     "params": t.params, "record": str(cell.path.relative_to(cfg.out_dir))})
    ok = [r for r in rows if r["val_rel_l2"] is not None]
    best = min(ok, key=lambda r: (r["val_rel_l2"], r["trial"])) if ok else None
    b = setup.cell.budget
    amount = f"{b.epochs} epoch{'s' * (b.epochs != 1)}" if b.mode == "epochs" else f"{b.flops:.3g} FLOPs"
    return {
        "task": cfg.task, "method": cfg.method, "size": cfg.size, "seed": cfg.seed, "k_train": list(cfg.k_train),
        "device": cfg.device, "dtype": cfg.dtype, "budget": dataclasses.asdict(b), "trials": len(rows),
        "trials_requested": cfg.trials, "objective": "mean rel_l2 on the validation split at the training factors",
        "sampler": {"name": "TPESampler", "seed": cfg.seed, "per_trial_seed": "SeedSequence([seed, trial number])",
                    "n_startup_trials": 10, "optuna": optuna.__version__},
        "space": {k: list(map(_plain, v)) for k, v in setup.space.items()},
        "best_variant": best["variant"] if best else None, "best_val_rel_l2": best["val_rel_l2"] if best else None,
        "best_trial": best["trial"] if best else None,
        "protocol": f"tuned: {len(rows)} TPE trials (seed {cfg.seed}) of {amount} (batch {b.batch_size}) each at size "
                    f"{cfg.size}, scored on the validation split",
        "study": "study.db", "command": cfg.command, "run_command": _run_command(cfg, best), "table": rows,
    }


def _run_command(cfg: TuneConfig, best: dict[str, Any] | None) -> str | None:
    """``bench run`` of the best variant under the tuning's budget and training factors."""
    if best is None:
        return None
    args = ["--tasks", cfg.task, "--methods", best["variant"], "--size", cfg.size]
    if cfg.k_train != (4, 8):
        args += ["--k-train", ",".join(map(str, cfg.k_train))]
    for flag, value in (("--epochs", cfg.epochs), ("--flops", cfg.flops), ("--batch-size", cfg.batch_size)):
        if value is not None:
            args += [flag, str(value)]
    return shlex.join(["python", "-m", "bench", "run", *args])


def format_summary(s: dict[str, Any]) -> str:
    """The trials' table and the best variant, as ``bench tune`` prints them."""
    width = max([len("variant")] + [len(r["variant"]) for r in s["table"]])
    lines = [f"{'trial':>5}  {'status':<9} {'val rel_l2':>10}  variant"]
    for r in s["table"]:
        v = "-" if r["val_rel_l2"] is None else f"{r['val_rel_l2']:.4g}"
        mark = "  <- best" if r["trial"] == s["best_trial"] else ""
        lines.append(f"{r['trial']:>5}  {r['status']:<9} {v:>10}  {r['variant']:<{width}}{mark}".rstrip())
    if s["best_variant"] is None:
        lines.append("no trial finished ok: no best variant")
        return "\n".join(lines)
    lines += [f"best: {s['best_variant']}  (validation rel_l2 {s['best_val_rel_l2']:.4g}, trial {s['best_trial']})",
              s["protocol"], f"run it: {s['run_command']}"]
    return "\n".join(lines)
