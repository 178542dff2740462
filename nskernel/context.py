"""Explicit run-time inputs of a cell: `Device`, `Context` (seed, device, dtype, threads,
deadline) and `Factors` (the coarse-graining factors trained on and scored).

Nothing here is global state: the harness builds a `Context` per cell from the command
line and passes it to `Method.fit`, the training loop and the timing harness. Torch is
imported only where a value needs it (``Context.torch_dtype``, ``Context.apply``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nskernel.errors import CellTimeout

if TYPE_CHECKING:
    import torch

_DEVICE = re.compile(r"^(cpu|cuda|mps)(:\d+)?$")


class Device(str):
    """A torch device name (``cpu``, ``cuda``, ``cuda:1``, ``mps``), checked once.

    A `str` subclass so that it serialises, hashes and compares as the plain name it is
    (records and configuration hashes store the string)."""

    def __new__(cls, name: str = "cpu") -> Device:
        if not _DEVICE.match(str(name)):
            raise ValueError(f"unknown device {name!r}; expected cpu, cuda, cuda:N or mps")
        return super().__new__(cls, name)

    @property
    def is_cuda(self) -> bool:
        return self.startswith("cuda")

    @property
    def type(self) -> str:
        """``cpu``, ``cuda`` or ``mps`` (without the index)."""
        return self.split(":", 1)[0]

    @property
    def index(self) -> int | None:
        return int(self.split(":", 1)[1]) if ":" in self else None


DTYPES: tuple[str, ...] = ("float32", "float64")


@dataclass(frozen=True)
class Context:
    """Seed, device, dtype and threads for one cell, plus its deadline and the folder
    where a method may keep checkpoints (``workdir``; None: keep none). Training writes
    a resumable checkpoint at most every ``checkpoint_every_s`` seconds (0: every epoch)."""

    seed: int = 0
    device: Device = field(default_factory=Device)
    dtype: str = "float32"
    threads: int = 2
    progress: bool = False
    deadline: float | None = field(default=None, compare=False)  # time.monotonic() value
    workdir: str | None = None
    checkpoint_every_s: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.device, Device):
            object.__setattr__(self, "device", Device(self.device))
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; valid: {', '.join(DTYPES)}")

    @property
    def torch_dtype(self) -> torch.dtype:
        import torch

        return {"float32": torch.float32, "float64": torch.float64}[self.dtype]

    def check_deadline(self, what: str = "cell") -> None:
        """Raise `CellTimeout` once the cell's wall-clock budget is spent."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise CellTimeout(f"{what} exceeded the cell time budget")

    def apply(self) -> None:
        """Make torch follow this context (threads, seed). Called by the harness per cell."""
        import torch

        torch.set_num_threads(self.threads)
        torch.manual_seed(self.seed)


@dataclass(frozen=True)
class Factors:
    """The coarse-graining factors a cell trains on and scores; ``unseen(k)`` is the one
    definition of an unseen factor."""

    train: tuple[int, ...]
    test: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.train or not self.test:
            raise ValueError("need at least one training and one test factor")
        if any(k < 1 for k in self.train + self.test):
            raise ValueError(f"factors must be positive, got train {self.train}, test {self.test}")

    def unseen(self, k: int) -> bool:
        return k not in self.train

    def as_dict(self) -> dict[str, Any]:
        return {"k_train": list(self.train), "k_test": list(self.test)}
