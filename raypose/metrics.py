"""TEMPORARY minimal metrics (being replaced by the full module)."""
import numpy as np
import torch


def mpjpe(pred, gt):
    return float(np.mean(np.linalg.norm(np.asarray(pred, np.float64) - gt, axis=-1)))


def procrustes_align(pred, gt):
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    mu_x, mu_y = gt.mean(-2, keepdims=True), pred.mean(-2, keepdims=True)
    x0, y0 = gt - mu_x, pred - mu_y
    nx = np.sqrt((x0 ** 2).sum((-2, -1), keepdims=True)) + 1e-12
    ny = np.sqrt((y0 ** 2).sum((-2, -1), keepdims=True)) + 1e-12
    x0, y0 = x0 / nx, y0 / ny
    H = np.swapaxes(x0, -1, -2) @ y0
    U, s, Vt = np.linalg.svd(H)
    V = np.swapaxes(Vt, -1, -2)
    R = V @ np.swapaxes(U, -1, -2)
    sign = np.sign(np.linalg.det(R))[..., None]
    V[..., -1] *= sign
    s[..., -1] *= sign[..., 0]
    R = V @ np.swapaxes(U, -1, -2)
    a = s.sum(-1, keepdims=True)[..., None] * nx / ny
    t = mu_x - a * (mu_y @ R)
    return a * (pred @ R) + t


def p_mpjpe(pred, gt):
    return mpjpe(procrustes_align(pred, gt), gt)


def mpjpe_loss(pred, target):
    return torch.mean(torch.norm(pred - target, dim=-1))
