"""Methods. ``METHODS`` maps a registry name to its class; ``VARIANTS`` lists the named
parameter variants that ``--methods all`` runs besides the defaults."""

from bench.registry import build_registry
from methods.bpinn import BPINN
from methods.coarse import CoarseFV, CoarseSpectral
from methods.equino import EquiNO
from methods.fno import FNO
from methods.fno_uq import FNOEnsemble, FNOMCDropout
from methods.gfno import GFNO
from methods.mean import MeanField
from methods.neuroscale import NeuroScale
from methods.pinn import PINN
from methods.pino import PINO
from methods.pipno import PIPNO
from methods.ppino import PPINO

METHODS = build_registry(
    [
        MeanField, CoarseFV, CoarseSpectral, FNO, NeuroScale, PINO, GFNO, EquiNO, PIPNO, PPINO,
        FNOEnsemble, FNOMCDropout, PINN, BPINN,
    ]
)

# Variants run by `--methods all`, written as on the command line: the NeuroScale
# ablations (docs/neuroscale.md) that the report's ablation table is built from.
VARIANTS: tuple[str, ...] = (
    "neuroscale:gamma=0",
    "neuroscale:beta=0",
    "neuroscale:scales=1",
    "neuroscale:ensemble=1",
    "neuroscale:ensemble=4",
    "neuroscale:ensemble=8",
    "neuroscale:dropout=0",
)

__all__ = ["METHODS", "VARIANTS"]
