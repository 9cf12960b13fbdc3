"""Colour pipeline of SAGE: fuse on luminance, recompose colour from visible chroma.

The released SAGE outputs were made with OpenCV throughout (``cvtColor`` on the
integer images, then divide by the type's maximum), so this module does exactly
that to reproduce them to within one grey level. 16-bit input follows the same
path with 65535 as the maximum; float input must already lie in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from sage_core.errors import FusionInputError

#: ITU-R BT.601 inverse coefficients that method.md gives for YCrCb -> RGB.
_CR_TO_R = 1.403
_CR_TO_G = 0.714
_CB_TO_G = 0.344
_CB_TO_B = 1.773


@dataclass(frozen=True)
class LumaChroma:
    """Visible image split into luminance and chroma, each H x W: ``y`` float32 in [0, 1]; ``cr``, ``cb``
    float32 in [0, 1], or uint8 (255 x those values, exactly) when asked for with ``chroma_uint8``."""

    y: np.ndarray
    cr: np.ndarray
    cb: np.ndarray


#: uint8 value -> float32 value / 255, exactly as ``astype(np.float32) / 255.0`` computes it (cv2.LUT is one pass).
_UNIT_LUT = np.arange(256, dtype=np.float32) / np.float32(255.0)


def _scale_to_unit(image: np.ndarray, name: str) -> np.ndarray:
    """Integer image -> float32 [0, 1] by its type's maximum; float is checked, not rescaled."""
    if image.dtype == np.uint8:
        return cv2.LUT(image, _UNIT_LUT)
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    if image.dtype in (np.float32, np.float64):
        lo, hi = float(image.min()), float(image.max())  # NaN and inf show in the extremes: no extra pass
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise FusionInputError(f"{name}: float image contains NaN or inf")
        if lo < -1e-6 or hi > 1.0 + 1e-6:
            raise FusionInputError(
                f"{name}: float image must lie in [0, 1], got range [{lo:.4g}, {hi:.4g}] "
                "(normalise raw thermal values first)"
            )
        if image.dtype == np.float32 and lo >= 0.0 and hi <= 1.0:
            return image  # already what the model takes (the thermal normaliser's output)
        return np.clip(image, 0.0, 1.0).astype(np.float32)
    raise FusionInputError(
        f"{name}: unsupported pixel type {image.dtype}; expected uint8, uint16 or float32 in [0, 1]"
    )


def _as_cv_compatible(image: np.ndarray) -> np.ndarray:
    """OpenCV's colour conversions take 8U, 16U and 32F; map float64 to float32."""
    return image.astype(np.float32) if image.dtype == np.float64 else image


def _channels(image: np.ndarray, name: str) -> int:
    if image.ndim == 2:
        return 1
    if image.ndim == 3 and image.shape[2] in (1, 3, 4):
        return image.shape[2]
    raise FusionInputError(
        f"{name}: expected an H x W or H x W x C image with C in 1, 3, 4; got shape {image.shape}"
    )


def _check_size(image: np.ndarray, name: str) -> None:
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise FusionInputError(f"{name}: image is empty (shape {image.shape})")


def ir_to_gray(ir: np.ndarray) -> np.ndarray:
    """Thermal image (1, 3 or 4 channels, 8/16-bit or float) -> float32 H x W in [0, 1].

    3-channel IR files hold gray content; they go through ``COLOR_BGR2GRAY`` as
    the released pipeline did.
    """
    channels = _channels(ir, "ir")
    _check_size(ir, "ir")
    if channels == 1:
        gray = ir.reshape(ir.shape[0], ir.shape[1])
    elif channels == 3:
        gray = cv2.cvtColor(_as_cv_compatible(ir), cv2.COLOR_BGR2GRAY)
    else:
        gray = cv2.cvtColor(_as_cv_compatible(ir), cv2.COLOR_BGRA2GRAY)
    return _scale_to_unit(gray, "ir")


