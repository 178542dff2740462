"""Peak memory of a piece of work.

CPU: resident set size sampled every few milliseconds by a background thread; the
reported peak is the rise above the RSS at the start (what the work added). CUDA:
``torch.cuda.max_memory_allocated`` after resetting the peak counter.
"""

from __future__ import annotations

import os
import threading
from types import TracebackType

from nskernel import Device

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return 0


class PeakMemory:
    """``with PeakMemory(device) as pm: ...`` then ``pm.peak_mb``."""

    def __init__(self, device: str = "cpu", interval_s: float = 0.005) -> None:
        self.device, self.interval_s = Device(device), interval_s
        self.peak_mb = float("nan")
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._peak = max(self._peak, rss_bytes())

    def __enter__(self) -> PeakMemory:
        if self.device.is_cuda:
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._base = self._peak = rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, t: type | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self.device.is_cuda:
            import torch

            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
        else:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, rss_bytes())
            self.peak_mb = (self._peak - self._base) / 2**20
