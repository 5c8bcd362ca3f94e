"""Joint positions -> a BVH animation: constant bone lengths, a rest pose, per-frame joint rotations.

Joint positions do not determine a skeleton's rotations alone, so the conventions are ours (and
docs/usage.md "Exporting poses" states them); pybvh builds, writes, reads and poses the file:

- Axes and units: BVH X = camera x (right), Y = -camera y (up), Z = -camera z (towards the
  camera; the OpenGL camera frame, a proper rotation of the camera's), in centimetres.
- Bone lengths: each bone's median length over the sequence, constant in the file.
- Rest pose (all angles 0): the sequence's mean pose in the root's frame, stood upright (Y = the
  camera's mean up direction) and facing +Z (the mean left joints minus the mean right ones
  along +X). A joint with several children keeps their mean shape (a Procrustes mean).
- Rotations: a joint with several children (pelvis, thorax) takes the rotation that best aligns
  its rest child bones with the frame's (Kabsch, weighted by the squared bone lengths: the least
  squares fit of the children's positions); a joint with one child the smallest rotation
  that points its rest bone along the frame's (swing only: the twist about a bone is not
  observable from joint positions, so it is zero relative to the parent); a leaf none. Euler
  order ZXY (CHANNELS Zrotation Xrotation Yrotation: R = Rz Rx Ry), continuous in time: of a
  rotation's two ZXY solutions the one nearest the previous frame's, unwrapped.
- Root: Xposition Yposition Zposition = the root's position (the trajectory when the
  prediction has one, else 0); a leaf joint gets an End Site continuing its bone by a fifth.
"""
import re

import numpy as np

from raypose.datasets.cameras import FPS as DEFAULT_FPS
from raypose.errors import UserError

CAMERA_TO_BVH = np.diag([1.0, -1.0, -1.0])   # its own inverse
CM = 100.0
EULER = "ZXY"
STUB = 0.2          # End Site length, a share of the leaf's bone
UP = np.array([0.0, 1.0, 0.0])
_EPS = 1e-9


def check_tree(parents, where):
    """`parents` as a tuple of ints if they make one tree (one root -1, every joint reaching it),
    else one line naming `where`."""
    try:
        parents = tuple(int(p) for p in parents)
    except (TypeError, ValueError):
        raise UserError(f"{where}: {parents!r}; expected a list of parent indices (-1 for the root)") from None
    n = len(parents)
    roots = [j for j, p in enumerate(parents) if p == -1]
    bad = [j for j, p in enumerate(parents) if not (p == -1 or 0 <= p < n) or p == j]
    if len(roots) != 1 or bad:
        raise UserError(f"{where}: {list(parents)} is not a tree ({len(roots)} roots, bad parents at {bad}); "
                        "expected one root (-1) and every other joint's parent an index of another joint")
    for j in range(n):
        seen, k = set(), j
        while k != -1:
            if k in seen:
                raise UserError(f"{where}: {list(parents)} has a cycle through joint {k}; expected a tree")
            seen.add(k)
            k = parents[k]
    return parents


def safe_names(names):
    """Names a BVH (no spaces or braces) and every file system take: each run of characters other than
    letters, digits, '.', '-' and '_' as one '_', no leading or trailing '.' or '_', at most 200
    characters, '_' if nothing is left; a name that repeats an earlier one, case aside, gets -2, -3 ..."""
    out, taken = [], set()
    for name in names:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")[:200] or "_"
        new, k = base, 2
        while new.lower() in taken:
            new, k = f"{base}-{k}", k + 1
        taken.add(new.lower())
        out.append(new)
    return tuple(out)


def children_of(parents):
    return [[c for c, p in enumerate(parents) if p == j] for j in range(len(parents))]


def depth_first(parents):
    """Joints in depth-first pre-order from the root, children by index: the BVH's order."""
    kids = children_of(parents)
    order, stack = [], [parents.index(-1)]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(kids[j]))
    return order


def to_bvh(points_m):
    """Camera coordinates in metres -> BVH axes in centimetres."""
    return CM * np.asarray(points_m, np.float64) @ CAMERA_TO_BVH.T


def from_bvh(points_cm):
    return np.asarray(points_cm, np.float64) @ CAMERA_TO_BVH.T / CM


def bone_lengths(pos, parents):
    """(J,) each bone's median length over the frames (the root's 0)."""
    p = np.array([max(q, 0) for q in parents])
    return np.median(np.linalg.norm(pos - pos[:, p], axis=-1), axis=0)