def vis_to_luma_chroma(vis: np.ndarray, chroma_uint8: bool = False) -> LumaChroma:
    """Visible BGR / BGRA / gray image -> Y, Cr, Cb in [0, 1] (OpenCV's BGR2YCrCb).

    A gray visible image has neutral chroma (0.5), so the fused output is gray. ``chroma_uint8``: an 8-bit
    colour image keeps its chroma as the uint8 planes the float ones are made from, which
    :func:`recompose_bgr` takes in fewer passes (a quarter of the memory traffic; the fusion path's choice).
    """
    channels = _channels(vis, "vis")
    _check_size(vis, "vis")
    if channels == 1:
        y = _scale_to_unit(vis.reshape(vis.shape[0], vis.shape[1]), "vis")
        neutral = np.full_like(y, 0.5)
        return LumaChroma(y=y, cr=neutral, cb=neutral.copy())
    if channels == 4:
        vis = cv2.cvtColor(_as_cv_compatible(vis), cv2.COLOR_BGRA2BGR)
    if vis.dtype != np.uint8:
        _scale_to_unit(vis, "vis")  # validates float range before conversion
    ycrcb = cv2.cvtColor(_as_cv_compatible(vis), cv2.COLOR_BGR2YCrCb)
    if chroma_uint8 and ycrcb.dtype == np.uint8:
        y, cr, cb = cv2.split(ycrcb)  # split before scaling: only Y becomes float
        return LumaChroma(y=cv2.LUT(y, _UNIT_LUT), cr=cr, cb=cb)
    ycrcb = _scale_to_unit(ycrcb, "vis") if ycrcb.dtype != np.float32 else ycrcb
    y, cr, cb = cv2.split(ycrcb)  # contiguous planes
    return LumaChroma(y=y, cr=cr, cb=cb)


#: uint8 chroma -> its term of R (Cr) and B (Cb) on the 0..255 scale: 255 * k * (v / 255 - 0.5).
_LEVELS = np.arange(256, dtype=np.float64)
_CR_TO_R_LUT = (_CR_TO_R * (_LEVELS - 127.5)).astype(np.float32)
_CB_TO_B_LUT = (_CB_TO_B * (_LEVELS - 127.5)).astype(np.float32)


