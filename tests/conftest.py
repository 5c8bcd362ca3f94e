import os
import shutil

import pytest

SHARED_HUMANEVA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "humaneva")


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
