import os
import shutil

import pytest

# Token authentication, as Ray 2.60 starts clusters by default, for every Ray of the session: a
# process's auth mode is fixed by its first Ray, and the clusters the tests start later must agree.
os.environ.setdefault("RAY_AUTH_MODE", "token")

SHARED_HUMANEVA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "humaneva")


def pytest_collection_modifyitems(items):
    """Cluster tests last: they need this process's Ray connection for their own clusters."""
    items.sort(key=lambda item: item.get_closest_marker("cluster") is not None)


@pytest.fixture(scope="session")
def ray_local():
    """This session's local Ray (2 CPUs), started on first use and kept for later tests (the
    cluster tests, sorted last, replace it with their own)."""
    import ray
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    return ray


@pytest.fixture
def no_ray():
    """No Ray connection in this process: a cluster test connects to its own."""
    import ray
    ray.shutdown()
    yield
    ray.shutdown()


def pytest_sessionfinish(session, exitstatus):
    import sys
    if "ray" in sys.modules:
        sys.modules["ray"].shutdown()


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """The default synthetic set, written once per session through the public writer."""
    from raypose.data.synthetic import write_synthetic
    out = tmp_path_factory.mktemp("synth")
    write_synthetic(out, frames=3000, seed=0)
    return out


@pytest.fixture
def synth_copy(synth_dir, tmp_path):
    """A private copy a test may corrupt."""
    dst = tmp_path / "npz"
    shutil.copytree(synth_dir, dst)
    return dst


def real_humaneva():
    path = os.path.abspath(SHARED_HUMANEVA)
    if not os.path.isfile(os.path.join(path, "data_3d_humaneva15.npz")):
        pytest.skip(f"real HumanEva not found at {path} (licensed data, only on dev/CI machines)")
    return path
