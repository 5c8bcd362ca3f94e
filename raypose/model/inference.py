"""Running one model over every target of a set of windows: the dilated form, whole sequences."""
import numpy as np
import torch

from raypose.datasets.skeleton import mirror
from raypose.model.device import autocast


@torch.no_grad()
def predict_windows(model, windows, layout, flip=True, device="cpu", precision="fp32", views=False):
    """(N, J, 3) root-relative float32, one pose per target; with flip, the mirrored input's
    prediction is mirrored back and averaged in (`views`: both kept, (2, N, J, 3), the input's
    first; without flip (1, N, J, 3)). `precision` bf16 autocasts on CUDA, as training."""
    out = [predict_sequence(model, windows, s, layout, flip, device, precision, views)
           for s in range(len(windows.keys))]
    return np.concatenate(out, axis=1 if views else 0)


@torch.no_grad()
def predict_sequence(model, windows, s, layout, flip=True, device="cpu", precision="fp32", views=False):
    """`predict_windows` of sequence `s` of `windows` alone: (T, J, 3), or (V, T, J, 3) with `views`."""
    model.eval()
    x = torch.from_numpy(windows.sequence(s)[0])[None].to(device)
    if flip:
        x = torch.cat([x, mirror(x, layout.flip_2d())])
    with autocast(device, precision):
        y = model(x)
    y = y.float().cpu()
    both = torch.stack([y[0], mirror(y[1], layout.skeleton.flip_permutation())]) if flip else y[:1]
    pred = (both if views else both.mean(0)).numpy()
    pred[..., 0, :] = 0
    return pred
