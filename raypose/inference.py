"""Running one model over every target of a set of windows: the dilated form, whole sequences."""
import torch

from .skeleton import mirror
from .train.device import autocast


@torch.no_grad()
def predict_windows(model, windows, layout, flip=True, device="cpu", precision="fp32"):
    """(N, J, 3) root-relative float32, one pose per target; with flip, the mirrored input's
    prediction is mirrored back and averaged in. `precision` bf16 autocasts on CUDA, as training."""
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
        out.append((y[0] + mirror(y[1], p3)) / 2 if flip else y[0])
    pred = torch.cat(out).numpy()
    pred[:, 0] = 0
    return pred

