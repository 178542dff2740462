import pytest


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """One dataset cache for the whole test session (smoke data is generated once)."""
    return tmp_path_factory.mktemp("data")
