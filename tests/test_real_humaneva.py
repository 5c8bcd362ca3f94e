"""Real HumanEva-I through the same code as the synthetic set; skipped where the licensed files are absent."""
import numpy as np
import pyarrow.dataset as pads
from conftest import real_humaneva

from raypose.cli import main
from raypose.data import npz
from raypose.datasets.cameras import CAMERA_NAMES, world_to_camera


def fit_intrinsics(cam_points, pixels):
    """Least-squares focal length and principal point: u = f X/Z + cx, v = f Y/Z + cy."""
    xz = (cam_points[..., 0] / cam_points[..., 2]).ravel()
    yz = (cam_points[..., 1] / cam_points[..., 2]).ravel()
    n = len(xz)
    A = np.zeros((2 * n, 3))
    A[:n, 0], A[:n, 1] = xz, 1
    A[n:, 0], A[n:, 2] = yz, 1
    b = np.concatenate([pixels[..., 0].ravel(), pixels[..., 1].ravel()])
    (f, cx, cy), *_ = np.linalg.lstsq(A, b, rcond=None)
    proj = np.stack([f * xz + cx, f * yz + cy], axis=-1)
    return f, (cx, cy), np.linalg.norm(proj - pixels.reshape(-1, 2), axis=-1)


def test_camera_transform_explains_the_2d():
    data = npz.load_humaneva(real_humaneva())
    for subject in data.positions_3d:
        for cam in range(3):
            p3, p2 = [], []
            for action, world in data.positions_3d[subject].items():
                p3.append(world_to_camera(world, subject, cam))
                p2.append(data.positions_2d[subject][action][cam])
            p3, p2 = np.concatenate(p3), np.concatenate(p2)
            assert np.all(p3[..., 2] > 1.0), "the person must be in front of the camera"
            f, c, residual = fit_intrinsics(p3, p2)
            assert 200 < f < 3000, (subject, cam, f)
            assert np.median(residual) < 3.0, (subject, CAMERA_NAMES[cam], np.median(residual))


def test_prepare_real_files(tmp_path, capsys):
    out = tmp_path / "real"
    assert main(["prepare", "--npz-dir", real_humaneva(), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "9577 frames of 3D" in stdout and "28731 rows" in stdout
    t = pads.dataset(out, format="parquet", partitioning="hive").to_table()  # out itself is the dataset
    assert t.num_rows == 9577 * 3
    assert set(t.column("camera").to_pylist()) == set(CAMERA_NAMES)
    split = dict(zip(t.column("subject").to_pylist(), t.column("split").to_pylist()))
    assert split["Train/S1"] == "train" and split["Validate/S3"] == "test"
