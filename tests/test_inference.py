"""One model over whole sequences (`inference.predict_windows`): one pose per frame, edge
padding, and flip averaging with the run's own 2D layout."""
import numpy as np
import pytest
import torch

from raypose.data.windows import make_windows
from raypose.datasets.layout import Layout
from raypose.datasets.skeleton import COCO_LEFT, COCO_RIGHT, LEFT, RIGHT, flip_permutation, mirror
from raypose.model.inference import predict_windows
from raypose.model.temporal import TemporalModel


def small_model(j_in=15, seed=0):
    """Eval-mode model with non-trivial BN stats."""
    torch.manual_seed(seed)
    model = TemporalModel(j_in, 15, widths=(3, 3, 3), channels=32)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def windows_of(seq):
    return make_windows([(("s", "a", "C1"), seq, None)], 27)


@pytest.mark.parametrize("t", [1, 5, 27, 60])
def test_one_output_per_frame_from_edge_padding(t):
    model = small_model()
    seq = np.random.default_rng(0).normal(size=(t, 15, 2)).astype(np.float32)
    out = predict_windows(model, windows_of(seq), Layout.of(15, (LEFT, RIGHT)), flip=False)
    padded = np.pad(seq, ((13, 13), (0, 0), (0, 0)), mode="edge")
    with torch.no_grad():
        expected = model(torch.from_numpy(padded)[None])[0].numpy()
    expected[:, 0] = 0     # root-relative: the root is the origin
    assert out.shape == (t, 15, 3)
    np.testing.assert_allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize("j_in,left,right", [(15, LEFT, RIGHT), (17, COCO_LEFT, COCO_RIGHT)])
def test_flip_tta_is_average_of_plain_and_unflipped(j_in, left, right):
    model = small_model(j_in)
    layout = Layout.of(j_in, (left, right))
    seq = np.random.default_rng(2).normal(size=(30, j_in, 2)).astype(np.float32)
    plain = predict_windows(model, windows_of(seq), layout, flip=False)
    flipped = predict_windows(model, windows_of(mirror(seq, flip_permutation(j_in, left, right))), layout, flip=False)
    expected = (plain + mirror(flipped, flip_permutation())) / 2
    np.testing.assert_allclose(predict_windows(model, windows_of(seq), layout, flip=True), expected, atol=1e-5)
    assert not np.allclose(plain, expected, atol=1e-4)  # the flip actually did something
