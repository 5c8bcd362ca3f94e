"""GIF writing for the animations: Pillow's palette images, one palette per clip, written whole."""
import os

import numpy as np

from raypose.errors import UserError


def pillow():
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow is a matplotlib dependency
        raise UserError("animate: writing a GIF needs Pillow (pip install pillow)") from e
    return Image


def gif_images(Image, render, count, colours=()):
    """Every frame as a palette image, with one palette for the whole clip.

    GIF frames are 256-colour images; the palette comes from a montage of a few frames, and
    mapping to a fixed palette is ~50x faster than quantising every frame on its own. A band of
    each of `colours` (RGB 0..1) joins the montage, so that a colour the sampled frames happen to
    lack (a ring on a joint filled in elsewhere in the clip) keeps its own palette entry.
    """
    sample = np.unique(np.linspace(0, count - 1, min(count, 4)).round().astype(int))
    frames = [render(t) for t in sample]
    bands = [np.full((12, frames[0].shape[1], 3), np.round(255 * np.asarray(c)), np.uint8) for c in colours]
    montage = Image.fromarray(np.concatenate(frames + bands))
    palette = montage.quantize(255, method=Image.Quantize.MEDIANCUT)
    return [Image.fromarray(render(t)).quantize(palette=palette, dither=Image.Dither.NONE)
            for t in range(count)]


def write_gif(images, out, fps):
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    duration = max(20, round(1000 / fps))
    images[0].save(out, save_all=True, append_images=images[1:], duration=duration, loop=0)
    return out
