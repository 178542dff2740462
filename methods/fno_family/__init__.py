"""The FNO family: `fno` and the operators built on its network or its hyperparameter
block (`base.FourierOperator`): `pino`, `gfno` (+ `gfno_layers`), `equino`, `pipno`,
`ppino`, and the UQ references `fno_ensemble`, `fno_mcdropout` (`uq`)."""

from methods.fno_family.equino import EquiNO
from methods.fno_family.fno import FNO
from methods.fno_family.gfno import GFNO
from methods.fno_family.pino import PINO
from methods.fno_family.pipno import PIPNO
from methods.fno_family.ppino import PPINO
from methods.fno_family.uq import FNOEnsemble, FNOMCDropout

__all__ = ["FNO", "GFNO", "PINO", "PIPNO", "PPINO", "EquiNO", "FNOEnsemble", "FNOMCDropout"]
