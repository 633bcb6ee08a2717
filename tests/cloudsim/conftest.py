"""Fixtures for the cloudsim fidelity tests; see cloudsim_helpers.py."""

import os
import shutil
import tempfile

import pytest

from cloudsim_helpers import Cloudsim, binary


def pytest_configure(config):
    # openstacksdk warns about its own internals on every proxy it makes.
    config.addinivalue_line("filterwarnings", "ignore:The 'service_type' parameter is unnecesary")


@pytest.fixture(scope="session")
def sim():
    binary_path = binary()
    state_dir = tempfile.mkdtemp(prefix="cloudsim-test-")
    s = Cloudsim(binary_path, state_dir)
    s.start()
    old = os.environ.get("OS_CLIENT_CONFIG_FILE")
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(s.state_dir / "clouds.yaml")
    try:
        yield s
    finally:
        s.stop()
        if old is None:
            os.environ.pop("OS_CLIENT_CONFIG_FILE", None)
        else:
            os.environ["OS_CLIENT_CONFIG_FILE"] = old
        shutil.rmtree(state_dir, ignore_errors=True)
