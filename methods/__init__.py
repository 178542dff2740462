"""Methods. ``METHODS`` maps a registry name to its class; ``VARIANTS`` lists the named
parameter variants that ``--methods all`` runs besides the defaults."""

from bench.registry import build_registry
from methods.coarse import CoarseFV, CoarseSpectral
from methods.fno import FNO
from methods.mean import MeanField

METHODS = build_registry([MeanField, CoarseFV, CoarseSpectral, FNO])

# Variants run by `--methods all`, written as on the command line.
VARIANTS: tuple[str, ...] = ()

__all__ = ["METHODS", "VARIANTS"]
