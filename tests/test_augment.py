"""Augmentation by the task's symmetries (`methods.augment`, `NeuralMethod.augment`): the
exact group action with parity signs, commuting with R_k, only grid-preserving elements
on non-square grids, shifts along periodic homogeneous axes, reproducible draws, off by
default, consistent pairs in every loss, n/a where the task declares no symmetry."""

import dataclasses

import numpy as np
import pytest
import torch

from bench.names import build_method
from methods import METHODS
from methods.augment import AUGMENTS, Augmenter, BatchTransform, augment_reason, translation_axes
from methods.fno_family.fno import FNO
from methods.fno_family.pino import PINO
from methods.groups import make_group, transform
from methods.neural import NeuralMethod, rel_l2_loss
from nskernel import Budget, Context, Dataset, TaskSpec
from nskernel.errors import NotApplicable, UsageError
from nskernel.grid import restrict

TINY = Budget(epochs=2, max_train_s=60.0, batch_size=4)


def spec_of(**kw) -> TaskSpec:
    base = dict(name="toy", fine_shape=(16, 16), in_channels=1, out_channels=1, in_names=("a",), out_names=("u",),
                boundary="dirichlet", symmetry="p4m")
    return TaskSpec(**{**base, **kw})


def flow_spec(**kw) -> TaskSpec:
    """Convection-like: x periodic and homogeneous, x -> -x with u -> -u."""
    return spec_of(**{"in_channels": 3, "out_channels": 3, "in_names": ("T", "u", "w"), "out_names": ("T", "u", "w"),
                      "boundary": "periodic-x/noslip-z", "symmetry": "flip_x", "in_parity": (1, -1, 1),
                      "out_parity": (1, -1, 1), "climatology_axes": (-1,), "time_dependent": True, **kw})


def toy_data(spec: TaskSpec, n: int = 8, ks=(4, 8)) -> Dataset:
    g = np.random.default_rng(0)
    x = g.standard_normal((n, spec.in_channels, *spec.fine_shape)) + 0.3
    y = np.cumsum(g.standard_normal((n, spec.out_channels, *spec.fine_shape)), axis=-1)
    return Dataset(inputs=x.astype(np.float32), targets={k: restrict(y, k).astype(np.float32) for k in ks})


