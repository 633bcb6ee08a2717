"""Fixtures for the cloudsim fidelity tests; see cloudsim_helpers.py."""

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
    # No OS_CLIENT_CONFIG_FILE in os.environ: openstacksdk puts it before any config file it is given,
    # so the later suites of the same session would talk to this simulator instead of their own.
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(state_dir, ignore_errors=True)
