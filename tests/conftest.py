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


@pytest.fixture(scope="session")
def walk_jog_windows(synth_dir):
    """(train, test) windows of the synthetic set's Walk and Jog chunks, the videopose3d split."""
    from raypose.data import splits
    from raypose.data.npz import load_humaneva
    from raypose.data.table import data_sequences
    from raypose.data.windows import make_windows
    d = load_humaneva(synth_dir)
    keys = [(s, a) for s in d.positions_2d for a in d.positions_2d[s]]
    train, test = splits.split_chunks(splits.filter_actions(keys, "Walk,Jog"), "videopose3d")
    return make_windows(data_sequences(d, train)), make_windows(data_sequences(d, test))


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


@pytest.fixture(scope="session")
def local_run(tmp_path_factory):
    """A 2-member, 1-iteration run on the tiny synthetic config, trained once per session in this
    process (local mode, no Ray). Read-only: a test that changes a run copies it first."""
    from runs import tiny_config

    from raypose.train.driver import train
    out = tmp_path_factory.mktemp("local_run") / "run"
    train(tiny_config(out, **{"run.local": True, "train.iterations": 1, "train.members": 2}), echo=lambda s: None)
    return out
