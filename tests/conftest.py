import pytest
import torch


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """One dataset cache for the whole test session (smoke data is generated once)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def one_torch_thread():
    """Small torch graphs (the residuals, the differentiable coarse solvers: ~100 tiny ops
    per step) run 5-60x slower with 2 OpenMP threads than with 1 on a loaded 2-core
    machine; the caller's thread count is restored afterwards."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
