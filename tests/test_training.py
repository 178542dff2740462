"""The shared training loop on a tiny least-squares problem: step-bound budgets, FLOP
counts, model selection on validation, resumable checkpoints, safe loading."""

import math
import os
import pickle
import time

import pytest
import torch

from methods.checkpoint import load_tensors
from methods.flops import count_step_flops
from methods.training import Schedule, train
from nskernel import Budget, Context
from nskernel.errors import CellTimeout, Diverged


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    model = torch.nn.Linear(3, 1)
    torch.manual_seed(seed)
    model.reset_parameters()

    def loss_fn(idx):
        loss = (model(x[idx]).squeeze(-1) - y[idx]).square().mean()
        return loss, {"mse": loss.item()}

    return model, loss_fn


def test_loss_decreases_and_the_learning_curve_is_logged():
    model, loss_fn = _problem()
    log = train(model, loss_fn, 64, budget=Budget(30, 60, 16), ctx=Context(), lr=0.05)
    assert log.epochs == 30 and log.steps == log.planned_steps == 30 * 4 and log.stopped == "completed"
    assert log.loss[-1] < 0.01 * log.loss[0]
    assert len(log.terms["mse"]) == len(log.at_step) == len(log.at_s) == 30 and log.at_step[-1] == 120
    assert log.val == [] and log.best_epoch is None  # no validation: the last epoch is kept


def test_same_seed_same_result():
    finals = []
    for _ in range(2):
        model, loss_fn = _problem()
        train(model, loss_fn, 64, budget=Budget(3, 60, 8), ctx=Context(seed=5))
        finals.append(model.weight.detach().clone())
    torch.testing.assert_close(finals[0], finals[1], rtol=0, atol=0)


def test_the_clock_never_changes_the_result():
    """A slow step (a loaded machine) changes nothing: the schedule runs over steps."""

    def run(first_step_sleep: float) -> torch.Tensor:
        model, loss_fn = _problem()
        calls = []

        def loss(idx):
            if not calls:
                time.sleep(first_step_sleep)
            calls.append(1)
            return loss_fn(idx)

        log = train(model, loss, 64, budget=Budget(epochs=2, max_train_s=30.0, batch_size=16), ctx=Context(seed=1),
                    lr=0.05)
        assert log.stopped == "completed" and log.steps == 8
        return model.weight.detach().clone()

    assert torch.equal(run(0.0), run(0.5))


def test_nan_loss_raises_diverged():
    model, _ = _problem()
    with pytest.raises(Diverged, match="nan"):
        train(model, lambda idx: (model.weight.sum() * float("nan"), {}), 8, budget=Budget(2, 60, 4), ctx=Context())


def test_safety_cap_truncates_and_deadline_raises():
    model, loss_fn = _problem()

    def slow(idx):
        time.sleep(0.02)
        return loss_fn(idx)

    log = train(model, slow, 64, budget=Budget(1000, 0.1, 8), ctx=Context())
    assert log.stopped == "truncated" and log.steps < log.planned_steps
    with pytest.raises(CellTimeout):
        train(model, slow, 64, budget=Budget(1000, 60, 8), ctx=Context(deadline=time.monotonic() + 0.1))


def test_budget_split_and_share():
    b = Budget(epochs=3, max_train_s=60.0, batch_size=8)
    assert b.split(1) == b
    assert b.split(2) == Budget(2, 30.0, 8)  # epochs round up
    assert b.split(8).epochs == 1 and b.split(8).max_train_s == 7.5  # at least one epoch each
    f = Budget(epochs=1, max_train_s=60.0, batch_size=8, mode="flops", flops=1e12)
    assert f.split(4).flops == 2.5e11 and f.share(0.5).flops == 5e11
    with pytest.raises(ValueError, match="0 shares"):
        b.split(0)
    with pytest.raises(ValueError, match="budget mode"):
        Budget(1, 1.0, 1, mode="seconds")
    assert b.override(flops=1e9).mode == "flops" and b.override(flops=1e9).override(epochs=2).mode == "epochs"


def test_flop_count_matches_the_closed_form():
    """A linear map y = x W (B x n times n x m): forward 2Bnm, backward 2Bnm for dW (x
    needs no gradient); an rfft2 of B fields n x n adds 5 (n^2/2) log2(n^2) B."""
    b, n, m = 16, 32, 8
    w = torch.nn.Parameter(torch.randn(n, m))
    x = torch.randn(b, n)
    assert count_step_flops(lambda idx: ((x @ w).square().sum(), {}), [w], torch.arange(b)) == 4 * b * n * m
    assert w.grad is None  # counting leaves no gradient behind
    fields = torch.randn(b, n, n)

    def with_fft(idx):
        z = torch.fft.rfft2(fields * w.sum())
        return (x @ w).square().sum() + z.abs().sum(), {}

    extra = count_step_flops(with_fft, [w], torch.arange(b)) - 4 * b * n * m
    assert extra >= 5 * (n * n / 2) * math.log2(n * n) * b  # the forward transform at least


