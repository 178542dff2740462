"""The one restriction operator R_k."""

import numpy as np
import pytest
import torch

from nskernel.grid import prolong, restrict, restrict_dy


def test_restrict_preserves_integral_and_composes():
    u = np.random.default_rng(0).normal(size=(3, 2, 32, 32))
    for k in (2, 4, 8, 16):
        np.testing.assert_allclose(restrict(u, k).mean(axis=(-2, -1)), u.mean(axis=(-2, -1)), atol=1e-14)
    np.testing.assert_allclose(restrict(u, 16), restrict(restrict(u, 4), 4), atol=1e-14)
    np.testing.assert_allclose(restrict(prolong(restrict(u, 8), 8), 8), restrict(u, 8), atol=1e-14)


def test_restrict_known_block_average():
    u = np.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(restrict(u, 2), [[2.5, 4.5], [10.5, 12.5]])


def test_restrict_torch_matches_numpy():
    u = np.random.default_rng(1).normal(size=(2, 1, 16, 16))
    np.testing.assert_allclose(restrict(torch.tensor(u), 4).numpy(), restrict(u, 4), atol=1e-14)


def test_weighted_restriction_is_conservative_on_nonuniform_grid():
    rng = np.random.default_rng(2)
    dy = rng.uniform(0.5, 2.0, size=16)
    u = rng.normal(size=(16, 8))
    uc = restrict(u, 4, dy=dy)
    dyc = restrict_dy(dy, 4)
    # integral over the domain (cell heights x widths, widths uniform) is preserved
    np.testing.assert_allclose((uc * dyc[:, None]).sum() * 4, (u * dy[:, None]).sum(), rtol=1e-12)
    np.testing.assert_allclose(restrict(torch.tensor(u), 4, dy=torch.tensor(dy)).numpy(), uc, atol=1e-14)


def test_bad_factor_is_an_error():
    with pytest.raises(ValueError, match="does not divide"):
        restrict(np.zeros((10, 10)), 4)
