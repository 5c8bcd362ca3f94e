"""Running one model over every target of a set of windows: the dilated form, whole sequences."""
import torch

from .skeleton import LEFT, RIGHT, flip_permutation


@torch.no_grad()
def predict_windows(model, windows, flip=True, symmetry_2d=(LEFT, RIGHT), device="cpu"):
    """Dilated form over each padded sequence; with flip, the mirrored input is averaged in."""
    model.eval()
    p2 = torch.from_numpy(flip_permutation(windows.inputs.shape[1], *symmetry_2d))
    p3 = torch.from_numpy(flip_permutation(15))
    sign2, sign3 = torch.tensor([-1.0, 1.0]), torch.tensor([-1.0, 1.0, 1.0])
    out = []
    for s in range(len(windows.keys)):
        x = torch.from_numpy(windows.sequence(s)[0])[None].to(device)
        if flip:
            x = torch.cat([x, x[:, :, p2.to(device)] * sign2.to(device)])
        y = model(x).float().cpu()
        if flip:
            y = (y[0] + y[1][:, p3] * sign3) / 2
        else:
            y = y[0]
        out.append(y)
    pred = torch.cat(out).numpy()
    pred[:, 0] = 0
    return pred