def test_the_moved_batch_is_the_exact_group_action_with_parity_signs():
    for name, parity in (("p4m", (1, -1)), ("p4", (1, 1)), ("p2", (-1, 1)), ("flip_x", (1, -1))):
        group = make_group(name)
        f = torch.randn(group.order, 2, 8, 8, dtype=torch.float64)
        shifts = torch.tensor([[4 * (g % 2), 4 * (g // 2 % 2)] for g in range(group.order)])
        t = BatchTransform(group, torch.arange(group.order), shifts, (8, 8))
        out = t.apply(f, parity)
        for g in range(group.order):
            want = torch.roll(transform(f[g : g + 1], group, g, parity), tuple(shifts[g].tolist()), dims=(-2, -1))
            torch.testing.assert_close(out[g : g + 1], want, rtol=0, atol=0)
        assert torch.equal(t.apply(f[:3], parity), out[:3])  # rows aligned with the batch


@pytest.mark.parametrize("shape", [(16, 16), (16, 32)])
def test_restriction_commutes_with_every_drawn_move(shape):
    spec = spec_of(fine_shape=shape, boundary="periodic", climatology_axes=(-2, -1))
    aug = Augmenter("group+shift", spec, (4, 8), seed=3)
    t = aug.draw(64)
    f = torch.randn(64, 2, *shape, dtype=torch.float64)
    for k in (1, 2, 4, 8):
        torch.testing.assert_close(t.apply(restrict(f, k), (1, -1)), restrict(t.apply(f, (1, -1)), k))
    assert bool((t.shifts % 8 == 0).all()) and bool((t.shifts != 0).any())  # multiples of lcm(4, 8)


def test_a_non_square_grid_draws_only_the_elements_that_map_it_to_itself():
    group = make_group("p4m")
    aug = Augmenter("group", spec_of(fine_shape=(16, 32)), (4,), seed=0)
    assert all(group.mat(g)[0, 1] == 0 for g in aug.elements) and len(aug.elements) == 4  # no 90-degree turns
    drawn = set(aug.draw(400).elems.tolist())
    assert drawn == set(aug.elements)
    assert len(Augmenter("group", spec_of(), (4,), seed=0).elements) == 8  # square: the whole group


def test_a_reflected_sample_of_a_flip_x_task_flips_the_sign_of_odd_channels():
    spec = flow_spec()
    x = torch.randn(1, 3, 16, 16)
    t = BatchTransform(make_group("flip_x"), torch.tensor([1]), torch.zeros(1, 2, dtype=torch.long), (16, 16))
    out = t.apply(x, spec.in_parity)
    torch.testing.assert_close(out[:, 0], torch.flip(x[:, 0], dims=(-1,)))
    torch.testing.assert_close(out[:, 1], -torch.flip(x[:, 1], dims=(-1,)))
    torch.testing.assert_close(out[:, 2], torch.flip(x[:, 2], dims=(-1,)))


def test_shift_axes_are_the_periodic_homogeneous_ones():
    assert translation_axes(flow_spec()) == (-1,)
    turbulence_like = spec_of(boundary="periodic", symmetry="none", climatology_axes=(-1,))
    assert translation_axes(turbulence_like) == (-1,)  # forcing cos(k_f y): no y shifts
    assert translation_axes(spec_of(boundary="periodic")) == ()  # no homogeneous axis declared
    assert translation_axes(spec_of()) == ()
    t = Augmenter("shift", flow_spec(), (4, 8), seed=1).draw(200)
    assert bool((t.shifts[:, 0] == 0).all()) and set(t.shifts[:, 1].tolist()) == set(range(0, 16, 8))
    assert bool((t.elems == 0).all())


def test_draws_are_reproducible_and_seeded():
    spec = flow_spec()
    draws = [Augmenter("group+shift", spec, (4,), seed=s).draw(32) for s in (5, 5, 6)]
    assert torch.equal(draws[0].elems, draws[1].elems) and torch.equal(draws[0].shifts, draws[1].shifts)
    assert not (torch.equal(draws[0].elems, draws[2].elems) and torch.equal(draws[0].shifts, draws[2].shifts))


def test_bad_modes_raise_and_unsupported_ones_are_not_applicable():
    with pytest.raises(ValueError, match="valid: none, group, shift, group\\+shift"):
        FNO(augment="rotate")
    with pytest.raises(UsageError, match="augment"):
        build_method("fno:augment=rotate")
    name, method = build_method("fno:augment=group+shift")  # the CLI's variant syntax
    assert name == "fno:augment=group+shift" and method.augment == "group+shift"
    turbulence_like = spec_of(boundary="periodic", symmetry="none", climatology_axes=(-1,),
                              residual=lambda u, a, k: torch.zeros_like(u))
    assert augment_reason("shift", turbulence_like) is None
    assert "no symmetry group" in augment_reason("group", turbulence_like)
    assert "periodic" in augment_reason("group+shift", spec_of())
    assert augment_reason("none", spec_of(symmetry="none")) is None
    # every neural method, including those with their own not_applicable (pino: a residual)
    for cls in METHODS.values():
        if issubclass(cls, NeuralMethod):
            why = cls(augment="group").not_applicable(turbulence_like)
            assert why and (cls().not_applicable(turbulence_like) or "symmetry" in why), cls.name
    assert PINO(augment="shift").not_applicable(turbulence_like) is None
    with pytest.raises(NotApplicable, match="symmetry"):
        FNO(augment="group", width=4, n_modes=2).fit(toy_data(turbulence_like), turbulence_like, TINY, Context())


class Interrupt(Exception):
    pass


class Spy(NeuralMethod):
    """A tiny network that records what its loss sees (and stops at step ``stop_at``)."""

    name = "spy"
    stop_at: int = 0

    def build_model(self, spec: TaskSpec) -> torch.nn.Module:
        self.seen: list = []
        return torch.nn.Conv2d(spec.in_channels, spec.out_channels, 3, padding=1)

    def loss_terms(self, x, ys, idx):
        if len(self.seen) + 1 == self.stop_at:
            raise Interrupt
        self.seen.append((x.detach().clone(), {k: y.clone() for k, y in ys.items()}, idx.clone(), self.batch_transform))
        return {"data": sum(rel_l2_loss(self.decode(restrict(self.model(x), k)), y) for k, y in ys.items())}

    def val_prediction(self, x, ks):
        self.val_seen = x.clone()
        return super().val_prediction(x, ks)


def test_the_loss_sees_consistent_moved_pairs_and_validation_is_untouched():
    spec = flow_spec()
    data = toy_data(spec)
    val = toy_data(spec, n=4)
    m = Spy(augment="group+shift").fit(dataclasses.replace(data, validation=val), spec, TINY, Context(seed=2))
    X = torch.as_tensor(data.inputs)
    moved = 0
    for x, ys, idx, t in m.seen:
        torch.testing.assert_close(x * m._x_std + m._x_mean, t.apply(X[idx], spec.in_parity), rtol=1e-5, atol=1e-5)
        for k, y in ys.items():
            torch.testing.assert_close(y, t.apply(torch.as_tensor(data.targets[k])[idx], spec.out_parity))
        moved += int((t.elems != 0).sum() + (t.shifts != 0).any(dim=1).sum())
    assert moved > 0
    torch.testing.assert_close(m.val_seen, m.encode(torch.as_tensor(val.inputs)))


def test_an_interrupted_augmented_run_resumes_to_the_uninterrupted_result(tmp_path):
    """The augmentation stream is saved in the training checkpoint with the others."""
    spec, budget = flow_spec(), Budget(epochs=4, max_train_s=60.0, batch_size=4)
    data = toy_data(spec)

    def fit(workdir, stop_at=0):
        torch.manual_seed(0)
        ctx = Context(seed=4, workdir=str(workdir), checkpoint_every_s=0)
        return Spy(augment="group+shift", stop_at=stop_at).fit(data, spec, budget, ctx)

    whole = fit(tmp_path / "a")
    with pytest.raises(Interrupt):
        fit(tmp_path / "b", stop_at=6)  # in epoch 3 of 2 steps each: epochs 1-2 are saved
    resumed = fit(tmp_path / "b")
    assert resumed.train_log.resumed_at_epoch == 2
    assert all(torch.equal(a, b) for a, b in zip(whole.model.state_dict().values(),
                                                 resumed.model.state_dict().values()))
    last = [(t.elems, t.shifts) for *_, t in whole.seen[-4:]]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
               for a, b in zip(last, [(t.elems, t.shifts) for *_, t in resumed.seen]))


def test_off_by_default_and_the_default_batch_is_the_stored_one():
    m = FNO()
    assert m.augment == "none" and m.amp is False and m.batch_transform is None
    spec = spec_of()
    data = toy_data(spec)
    spy = Spy().fit(data, spec, TINY, Context(seed=2))
    X = spy.encode(torch.as_tensor(data.inputs))
    for x, ys, idx, t in spy.seen:
        assert t is None and torch.equal(x, X[idx])
        assert all(torch.equal(y, torch.as_tensor(data.targets[k])[idx]) for k, y in ys.items())


def test_training_with_augmentation_gives_a_different_finite_model():
    spec = spec_of()
    data = toy_data(spec)
    weights = {}
    for mode in ("none", "group", "group"):
        torch.manual_seed(0)
        m = FNO(augment=mode, width=8, n_modes=4).fit(data, spec, TINY, Context(seed=1))
        assert all(np.isfinite(m.train_log.loss))
        assert np.isfinite(m.predict(data.inputs[:2], 8).mean).all()
        weights.setdefault(mode, []).append(torch.cat([p.detach().flatten().abs() for p in m.model.parameters()]))
    assert not torch.equal(weights["none"][0], weights["group"][0])
    assert torch.equal(weights["group"][0], weights["group"][1])  # same seed, same augmented run


def test_neuroscale_physics_sees_the_moved_inputs(monkeypatch):
    """NeuroScale reads physical inputs by idx for its physics term: they move with the batch."""
    import methods.neuroscale.method as ns

    seen = []

    class Recorder:
        active, scales = True, {}

        @classmethod
        def from_data(cls, *a, **kw):
            return cls()

        def __call__(self, u, raw):
            seen.append(raw.clone())
            return {}

    monkeypatch.setattr(ns, "PhysicsLoss", Recorder)
    inputs = []
    build = ns.NeuroScale.build_model

    def build_model(self, spec):
        net = build(self, spec)
        net.register_forward_pre_hook(lambda mod, a: inputs.append(a[0].detach().clone()) if mod.training else None)
        return net

    monkeypatch.setattr(ns.NeuroScale, "build_model", build_model)
    spec = flow_spec()
    m = ns.NeuroScale(augment="group+shift", ensemble=1, width=8, heads=2, layers=1, scales=2, stem=2, phys_batch=2)
    m.fit(toy_data(spec), spec, TINY, Context(seed=0))
    assert len(seen) == len(inputs) > 0
    for raw, x in zip(seen, inputs):
        torch.testing.assert_close(raw, x[: len(raw)] * m._x_std + m._x_mean, rtol=1e-5, atol=1e-5)


def test_every_mode_is_listed():
    assert AUGMENTS == ("none", "group", "shift", "group+shift")


def test_a_checkpoint_saved_before_augment_and_amp_existed_still_loads(tmp_path):
    import json

    spec, data = spec_of(), toy_data(spec_of())
    torch.manual_seed(0)
    m = FNO(width=4, n_modes=2).fit(data, spec, TINY, Context(seed=1))
    m.save(tmp_path)
    meta = json.loads((tmp_path / "model.json").read_text())
    for name in ("augment", "amp"):
        del meta["params"][name]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    back = FNO(width=4, n_modes=2).restore(tmp_path, spec, Context(seed=1))
    np.testing.assert_array_equal(back.predict(data.inputs[:2], 8).mean, m.predict(data.inputs[:2], 8).mean)
    with pytest.raises(ValueError, match="hyperparameters"):
        FNO(width=4, n_modes=2, augment="group").restore(tmp_path, spec, Context(seed=1))