def directions(pos, parents):
    """(T, J, 3) unit bone directions parent -> joint (the root's row 0); a bone of length 0 in a
    frame keeps its direction from the nearest frame where it has one."""
    p = np.array([max(q, 0) for q in parents])
    vec = pos - pos[:, p]
    norm = np.linalg.norm(vec, axis=-1, keepdims=True)
    d = np.divide(vec, norm, out=np.zeros_like(vec), where=norm > _EPS)
    ok = norm[..., 0] > _EPS
    t = np.arange(len(pos))[:, None]
    last = np.maximum.accumulate(np.where(ok, t, -1), axis=0)              # forward fill
    nxt = np.minimum.accumulate(np.where(ok, t, len(pos))[::-1], axis=0)[::-1]   # backward fill
    src = np.where(last >= 0, last, np.minimum(nxt, len(pos) - 1))
    d = np.take_along_axis(d, src[..., None], axis=0)
    d[np.linalg.norm(d, axis=-1) < 0.5] = UP   # a bone of length 0 throughout: any direction
    d[:, parents.index(-1)] = 0
    return d


def normalised(root, dirs, lengths, parents):
    """(T, J, 3) positions rebuilt from the root along each frame's bone directions with the
    constant lengths: what the BVH reproduces, but for the fit at joints with several children."""
    out = np.empty_like(dirs)
    for j in depth_first(parents):
        out[:, j] = root if parents[j] == -1 else out[:, parents[j]] + lengths[j] * dirs[:, j]
    return out


def kabsch(a, b, w=None):
    """(T, 3, 3) rotations R minimising sum_i w_i |R a_i - b_i|^2: a (k, 3) or (T, k, 3), b (T, k, 3)."""
    m = np.einsum("...ki,...kj->...ij", a if w is None else a * np.asarray(w)[:, None], b)
    u, _, vt = np.linalg.svd(m)
    v = np.swapaxes(vt, -1, -2)
    flip = np.sign(np.linalg.det(v @ np.swapaxes(u, -1, -2)))
    v[..., :, 2] *= np.where(flip == 0, 1.0, flip)[..., None]
    return v @ np.swapaxes(u, -1, -2)


def swing(a, b):
    """(T, 3, 3) the smallest rotations taking unit a (3,) onto unit b (T, 3); half a turn about an
    axis square to a where b is -a."""
    a = np.broadcast_to(a, b.shape)
    v, c = np.cross(a, b), np.einsum("ti,ti->t", a, b)
    k = np.zeros(b.shape + (3,))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -v[:, 2], v[:, 1], -v[:, 0]
    k -= np.swapaxes(k, 1, 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.eye(3) + k + k @ k / (1 + c)[:, None, None]
    back = 1 + c < 1e-9
    if back.any():
        n = np.cross(a[back], np.eye(3)[np.argmin(np.abs(a[back]), axis=1)])
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        r[back] = 2 * np.einsum("ti,tj->tij", n, n) - np.eye(3)
    return r


def _unit(v):
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), _EPS)


def mean_shape(d, w, rounds=4):
    """(k, 3) the Procrustes mean of a fork's child directions d (T, k, 3), weights w (k,): exact
    for a rigid fork."""
    shape = d[0]
    for _ in range(rounds):
        r = kabsch(shape, d, w)
        shape = _unit(np.einsum("tji,tkj->tki", r, d).mean(0))
    return shape


def _body_frame(dirs, kids, root, shapes, w):
    """(T, 3, 3) the root's frame per frame: its fork's fit, or the camera's for a root with one child."""
    if root in shapes:
        return kabsch(shapes[root], dirs[:, kids[root]], w[kids[root]])
    return np.broadcast_to(np.eye(3), (len(dirs), 3, 3))


def rest_pose(dirs, lengths, parents, left=(), right=()):
    """(J, 3) rest directions (unit; the root's 0): the mean pose in the root's frame, forks at their
    mean shape, turned upright (+Y) and facing +Z (the left side at +X)."""
    kids = children_of(parents)
    root = parents.index(-1)
    w = lengths ** 2
    shapes = {j: mean_shape(dirs[:, k], w[k]) for j, k in enumerate(kids) if len(k) > 1}
    frame = _body_frame(dirs, kids, root, shapes, w)
    rest = _unit(np.einsum("tji,tkj->tki", frame, dirs).mean(0))
    for j, shape in shapes.items():
        if j != root:
            shape = shape @ kabsch(shape, rest[kids[j]][None], w[kids[j]])[0].T
        rest[kids[j]] = shape
    up = _unit(np.einsum("tji,j->ti", frame, UP).mean(0))
    pos = normalised(np.zeros((1, 3)), rest[None], lengths, parents)[0]
    side = (pos[list(left)].mean(0) - pos[list(right)].mean(0)) if len(left) and len(right) else np.eye(3)[0]
    x = side - side @ up * up
    if np.linalg.norm(x) < 1e-6:   # no left/right, or side along up: any direction square to up
        x = np.cross(up, np.eye(3)[np.argmin(np.abs(up))])
    x = _unit(x)
    turn = np.stack([x, up, np.cross(x, up)])   # rows: the rest frame's axes in the body frame
    rest = rest @ turn.T
    rest[root] = 0
    return rest