def recompose_bgr(fused_y: np.ndarray, cr: np.ndarray, cb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Fused luminance + visible chroma (float [0, 1] or uint8 planes) -> BGR uint8, as method.md specifies.

    ``R = F + 1.403 (Cr - 0.5)``, ``G = F - 0.714 (Cr - 0.5) - 0.344 (Cb - 0.5)``,
    ``B = F + 1.773 (Cb - 0.5)``, clamp to [0, 1], ``uint8(x * 255 + 0.5)``. ``out``: an H x W x 3 uint8
    array to write into (e.g. an outgoing message's buffer), returned.
    """
    if cr.dtype == np.uint8 and cb.dtype == np.uint8:
        return _recompose_uint8_chroma(np.asarray(fused_y, dtype=np.float32), cr, cb, out)
    # OpenCV's float YCrCb -> BGR uses exactly these coefficients (and 0.5 as the chroma offset), in one
    # vectorised pass; saturating to uint8 clamps to [0, 255] and rounds to nearest (ties to even, where the
    # reference rounds half up: about 5 values in a million differ by one grey level).
    planes = [np.ascontiguousarray(p, dtype=np.float32) for p in (fused_y, cr, cb)]
    bgr = cv2.cvtColor(cv2.merge(planes), cv2.COLOR_YCrCb2BGR)
    cv2.max(bgr, 0.0, dst=bgr)  # convertScaleAbs takes |x|: negatives must be 0 first
    if out is None:
        return cv2.convertScaleAbs(bgr, alpha=255.0)
    return cv2.convertScaleAbs(bgr, alpha=255.0, dst=out)


def _recompose_uint8_chroma(fused_y: np.ndarray, cr: np.ndarray, cb: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """:func:`recompose_bgr` for uint8 chroma: each channel is ``255 F + (its chroma term)``, saturated to uint8
    by ``addWeighted`` in one pass; only the chroma terms are float planes, so it makes fewer passes over
    the image than the float path; the same picture but for rounding ties (a few pixels in a million differ
    by one grey level)."""
    red = cv2.addWeighted(fused_y, 255.0, cv2.LUT(cr, _CR_TO_R_LUT), 1.0, 0.0, dtype=cv2.CV_8U)
    blue = cv2.addWeighted(fused_y, 255.0, cv2.LUT(cb, _CB_TO_B_LUT), 1.0, 0.0, dtype=cv2.CV_8U)
    # -0.714 (Cr - 127.5) - 0.344 (Cb - 127.5) on the 0..255 scale, straight from the two uint8 planes.
    green_term = cv2.addWeighted(cr, -_CR_TO_G, cb, -_CB_TO_G, 127.5 * (_CR_TO_G + _CB_TO_G), dtype=cv2.CV_32F)
    green = cv2.addWeighted(fused_y, 255.0, green_term, 1.0, 0.0, dtype=cv2.CV_8U)
    return cv2.merge([blue, green, red]) if out is None else cv2.merge([blue, green, red], dst=out)


def gray_to_uint8(image01: np.ndarray) -> np.ndarray:
    """Float [0, 1] image -> uint8 with the pipeline's rounding (clamp, x * 255 + 0.5)."""
    return (np.clip(image01, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# ----- the same pipeline as torch operations, for a GPU -------------------------------------------------
# 8-bit input follows OpenCV's fixed-point conversion exactly (coefficients scaled by 2^14, rounded), so
# the GPU path gives the CPU path's luminance and chroma; other types use float arithmetic.

_FIX_SHIFT = 14  # BGR2YCrCb: coefficients x 2^14
_FIX_R2Y, _FIX_G2Y, _FIX_B2Y, _FIX_CR, _FIX_CB = 4899, 9617, 1868, 11682, 9241
_GRAY_SHIFT = 15  # BGR2GRAY uses its own x 2^15 coefficients
_GRAY_R, _GRAY_G, _GRAY_B = 9798, 19235, 3735


def _descale(x: torch.Tensor, shift: int = _FIX_SHIFT) -> torch.Tensor:
    return (x + (1 << (shift - 1))) >> shift


def _luma_fixed(bgr: torch.Tensor, gray: bool = False) -> torch.Tensor:
    b, g, r = (bgr[..., i].to(torch.int32) for i in range(3))
    if gray:
        return _descale(r * _GRAY_R + g * _GRAY_G + b * _GRAY_B, _GRAY_SHIFT)
    return _descale(r * _FIX_R2Y + g * _FIX_G2Y + b * _FIX_B2Y)


def _scale(image: torch.Tensor) -> float:
    return {torch.uint8: 255.0, torch.uint16: 65535.0}.get(image.dtype, 1.0)


def ir_to_gray_torch(ir: torch.Tensor) -> torch.Tensor:
    """Thermal tensor (H x W or H x W x C, 8/16-bit or float) -> float H x W in [0, 1] on its device."""
    if ir.ndim == 3 and ir.shape[2] == 1:
        ir = ir[..., 0]
    if ir.ndim == 3:
        if ir.dtype == torch.uint8:
            return _luma_fixed(ir, gray=True).float() / 255.0
        bgr = ir.float()
        return (0.114 * bgr[..., 0] + 0.587 * bgr[..., 1] + 0.299 * bgr[..., 2]).round() / _scale(ir)
    return ir.float() / _scale(ir)


def vis_to_luma_chroma_torch(vis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Visible BGR(A) or gray tensor -> (Y, Cr, Cb) float in [0, 1], as OpenCV's BGR2YCrCb computes them."""
    if vis.ndim == 2 or vis.shape[2] == 1:
        y = vis.reshape(vis.shape[0], vis.shape[1]).float() / _scale(vis)
        half = torch.full_like(y, 0.5)
        return y, half, half
    if vis.dtype == torch.uint8:
        y = _luma_fixed(vis)
        delta = 128 << _FIX_SHIFT
        cr = _descale((vis[..., 2].to(torch.int32) - y) * _FIX_CR + delta).clamp(0, 255)
        cb = _descale((vis[..., 0].to(torch.int32) - y) * _FIX_CB + delta).clamp(0, 255)
        return y.float() / 255.0, cr.float() / 255.0, cb.float() / 255.0
    scale = _scale(vis)
    bgr = vis.float() / scale
    y = 0.114 * bgr[..., 0] + 0.587 * bgr[..., 1] + 0.299 * bgr[..., 2]
    return y, (bgr[..., 2] - y) * 0.713 + 0.5, (bgr[..., 0] - y) * 0.564 + 0.5


def recompose_bgr_torch(fused_y: torch.Tensor, cr: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
    """Like :func:`recompose_bgr`, on torch tensors: BGR uint8 H x W x 3 on the same device."""
    dcr, dcb = cr - 0.5, cb - 0.5
    bgr = torch.stack((fused_y + _CB_TO_B * dcb, fused_y - _CR_TO_G * dcr - _CB_TO_G * dcb,
                       fused_y + _CR_TO_R * dcr), dim=-1)
    return (bgr.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)
