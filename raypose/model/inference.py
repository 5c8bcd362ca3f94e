"""Running one model over every target of a set of windows: the dilated form, whole sequences."""
import torch

from raypose.datasets.skeleton import mirror
from raypose.model.device import autocast


@torch.no_grad()
def predict_windows(model, windows, layout, flip=True, device="cpu", precision="fp32", views=False):
    """(N, J, 3) root-relative float32, one pose per target; with flip, the mirrored input's
    prediction is mirrored back and averaged in (`views`: both kept, (2, N, J, 3), the input's
    first; without flip (1, N, J, 3)). `precision` bf16 autocasts on CUDA, as training."""
    model.eval()
    p2 = layout.flip_2d()
    p3 = layout.skeleton.flip_permutation()
    out = []
    for s in range(len(windows.keys)):
        x = torch.from_numpy(windows.sequence(s)[0])[None].to(device)
        if flip:
            x = torch.cat([x, mirror(x, p2)])
        with autocast(device, precision):
            y = model(x)
        y = y.float().cpu()
        both = torch.stack([y[0], mirror(y[1], p3)]) if flip else y[:1]
        out.append(both if views else both.mean(0))
    pred = torch.cat(out, dim=1 if views else 0).numpy()
    pred[..., 0, :] = 0
    return pred