def local_rotations(dirs, rest, lengths, parents):
    """(T, J, 3, 3) each joint's rotation relative to its parent (the root's to the world)."""
    kids = children_of(parents)
    n = len(dirs)
    glob = np.empty((n, len(parents), 3, 3))
    local = np.broadcast_to(np.eye(3), glob.shape).copy()
    for j in depth_first(parents):
        above = np.broadcast_to(np.eye(3), (n, 3, 3)) if parents[j] == -1 else glob[:, parents[j]]
        seen = np.einsum("tji,tkj->tki", above, dirs[:, kids[j]])   # the children's bones in the parent's frame
        if len(kids[j]) > 1:
            local[:, j] = kabsch(rest[kids[j]], seen, lengths[kids[j]] ** 2)
        elif kids[j]:
            local[:, j] = swing(rest[kids[j][0]], seen[:, 0])
        glob[:, j] = above @ local[:, j]
    return local


def skeleton_nodes(names, parents, offsets):
    """pybvh nodes in depth-first order (a leaf's End Site right after it), Euler order EULER."""
    from pybvh.bvhnode import BvhEndSite, BvhJoint, BvhRoot  # imported here: only exports load pybvh
    kids = children_of(parents)
    made, nodes = {}, []
    for j in depth_first(parents):
        p = parents[j]
        if p == -1:
            node = BvhRoot(names[j], [0.0, 0.0, 0.0], "XYZ", EULER)
        else:
            node = BvhJoint(names[j], offsets[j], EULER, parent=made[p])
            made[p].children = made[p].children + [node]
        made[j] = node
        nodes.append(node)
        if not kids[j]:
            end = BvhEndSite(f"{names[j]}_end", STUB * offsets[j], node)
            node.children = [end]
            nodes.append(end)
    return nodes


def build(pos_m, root_m, names, parents, left=(), right=(), fps=DEFAULT_FPS):
    """(pybvh Bvh, normalised positions (T, J, 3) in camera metres) of one track: pos_m (T, J, 3)
    root-relative camera coordinates, root_m (T, 3) the root's position (zeros without a trajectory)."""
    from pybvh import Bvh
    world = to_bvh(np.asarray(pos_m, np.float64) + np.asarray(root_m, np.float64)[:, None])
    root = parents.index(-1)
    lengths = bone_lengths(world, parents)
    dirs = directions(world, parents)
    rest = rest_pose(dirs, lengths, parents, left, right)
    order = depth_first(parents)
    nodes = skeleton_nodes(safe_names(names), parents, lengths[:, None] * rest)
    angles = continuous_euler(local_rotations(dirs, rest, lengths, parents)[:, order])
    bvh = Bvh(nodes, world[:, root], angles + 0.0, 1.0 / fps, world_up="+y")   # + 0.0: no -0.000000 in the text
    return bvh, from_bvh(normalised(world[:, root], dirs, lengths, parents))


def continuous_euler(rot):
    """(T, J, 3) ZXY Euler angles (radians) of rotations (T, J, 3, 3), continuous in time.

    Every rotation has two ZXY solutions, (a, b, c) and (a + pi, pi - b, c + pi), both giving
    R = Rz(a) Rx(b) Ry(c) (Rz(pi) Rx(pi - b) Ry(pi) = Rx(b)); the principal one (|b| <= pi/2)
    jumps to the other branch where b passes +-pi/2, a half turn of a and c in one frame. Each frame
    takes, per joint, the solution nearest the previous frame's angles, each angle moved by a
    whole number of turns to the one nearest its previous value (unwrapped)."""
    from pybvh import rotations
    first = rotations.rotmat_to_euler(rot, EULER)
    both = np.stack([first, first * [1, -1, 1] + [np.pi, np.pi, np.pi]], axis=-2)   # (T, J, 2, 3)
    out = np.empty_like(first)
    prev = first[0]
    for t in range(len(rot)):
        step = (both[t] - prev[:, None] + np.pi) % (2 * np.pi) - np.pi   # each candidate's nearest turn
        pick = np.argmin(np.square(step).sum(-1), axis=-1)
        prev = out[t] = prev + step[np.arange(len(pick)), pick]
    return out


def joint_positions(bvh, parents):
    """(T, J, 3) pybvh's forward kinematics of `bvh`, in camera metres and the skeleton's joint order."""
    out = np.empty((bvh.frame_count, len(parents), 3))
    out[:, depth_first(parents)] = bvh.joint_positions()
    return from_bvh(out)
