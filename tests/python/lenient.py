"""Fixtures for suites that round-trip free-form ``properties``.

Since the control plane landed, PutEvents refuses property keys that match no field of the
dataset's schema, and the default Interactions schema declares no metadata fields. The suites of
the PutEvents model (clients, constraints, durability) send keys such as ``numberOfRatings`` on
purpose, so their servers run with ``INTERLOG_ALLOW_UNKNOWN_PROPERTIES=true``, which keeps such
keys in the stored ``properties`` string. Schema checking itself is tested in
``test_control_plane.py``. Import the fixtures by name to override conftest's.
"""

import pytest

from conftest import ServerPool

KEEP_UNKNOWN = {"INTERLOG_ALLOW_UNKNOWN_PROPERTIES": "true"}


class KeepUnknownProperties(ServerPool):
    def __call__(self, data_dir=None, args=(), start=True, env=None):
        return super().__call__(data_dir, args, start, {**KEEP_UNKNOWN, **(env or {})})


@pytest.fixture
def server_factory(tmp_path):
    pool = KeepUnknownProperties(tmp_path)
    yield pool
    pool.close()


@pytest.fixture
def server(server_factory):
    return server_factory()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory):
    pool = KeepUnknownProperties(tmp_path_factory.mktemp("module-server"))
    yield pool()
    pool.close()
