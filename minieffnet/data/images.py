"""Reading image files (PNG, JPEG, anything Pillow decodes) as (H, W, 3) uint8 RGB.

One decoder serves every image minieffnet reads: ``minieffnet predict`` / ``cam`` and the
image-folder data sets (:mod:`minieffnet.data.folder`). An image file is untrusted input:
Pillow reports a bad one with whatever its decoder happens to raise (``SyntaxError`` for a
broken PNG, ``OSError``, ``struct.error``, ``zlib.error``, a decompression-bomb error, ...),
so every failure to decode becomes one :class:`~minieffnet.errors.BadFileError` naming the
file. Pillow comes with matplotlib, which minieffnet depends on already.
"""
from __future__ import annotations

import io
import os
import warnings

import numpy as np

from ..errors import BadFileError

# Pillow modes holding one intensity per pixel (with or without alpha): refused, since the
# networks see RGB and replicating one channel would hide a mistake as often as fix one.
_GRAYSCALE_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def read_image(path: str | os.PathLike, data: bytes | None = None) -> np.ndarray:
    """The image file at ``path`` as (H, W, 3) uint8 RGB.

    data: the file's bytes, when the caller has read them already; they are decoded and
    ``path`` only names the file in messages (so what is decoded is exactly what was read).
    RGB is returned as stored; an alpha channel is dropped; palette, CMYK and other colour
    modes are converted to RGB. Raises FileNotFoundError if the file does not exist and
    :class:`~minieffnet.errors.BadFileError` (a ValueError) naming the file if it is not a
    readable image (text, empty, truncated, corrupt) or is grayscale.
    """
    from PIL import Image

    if data is None and not os.path.exists(path):
        raise FileNotFoundError(f"{path}: cannot read the image (no such file)")
    try:
        with warnings.catch_warnings():
            # A huge image is refused below as an error, not first announced as a warning.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path if data is None else io.BytesIO(data)) as img:
                img.load()  # decode now: a truncated file fails here, not later
                mode, size = img.mode, img.size
                rgb = None if mode in _GRAYSCALE_MODES else np.asarray(img.convert("RGB"))
    except Exception as e:  # noqa: BLE001 - every decoder failure means "not an image"
        raise BadFileError(f"{path}: cannot read the image ({type(e).__name__}: {e})") from e
    if rgb is None:
        raise BadFileError(f"{path}: expected an RGB or RGBA image of shape (H, W, 3) or "
                           f"(H, W, 4), got a grayscale image of shape {size[::-1]} (Pillow "
                           f"mode {mode}); convert it to RGB first")
    return np.ascontiguousarray(rgb, dtype=np.uint8)
