"""What thermal and visible images share: edges. Gray conversion, gradient orientation fields, texture.

Intensities differ between the two cameras (a warm wall is bright in thermal and dark in
visible, or the reverse), but edges sit in the same places with the same direction up to
polarity. The *doubled-angle* gradient field ``w * (cos 2a, sin 2a)`` keeps exactly that:
flipping the gradient (a -> a + pi) leaves it unchanged, and correlating two such fields
scores how well their edges line up, whatever the contrast on either side.
"""

from __future__ import annotations

import cv2
import numpy as np

from sage_core.errors import FusionInputError

#: Gradient magnitude (per pixel, gray in [0, 1], 320-pixel-wide image) above which a pixel counts as an edge.
EDGE_THRESHOLD = 0.025


def to_gray01(image: np.ndarray, stretch: bool) -> np.ndarray:
    """Any gray/BGR/BGRA image (8/16-bit or float) -> float32 gray.

    ``stretch`` maps the 1st..99th percentile to 0..1 (thermal: only relative values mean
    anything); otherwise the type's full range is kept, so a dark night frame stays dark.
    """
    if image.ndim == 3:
        if image.shape[2] == 4:
            image = image[..., :3]
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.shape[2] == 3 else image[..., 0]
    if image.ndim != 2 or image.size == 0:
        raise FusionInputError(f"expected a gray or colour image, got shape {image.shape}")
    gray = image.astype(np.float32)
    if stretch:
        lo, hi = np.percentile(gray, (1, 99))
        return np.clip((gray - np.float32(lo)) / np.float32(max(float(hi - lo), 1e-6)), 0.0, 1.0)
    if image.dtype == np.uint8:
        return gray / 255.0
    if image.dtype == np.uint16:
        return gray / 65535.0
    return np.clip(gray, 0.0, 1.0)


def resize_to_width(image: np.ndarray, width: int) -> np.ndarray:
    """Resize keeping the aspect ratio (area averaging when shrinking)."""
    h, w = image.shape[:2]
    if w == width:
        return image
    height = max(1, round(h * width / w))
    interpolation = cv2.INTER_AREA if width < w else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def gradients(gray: np.ndarray, sigma: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Sobel gradients of the smoothed image (per pixel: Sobel's 8x weight divided out)."""
    gray = gray.astype(np.float32, copy=False)
    smooth = cv2.GaussianBlur(gray, (0, 0), sigma) if sigma > 0 else gray
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    return gx, gy


def orientation_field(gray: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """H x W x 2 float32 doubled-angle field, weighted by a soft-clipped gradient magnitude.

    The weight ``m / (m + m90)`` (m90: the 90th percentile of the magnitude) lets weak and strong
    edges both count, so one hot object does not dominate, and leaves flat areas near zero.
    """
    gx, gy = gradients(gray, sigma)
    mag2 = gx * gx + gy * gy
    mag = np.sqrt(mag2)
    m90 = float(np.percentile(mag[::2, ::2], 90)) + 1e-6  # a quarter of the pixels: as good, and cheaper
    weight = mag / (mag + m90)
    inv = weight / (mag2 + 1e-12)
    field = np.empty(gray.shape + (2,), np.float32)
    field[..., 0] = (gx * gx - gy * gy) * inv
    field[..., 1] = 2.0 * gx * gy * inv
    return field


def edge_fraction(gray: np.ndarray) -> float:
    """Share of pixels that are edges, measured on a 320-pixel-wide copy (independent of resolution)."""
    small = resize_to_width(gray, 320)
    gx, gy = gradients(small, 1.0)
    return float(np.mean(np.sqrt(gx * gx + gy * gy) > EDGE_THRESHOLD))
