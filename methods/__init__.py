"""Methods. ``METHODS`` maps a registry name to its class; ``VARIANTS`` lists the named
parameter variants that ``--methods all`` runs besides the defaults.

Families are subpackages (``fno_family``, ``neuroscale``, ``pinn``, ``graph``: the
learned methods of graph tasks); the shared neural
machinery is ``neural`` (`NeuralMethod`), ``training`` (the one training loop) and
``ensemble`` (the one ensemble mechanism)."""

from methods.closure import Closure
from methods.coarse import CoarseDNS, CoarseFV, CoarseOA, CoarseSpectral, DNSFloor
from methods.conformal import Conformal
from methods.deeponet import DeepONet
from methods.fno_family import FNO, GFNO, PINO, PIPNO, PPINO, EquiNO, FNOEnsemble, FNOMCDropout
from methods.graph import GNN, GraphDeepONet, Roma
from methods.mean import MeanField
from methods.neuroscale import NeuroScale
from methods.persistence import Persistence
from methods.pinn import BPINN, PINN
from methods.transolver import Transolver
from methods.unet import UNet
from nskernel import build_registry

METHODS = build_registry(
    [
        MeanField, Persistence, CoarseFV, CoarseSpectral, FNO, NeuroScale, PINO, GFNO, EquiNO, PIPNO, PPINO,
        FNOEnsemble, FNOMCDropout, PINN, BPINN, Conformal, UNet, Transolver, DeepONet,
        Closure, CoarseDNS, DNSFloor, CoarseOA, GNN, Roma, GraphDeepONet,
    ]
)

# Variants run by `--methods all`, written as on the command line: the NeuroScale
# ablations (docs/neuroscale.md) that the report's ablation table is built from.
VARIANTS: tuple[str, ...] = (
    "neuroscale:gamma=0",
    "neuroscale:physics=residual",  # the proposal's residual form of the physics loss
    "neuroscale:spectral_modes=12",  # global Fourier mixing on every level
    "neuroscale:beta=0",
    "neuroscale:scales=1",
    "neuroscale:ensemble=1",
    "neuroscale:ensemble=4",
    "neuroscale:ensemble=8",
    "neuroscale:dropout=0",
    # calibration on held-out validation data (docs/metrics.md, "Calibration"): `conformal`
    # wraps fno by default
    "conformal:base=neuroscale",
    "conformal:base=fno_ensemble,mode=isotonic",
)

__all__ = ["METHODS", "VARIANTS"]
