"""Hyperparameter search spaces of the registered methods, for ``bench tune``
(`bench.tune`, docs/tuning.md).

Plain data, keyed by registry name: each entry maps a hyperparameter the method declares
to one of

* ``("log-float", lo, hi)``: a float, sampled uniformly in log space;
* ``("float", lo, hi)``: a float, sampled uniformly;
* ``("int", lo, hi)``: an integer in ``[lo, hi]``;
* ``("log-int", lo, hi)``: an integer, sampled uniformly in log space;
* ``("choice", (v1, v2, ...))``: one of the values (numbers, strings or booleans).

The harness turns each entry into a distribution of its search library, so methods never
import one. A parameter not listed keeps its default (or the value given in the
``--method`` variant). ``tests/test_tune.py`` checks that every key is a registered
method, every parameter one it declares, and every bound and choice a value it accepts on
every built-in task. A method without an entry cannot be tuned (``bench tune`` says which
can); methods that learn nothing from data (classical solvers, per-instance PINNs) have
no validation score to tune on.

The spaces cover the optimiser (``lr``, ``weight_decay``), the method's own loss weights
and its capacity; fairness between methods comes from the protocol (the same number of
trials and the same budget per trial for every tuned method, docs/tuning.md), not from
the spaces' sizes.
"""

from __future__ import annotations

from typing import Any

#: the optimiser's block, shared by every neural method (``NeuralMethod``: AdamW)
_WEIGHT_DECAY = ("log-float", 1e-6, 1e-3)

#: the Fourier-operator family's block (``FourierOperator``); ``n_modes`` above half a
#: grid's size is clipped to it by the network
_FNO: dict[str, tuple[Any, ...]] = {
    "lr": ("log-float", 3e-4, 1e-2),
    "weight_decay": _WEIGHT_DECAY,
    "n_modes": ("choice", (8, 12, 16, 24)),
    "width": ("choice", (16, 32, 48, 64)),
    "n_layers": ("int", 2, 5),
}

SEARCH_SPACES: dict[str, dict[str, tuple[Any, ...]]] = {
    "fno": _FNO,
    "pino": {**_FNO, "physics_weight": ("log-float", 1e-3, 1.0)},
    "unet": {
        "lr": ("log-float", 1e-4, 1e-2),
        "weight_decay": _WEIGHT_DECAY,
        "width": ("choice", (8, 16, 24, 32)),
        "levels": ("int", 2, 4),  # 2**4 divides every built-in grid
        "blocks": ("int", 1, 2),
    },
    "transolver": {
        "lr": ("log-float", 1e-4, 3e-3),
        "weight_decay": _WEIGHT_DECAY,
        "width": ("choice", (32, 64, 96)),  # each divisible by the default 4 heads
        "layers": ("int", 2, 5),
        "slices": ("choice", (16, 32, 64)),
    },
    "deeponet": {
        "lr": ("log-float", 3e-4, 1e-2),
        "weight_decay": _WEIGHT_DECAY,
        "width": ("choice", (64, 86, 128)),
        "p": ("choice", (64, 128, 256)),
        "trunk_depth": ("int", 2, 4),
    },
    "neuroscale": {
        "lr": ("log-float", 1e-3, 3e-2),
        "weight_decay": _WEIGHT_DECAY,
        "gamma": ("log-float", 1e-3, 1.0),  # the physics loss's weight
        "physics": ("choice", ("laws", "residual")),  # its form
        "phys_warmup": ("float", 0.0, 0.5),  # share of the steps before it ramps in
        "beta": ("log-float", 1e-3, 1.0),  # the Gaussian NLL's weight (> 0: stays probabilistic)
        "dropout": ("float", 0.0, 0.2),
        "width": ("choice", (16, 32, 48)),  # each divisible by the default 4 heads
        "layers": ("int", 1, 3),
        "window": ("choice", (3, 5)),
        "spectral_modes": ("choice", (0, 8, 12)),  # Fourier mixing on every level (0: none)
    },
    # graph methods (`methods.graph`, the kuramoto task)
    "gnn": {
        "lr": ("log-float", 3e-4, 1e-2),
        "weight_decay": _WEIGHT_DECAY,
        "width": ("choice", (16, 32, 64)),
        "n_layers": ("int", 2, 5),  # rounds of message passing
    },
    "roma": {
        "lr": ("log-float", 3e-4, 1e-2),
        "weight_decay": _WEIGHT_DECAY,
        "width": ("choice", (16, 32, 64)),  # each divisible by the default 4 heads
        "n_layers": ("int", 1, 3),
    },
    "deeponet_graph": {
        "lr": ("log-float", 3e-4, 1e-2),
        "weight_decay": _WEIGHT_DECAY,
        "width": ("choice", (32, 64, 128)),
        "basis": ("choice", (16, 32, 64)),
        "embed": ("choice", (4, 8, 16)),
    },
}
