"""Pose errors under the VideoPose3D protocols, in numpy.

Poses are arrays (..., J, 3) in metres and every function returns metres; millimetres appear only
in the per-action report (`raypose.evaluation.report`). Everything is computed in float64 so that the numbers
do not depend on the dtype the model produced. The torch training losses are in
`raypose.train.losses`.
"""
import numpy as np

_EPS = 1e-12
# The protocols, in the order the report lists them.
METRICS = ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve")


def _pair(pred, gt):
    """float64 copies; a shape mismatch is a bug upstream, and broadcasting would hide it."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim < 2 or pred.shape[-1] != 3:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must both be (..., J, 3)")
    return pred, gt


def per_joint_error(pred, gt):
    """Euclidean distance per joint, shape (..., J): the building block of every protocol."""
    pred, gt = _pair(pred, gt)
    return np.linalg.norm(pred - gt, axis=-1)


def mpjpe(pred, gt):
    """Protocol 1: no alignment at all, so global position and scale errors count in full."""
    return float(per_joint_error(pred, gt).mean())


def procrustes_align(pred, gt):
    """Per pose, the similarity transform (rotation, scale, translation) of pred closest to gt.

    Umeyama/Kabsch as in VideoPose3D's p_mpjpe; the rotation is forced proper (det +1) so a
    mirrored pose is not "aligned" by a reflection. A pose with no spread (e.g. all zeros) maps
    to gt's centroid instead of NaN.
    """
    pred, gt = _pair(pred, gt)
    mu_x, mu_y = gt.mean(-2, keepdims=True), pred.mean(-2, keepdims=True)
    x0, y0 = gt - mu_x, pred - mu_y
    nx = np.sqrt((x0 ** 2).sum((-2, -1), keepdims=True))
    ny = np.sqrt((y0 ** 2).sum((-2, -1), keepdims=True))
    nx, ny = np.where(nx > _EPS, nx, 1.0), np.where(ny > _EPS, ny, 1.0)  # zero spread: H = 0
    x0, y0 = x0 / nx, y0 / ny
    u, s, vt = np.linalg.svd(np.swapaxes(x0, -1, -2) @ y0)
    v = np.swapaxes(vt, -1, -2)
    sign = np.where(np.linalg.det(v @ np.swapaxes(u, -1, -2)) < 0, -1.0, 1.0)
    v[..., -1] *= sign[..., None]
    s[..., -1] *= sign
    r = v @ np.swapaxes(u, -1, -2)
    a = s.sum(-1)[..., None, None] * nx / ny
    return a * (pred @ r) + (mu_x - a * (mu_y @ r))


def p_mpjpe(pred, gt):
    """Protocol 2: error left after the best similarity transform, i.e. of the pose's shape only."""
    return mpjpe(procrustes_align(pred, gt), gt)


def _scale_align(pred, gt):
    """VideoPose3D's n_mpjpe scale: least squares per pose, about the origin (no centring)."""
    pred, gt = _pair(pred, gt)
    num = (gt * pred).sum((-2, -1), keepdims=True)
    den = (pred * pred).sum((-2, -1), keepdims=True)
    return np.where(den > _EPS, num / np.where(den > _EPS, den, 1.0), 0.0) * pred


def n_mpjpe(pred, gt):
    """Scale-only alignment: separates a wrong body size from a wrong pose."""
    return mpjpe(_scale_align(pred, gt), gt)


def _velocity_errors(pred, gt):
    """Per velocity frame and joint, (..., T-1, J); frames are axis -3 (axis 0 for (T, J, 3))."""
    pred, gt = _pair(pred, gt)
    if pred.ndim < 3:
        raise ValueError(f"mpjve needs a frame axis: (..., T, J, 3), got {pred.shape}")
    return np.linalg.norm(np.diff(pred, axis=-3) - np.diff(gt, axis=-3), axis=-1)


def mpjve(pred, gt):
    """Mean per-joint velocity error (m/frame): measures jitter, which MPJPE averages away.

    A sequence of fewer than 2 frames has no velocity: the result is nan (no warning).
    """
    e = _velocity_errors(pred, gt)
    return float(e.mean()) if e.size else float("nan")
