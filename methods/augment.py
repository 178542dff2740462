"""Data augmentation by the task's exact symmetries, for every neural method
(`NeuralMethod.augment`; docs/training.md).

Each training batch is moved by a random symmetry of the problem, drawn per sample: a
pair (fine input ``x``, targets ``R_k y``) becomes ``(T x, T R_k y)``, and
``T R_k y = R_k T y`` because the moves below map the blocks of every training factor
onto blocks. Modes (``augment=``):

* ``"group"``: an element of the task's group (``spec.symmetry``: "p4m", "p4", "p2",
  "flip_x"), with the channel parities ``spec.in_parity`` / ``spec.out_parity`` (an odd
  channel changes sign under a reflection). On a non-square grid only the elements that
  map the grid to itself are drawn (no 90-degree rotation).
* ``"shift"``: a circular shift along the task's translation axes by a multiple of the
  least common multiple of the training factors (so block averages stay aligned). An
  axis is a translation axis when it is periodic (``spec.boundary``) *and* homogeneous
  (``spec.climatology_axes``): periodicity alone is not enough, e.g. turbulence's
  Kolmogorov forcing ``cos(k_f y)`` is periodic in y but fixed in space, so only x shifts
  are symmetries there.
* ``"group+shift"``: both (the shift after the group element).

No "time shift": a pair is (state at t, R_k state at t + horizon), and the training view
holds no fine state at other times, so a shifted pair cannot be formed without new
solves (and the pairs along a stored trajectory are already samples). A mode whose
symmetry the task does not declare makes the method n/a (`augment_reason`); validation and test
data are never augmented. Draws come from a `torch.Generator` seeded from the cell's seed
(`augment_seed`), saved in checkpoints by the training loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from methods.groups import GROUP_NAMES, Group, gather_index, make_group
from methods.layers import periodic_axes
from nskernel import TaskSpec
from nskernel.errors import NotApplicable

#: valid values of ``NeuralMethod.augment``
AUGMENTS: tuple[str, ...] = ("none", "group", "shift", "group+shift")


def check_augment(mode: str) -> None:
    """Raise ``ValueError`` for a mode that is not one of `AUGMENTS`."""
    if mode not in AUGMENTS:
        raise ValueError(f"unknown augment {mode!r}; valid: {', '.join(AUGMENTS)}")


def translation_axes(spec: TaskSpec) -> tuple[int, ...]:
    """Axes (-2 rows, -1 columns) along which the task is invariant under circular
    shifts: periodic and homogeneous (see the module docstring)."""
    rows, cols = periodic_axes(spec.boundary)
    return tuple(a for a, p in ((-2, rows), (-1, cols)) if p and a in spec.climatology_axes)


def augment_reason(mode: str, spec: TaskSpec) -> str | None:
    """Why ``augment=mode`` cannot run on ``spec`` (None: it can). Pure."""
    parts = mode.split("+") if mode != "none" else []
    if "group" in parts and spec.symmetry not in GROUP_NAMES:
        return (f"augment={mode}: task {spec.name} declares no symmetry group (spec.symmetry = "
                f"{spec.symmetry!r}; implemented: {', '.join(GROUP_NAMES)})")
    if "shift" in parts and not translation_axes(spec):
        return (f"augment={mode}: task {spec.name} has no axis that is both periodic (boundary "
                f"{spec.boundary!r}) and homogeneous (climatology_axes {spec.climatology_axes})")
    return None


def augment_seed(seed: int) -> int:
    """The seed of the augmentation stream of a network trained under ``seed``."""
    return int(np.random.SeedSequence([seed, 0x617567]).generate_state(1)[0] & 0x7FFFFFFF)


def _parity(parity: tuple[int, ...], channels: int) -> torch.Tensor:
    return torch.tensor([float(np.sign(p)) for p in parity] if parity else [1.0] * channels)


@dataclass(frozen=True)
class BatchTransform:
    """The moves drawn for one batch: element ``elems[b]`` of ``group`` (None: no group)
    then a shift by ``shifts[b] = (rows, cols)`` fine cells, for sample ``b``."""

    group: Group | None
    elems: torch.Tensor  # (B,) int
    shifts: torch.Tensor  # (B, 2) int, in fine cells
    fine_shape: tuple[int, int]

    def apply(self, t: torch.Tensor, parity: tuple[int, ...] = ()) -> torch.Tensor:
        """``t (b, C, h, w)`` (rows aligned with the batch, ``b <= B``; any grid that
        divides the fine one) moved sample by sample; ``parity`` per channel (+1: a
        scalar, -1: changes sign under reflections; () = all scalars)."""
        b, c, h, w = t.shape
        (fh, fw), n = self.fine_shape, self.elems[:b]
        ry, rx = fh // h, fw // w
        if ry * h != fh or rx * w != fw or bool((self.shifts[:b, 0] % ry).any() or (self.shifts[:b, 1] % rx).any()):
            raise ValueError(f"a {h}x{w} grid does not align with the shifts drawn on the {fh}x{fw} grid")
        dev = t.device
        iy = (torch.arange(h, device=dev)[None, :] - (self.shifts[:b, :1].to(dev) // ry)) % h  # (b, h)
        ix = (torch.arange(w, device=dev)[None, :] - (self.shifts[:b, 1:].to(dev) // rx)) % w  # (b, w)
        rolled = (iy[:, :, None] * w + ix[:, None, :]).flatten(1)  # (b, h*w): source of the shift
        sign = torch.ones(b, c, dtype=t.dtype, device=dev)
        if self.group is not None:
            maps = _element_maps(self.group, (h, w)).to(dev)
            rolled = maps[n.to(dev)].gather(1, rolled)
            det = torch.as_tensor(self.group.det(), dtype=t.dtype, device=dev)[n.to(dev)]  # (b,)
            odd = _parity(parity, c).to(dev, t.dtype) < 0
            sign = torch.where(odd[None, :], det[:, None], sign)
        out = t.flatten(2).gather(2, rolled[:, None, :].expand(b, c, h * w)).view(b, c, h, w)
        return out * sign[:, :, None, None]


@lru_cache(maxsize=64)
def _element_maps(group: Group, shape: tuple[int, int]) -> torch.Tensor:
    """`gather_index` of every element ``(|G|, h*w)``; the identity stands in for an
    element that cannot map this grid (never drawn: `Augmenter` draws only elements that
    map the fine grid, and those map every grid that divides it)."""
    n = shape[0] * shape[1]
    return torch.stack([gather_index(group, g, shape) if group.maps_grid(g, shape) else torch.arange(n)
                        for g in range(group.order)])


class Augmenter:
    """Draws a `BatchTransform` per training batch for ``mode`` on ``spec`` with training
    factors ``k_train``, from its own generator seeded by ``augment_seed(seed)``."""

    def __init__(self, mode: str, spec: TaskSpec, k_train: tuple[int, ...], seed: int) -> None:
        check_augment(mode)
        why = augment_reason(mode, spec)
        if why:
            raise NotApplicable(why)
        self.spec, self.mode = spec, mode
        self.group = make_group(spec.symmetry) if "group" in mode.split("+") else None
        self.elements = [] if self.group is None else [
            g for g in range(self.group.order) if self.group.maps_grid(g, spec.fine_shape)]
        self.step = math.lcm(*k_train)
        self.axes = translation_axes(spec) if "shift" in mode.split("+") else ()
        self.generator = torch.Generator().manual_seed(augment_seed(seed))

    @classmethod
    def maybe(cls, mode: str, spec: TaskSpec, k_train: tuple[int, ...], seed: int) -> Augmenter | None:
        """An augmenter, or None for ``mode="none"`` (then nothing is drawn at all)."""
        return None if mode == "none" else cls(mode, spec, k_train, seed)

    def draw(self, n: int) -> BatchTransform:
        elems = torch.zeros(n, dtype=torch.long)
        if self.elements:
            pick = torch.randint(len(self.elements), (n,), generator=self.generator)
            elems = torch.as_tensor(self.elements)[pick]
        shifts = torch.zeros(n, 2, dtype=torch.long)
        for a in self.axes:
            positions = self.spec.fine_shape[a] // self.step
            shifts[:, a] = torch.randint(positions, (n,), generator=self.generator) * self.step
        return BatchTransform(self.group, elems, shifts, tuple(self.spec.fine_shape))

    def batch(self, x: torch.Tensor, ys: dict[int, torch.Tensor], x_mean: torch.Tensor,
              x_std: torch.Tensor) -> tuple[BatchTransform, torch.Tensor, dict[int, torch.Tensor]]:
        """A fresh draw and the moved batch: the fine inputs ``x``, normalised by per-channel
        ``(x_mean, x_std)``, are moved in physical units (a sign change does not commute
        with a mean shift) and normalised again; targets ``ys`` are physical."""
        t = self.draw(len(x))
        pin, pout = tuple(self.spec.in_parity), tuple(self.spec.out_parity)
        moved = (t.apply(x * x_std + x_mean, pin) - x_mean) / x_std
        return t, moved, {k: t.apply(y, pout) for k, y in ys.items()}


__all__ = ["AUGMENTS", "Augmenter", "BatchTransform", "augment_reason", "augment_seed", "check_augment",
           "translation_axes"]