def test_flop_budget_sets_the_steps_from_the_count():
    model, loss_fn = _problem()
    per_step = count_step_flops(loss_fn, list(model.parameters()), torch.arange(16))
    log = train(model, loss_fn, 64, budget=Budget(1, 60, 16, mode="flops", flops=10.5 * per_step), ctx=Context())
    assert log.flops_per_step == per_step and log.planned_steps == log.steps == 10  # 3 epochs: 4 + 4 + 2 steps
    assert log.epochs == 3 and log.at_step == [4, 8, 10]


def test_validation_keeps_the_best_epoch():
    model, loss_fn = _problem()
    scores = iter([3.0, 1.0, 2.0])
    seen = []

    def val():
        seen.append(model.weight.detach().clone())
        return next(scores)

    log = train(model, loss_fn, 64, budget=Budget(3, 60, 16), ctx=Context(), lr=0.05, val_fn=val)
    assert log.val == [3.0, 1.0, 2.0] and log.best_epoch == 2
    assert torch.equal(model.weight, seen[1])  # the epoch-2 weights, not the last ones


def test_step_schedule():
    s = Schedule("step:100:0.5")
    assert [s.factor(step, 10_000, 10) for step in (0, 999, 1000, 2500)] == [1.0, 1.0, 0.5, 0.25]
    assert Schedule().factor(50, 100, 10) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="valid: cosine"):
        Schedule("linear")


class Interrupt(Exception):
    pass


def _run(path, ctx, stop_at=None, val=True):
    """The problem trained 6 epochs with a checkpoint; ``stop_at``: raise at that step."""
    model, loss_fn = _problem()
    steps = []
    noise = torch.Generator().manual_seed(3)

    def loss(idx):
        steps.append(1)
        if stop_at is not None and len(steps) == stop_at:
            raise Interrupt
        extra = 1e-3 * torch.rand(1, generator=noise).item() * torch.rand(1).item()  # both random streams
        value, terms = loss_fn(idx)
        return value + extra, terms

    log = train(model, loss, 64, budget=Budget(6, 60, 16), ctx=ctx, lr=0.05, checkpoint=path,
                val_fn=(lambda: float(model.weight.abs().sum())) if val else None, generators=[noise])
    return model, log


def test_an_interrupted_run_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_one(tmp_path):
    ctx = Context(seed=2, checkpoint_every_s=0)
    torch.manual_seed(7)
    whole, whole_log = _run(tmp_path / "a.pt", ctx)
    torch.manual_seed(7)
    with pytest.raises(Interrupt):
        _run(tmp_path / "b.pt", ctx, stop_at=4 * 3 + 2)  # in epoch 4: epochs 1-3 are saved
    resumed, log = _run(tmp_path / "b.pt", ctx)
    assert log.resumed_at_epoch == 3 and log.steps == whole_log.steps
    assert torch.equal(resumed.weight, whole.weight) and torch.equal(resumed.bias, whole.bias)
    assert log.val == whole_log.val and log.loss == whole_log.loss


def test_a_corrupt_or_foreign_checkpoint_is_not_used(tmp_path):
    ctx = Context(seed=2, checkpoint_every_s=0)
    torch.manual_seed(7)
    fresh, _ = _run(tmp_path / "a.pt", ctx)
    bad = tmp_path / "b.pt"
    bad.write_bytes(b"not a checkpoint")
    torch.manual_seed(7)
    with pytest.warns(UserWarning, match="training from scratch"):
        again, log = _run(bad, ctx)
    assert "cannot load checkpoint" in log.checkpoint_note and torch.equal(again.weight, fresh.weight)
    other = tmp_path / "c.pt"
    model, loss_fn = _problem()
    train(model, loss_fn, 64, budget=Budget(2, 60, 16), ctx=ctx, checkpoint=other)  # 8 planned steps, not 24
    torch.manual_seed(7)
    with pytest.warns(UserWarning, match="another training run"):
        again, _ = _run(other, ctx)
    assert torch.equal(again.weight, fresh.weight)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_loading_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": _Exploit()}, f, protocol=2)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(ValueError, match="cannot load checkpoint"):
            load_tensors(path)
        assert not (tmp_path / "PWNED").exists()
    finally:
        os.chdir(cwd)
