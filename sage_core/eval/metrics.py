"""Image-fusion quality metrics, with the conventions of the field's reference implementation.

All metrics take 8-bit grayscale images as float64 arrays in [0, 255]: the fused
image ``f``, the infrared ``a`` and the visible ``b`` (``docs/metrics.md``). Use
:func:`to_gray_l` to convert colour images exactly as the reference does (PIL's
``convert('L')``). Higher is better for every metric except Nabf.

Where the reference differs from the textbook definition, the reference is
followed, so that numbers compare with published tables:

- VIF's Gaussian window is sampled at ``linspace(floor(-N/2), floor(N/2), N)``,
  slightly off-centre, and filtering is zero-padded 'same' (not 'valid').
- Qabf's edge-strength ratio is ``gF`` itself (not 1) where ``gA == gF``.
- Nabf is the modified form (Kumar), on reflect-padded Sobel/8 gradients.
- SSIM and MS-SSIM scale the [0, 255] images by 255 once more, which makes the
  stabilising constants negligible; values are the sums over the two sources.
- PSNR uses ``255`` over the RMS error of [0, 1]-scaled images (values near 60 dB).

Everything is vectorised (numpy / OpenCV filtering); :func:`all_metrics`
computes the full set once per image triple, sharing the work the metrics have
in common.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from sage_core.errors import FusionInputError

#: Metric keys in table order; every one is "higher is better" except Nabf.
METRICS = ("EN", "SD", "SF", "AG", "MI", "SCD", "CC", "VIF", "Qabf", "Nabf", "SSIM", "MS_SSIM", "PSNR")
LOWER_IS_BETTER = frozenset({"Nabf"})


# ----- input ---------------------------------------------------------------------------------------

def to_gray_l(image: np.ndarray, name: str = "image") -> np.ndarray:
    """8-bit gray, BGR or BGRA image -> float64 [0, 255] as PIL's ``convert('L')`` computes it.

    PIL's integer luma: ``(R*19595 + G*38470 + B*7471 + 0x8000) >> 16``.
    """
    if image.dtype != np.uint8:
        raise FusionInputError(f"{name}: metrics take 8-bit images, got {image.dtype} "
                               "(convert 16-bit or float images to 8 bit first)")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return image.reshape(image.shape[0], image.shape[1]).astype(np.float64)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        b, g, r = (image[..., i].astype(np.uint32) for i in range(3))
        return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.float64)
    raise FusionInputError(f"{name}: expected a gray, BGR or BGRA image, got shape {image.shape}")


def _check_triple(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    for name, image in (("fused", f), ("ir", a), ("vis", b)):
        if image.ndim != 2:
            raise FusionInputError(f"{name}: metrics take 2-D gray images, got shape {image.shape}")
        if min(image.shape) < _SSIM_G.size:
            raise FusionInputError(f"{name}: image of {image.shape[1]}x{image.shape[0]} is too small for the "
                                   f"metrics (SSIM's window is {_SSIM_G.size} pixels)")
    if not (f.shape == a.shape == b.shape):
        raise FusionInputError(f"fused {f.shape}, ir {a.shape} and vis {b.shape} must have the same size")


# ----- no-reference metrics --------------------------------------------------------------------------

def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def entropy(f: np.ndarray) -> float:
    """EN: Shannon entropy (bits) of the 256-bin histogram."""
    return _entropy(np.bincount(f.astype(np.int64).ravel(), minlength=256))


def standard_deviation(f: np.ndarray) -> float:
    """SD: population standard deviation."""
    return float(f.std())


def spatial_frequency(f: np.ndarray) -> float:
    """SF: sqrt(RF^2 + CF^2), each the RMS of first differences along one axis."""
    rf2 = np.mean(np.diff(f, axis=0) ** 2)
    cf2 = np.mean(np.diff(f, axis=1) ** 2)
    return float(math.sqrt(rf2 + cf2))


def average_gradient(f: np.ndarray) -> float:
    """AG: mean of sqrt((gx^2 + gy^2) / 2) with numpy-style gradients."""
    gy, gx = np.gradient(f)
    return float(np.mean(np.sqrt((gx * gx + gy * gy) / 2.0)))


# ----- source-referenced metrics ----------------------------------------------------------------------

def _mutual_information(x: np.ndarray, f: np.ndarray, h_f: float) -> float:
    joint = np.bincount((x.astype(np.int64) * 256 + f.astype(np.int64)).ravel(), minlength=65536)
    h_x = _entropy(joint.reshape(256, 256).sum(axis=1))
    return h_x + h_f - _entropy(joint)


def mutual_information(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """MI: MI(A, F) + MI(B, F), 256-level joint histograms, bits."""
    h_f = entropy(f)
    return _mutual_information(a, f, h_f) + _mutual_information(b, f, h_f)


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float((xc * xc).sum()) * float((yc * yc).sum()))
    return float((xc * yc).sum() / denominator) if denominator > 0 else 0.0


def scd(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """SCD: sum of the correlations of differences, corr(F - B, A) + corr(F - A, B)."""
    return _corr(f - b, a) + _corr(f - a, b)


def correlation_coefficient(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """CC: mean of corr(A, F) and corr(B, F)."""
    return (_corr(a, f) + _corr(b, f)) / 2.0


def psnr(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """PSNR: 20 log10(255 / sqrt(MSE)), MSE the mean of MSE(A, F), MSE(B, F) on [0, 1] images."""
    mse = (np.mean(((a - f) / 255.0) ** 2) + np.mean(((b - f) / 255.0) ** 2)) / 2.0
    return float(20.0 * math.log10(255.0 / math.sqrt(mse))) if mse > 0 else math.inf


# ----- VIF ---------------------------------------------------------------------------------------------

def _vif_window(n: int) -> np.ndarray:
    """1-D factor of the reference's (off-centre) Gaussian window; the 2-D window is its outer product."""
    x = np.linspace(math.floor(-n / 2), math.floor(n / 2), n)
    g = np.exp(-(x ** 2) / (2.0 * (n / 5.0) ** 2))
    return g / g.sum()


_VIF_WINDOWS = {s: _vif_window(2 ** (5 - s) + 1) for s in range(1, 5)}


def _filter_same(image: np.ndarray, kernel_1d: np.ndarray) -> np.ndarray:
    """Zero-padded 'same' 2-D convolution with the separable window (kernel flipped, centre at n // 2)."""
    flipped = np.ascontiguousarray(kernel_1d[::-1])
    anchor = kernel_1d.size - 1 - kernel_1d.size // 2
    return cv2.sepFilter2D(image, cv2.CV_64F, flipped, flipped, anchor=(anchor, anchor),
                           borderType=cv2.BORDER_CONSTANT)


def _vifp(ref_pyramid: list[dict], dist: np.ndarray, sigma_nsq: float = 2.0) -> float:
    """Pixel-domain VIF of ``dist`` against a prepared reference pyramid."""
    num = den = 0.0
    for scale in range(1, 5):
        window = _VIF_WINDOWS[scale]
        if scale > 1:
            dist = _filter_same(dist, window)[::2, ::2]
        ref = ref_pyramid[scale - 1]
        mu2 = _filter_same(dist, window)
        sigma1_sq = ref["sigma_sq"]
        sigma2_sq = np.maximum(_filter_same(dist * dist, window) - mu2 * mu2, 0.0)
        sigma12 = _filter_same(ref["image"] * dist, window) - ref["mu"] * mu2
        g = sigma12 / (sigma1_sq + 1e-10)
        sv_sq = sigma2_sq - g * sigma12
        flat1 = sigma1_sq < 1e-10
        g[flat1] = 0.0
        sv_sq[flat1] = sigma2_sq[flat1]
        s1 = np.where(flat1, 0.0, sigma1_sq)
        flat2 = sigma2_sq < 1e-10
        g[flat2] = 0.0
        sv_sq[flat2] = 0.0
        negative = g < 0
        sv_sq[negative] = sigma2_sq[negative]
        g[negative] = 0.0
        np.maximum(sv_sq, 1e-10, out=sv_sq)
        num += float(np.log10(1.0 + g * g * s1 / (sv_sq + sigma_nsq)).sum())
        den += float(np.log10(1.0 + s1 / sigma_nsq).sum())
    return num / den if den > 0 else 0.0


def _vif_reference(ref: np.ndarray) -> list[dict]:
    """Per-scale filtered reference statistics (shared by every fused image of the same source)."""
    pyramid = []
    for scale in range(1, 5):
        window = _VIF_WINDOWS[scale]
        if scale > 1:
            ref = _filter_same(ref, window)[::2, ::2]
        mu = _filter_same(ref, window)
        sigma_sq = np.maximum(_filter_same(ref * ref, window) - mu * mu, 0.0)
        pyramid.append({"image": ref, "mu": mu, "sigma_sq": sigma_sq})
    return pyramid


def vif(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """VIF: VIFp(A, F) + VIFp(B, F), 4 scales, sigma_n^2 = 2."""
    return _vifp(_vif_reference(a), f) + _vifp(_vif_reference(b), f)


# ----- Qabf and Nabf ----------------------------------------------------------------------------------

_SOBEL_H = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])  # horizontal change (x)
_SOBEL_V = _SOBEL_H.T


def _sobel(image: np.ndarray, kernel: np.ndarray, border: int) -> np.ndarray:
    """True convolution (kernel flipped) of a 3x3 kernel, 'same' size, given border handling."""
    return cv2.filter2D(image, cv2.CV_64F, np.ascontiguousarray(kernel[::-1, ::-1]), borderType=border)


def _qabf_edges(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gx = _sobel(x, _SOBEL_H, cv2.BORDER_CONSTANT)
    gy = _sobel(x, _SOBEL_V, cv2.BORDER_CONSTANT)
    strength = np.sqrt(gx * gx + gy * gy)
    with np.errstate(divide="ignore", invalid="ignore"):
        angle = np.where(gx == 0, math.pi / 2, np.arctan(gy / np.where(gx == 0, 1.0, gx)))
    return strength, angle


def _qabf_q(g_x: np.ndarray, a_x: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(g_x > g_f, g_f / g_x, np.where(g_x < g_f, g_x / g_f, g_f))
    a = 1.0 - np.abs(a_x - a_f) / (math.pi / 2)
    return 0.9994 / (1.0 + np.exp(-15.0 * (g - 0.5))) * 0.9879 / (1.0 + np.exp(-22.0 * (a - 0.8)))


def qabf(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Qabf: Xydeas-Petrovic edge information transferred from the sources."""
    (g_a, a_a), (g_b, a_b), (g_f, a_f) = _qabf_edges(a), _qabf_edges(b), _qabf_edges(f)
    weights = g_a + g_b
    total = weights.sum()
    if total == 0:
        return 0.0
    return float((_qabf_q(g_a, a_a, g_f, a_f) * g_a + _qabf_q(g_b, a_b, g_f, a_f) * g_b).sum() / total)


def _nabf_edges(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gh = _sobel(x, _SOBEL_H / 8.0, cv2.BORDER_REFLECT_101)
    gv = _sobel(x, _SOBEL_V / 8.0, cv2.BORDER_REFLECT_101)
    strength = np.sqrt(gh * gh + gv * gv)
    with np.errstate(divide="ignore", invalid="ignore"):
        angle = np.arctan(gv / gh)
    angle[(gh == 0) & (gv == 0)] = 0.0
    return strength, angle


def _nabf_q(g_x: np.ndarray, a_x: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where((g_x == 0) | (g_f == 0), 0.0, np.minimum(g_x, g_f) / np.maximum(g_x, g_f))
    a = np.abs(np.abs(a_x - a_f) - math.pi / 2) * 2.0 / math.pi
    q_g = 0.9999 / (1.0 + np.exp(-19.0 * (g - 0.5)))
    q_a = 0.9995 / (1.0 + np.exp(-22.0 * (a - 0.5)))
    return np.sqrt(q_g * q_a)


def nabf(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Nabf: fusion artefacts (modified form); lower is better."""
    (g_a, a_a), (g_b, a_b), (g_f, a_f) = _nabf_edges(a), _nabf_edges(b), _nabf_edges(f)
    w_a = np.where(g_a >= 2, g_a ** 1.5, 0.0)
    w_b = np.where(g_b >= 2, g_b ** 1.5, 0.0)
    total = (w_a + w_b).sum()
    if total == 0:
        return 0.0
    artefact = (g_f > g_a) & (g_f > g_b)
    noise = (1.0 - _nabf_q(g_a, a_a, g_f, a_f)) * w_a + (1.0 - _nabf_q(g_b, a_b, g_f, a_f)) * w_b
    return float(noise[artefact].sum() / total)


# ----- SSIM and MS-SSIM --------------------------------------------------------------------------------

_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _gauss_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(x ** 2) / (2 * sigma * sigma))
    return g / g.sum()


_SSIM_G = _gauss_1d()


def _filter_valid(image: np.ndarray) -> np.ndarray:
    """Separable Gaussian (11, 1.5), 'valid' region only."""
    out = cv2.sepFilter2D(image, cv2.CV_64F, _SSIM_G, _SSIM_G, borderType=cv2.BORDER_CONSTANT)
    half = _SSIM_G.size // 2
    return out[half:image.shape[0] - half, half:image.shape[1] - half]


def _ssim_cs(x: np.ndarray, y: np.ndarray, data_range: float = 255.0) -> tuple[float, float]:
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _filter_valid(x), _filter_valid(y)
    sxx = _filter_valid(x * x) - mu_x * mu_x
    syy = _filter_valid(y * y) - mu_y * mu_y
    sxy = _filter_valid(x * y) - mu_x * mu_y
    cs_map = (2 * sxy + c2) / (sxx + syy + c2)
    ssim_map = ((2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)) * cs_map
    return float(ssim_map.mean()), float(cs_map.mean())


def _reference_scale(x: np.ndarray) -> np.ndarray:
    return x * 255.0  # the reference's double scaling (see module docstring)


def _avg_pool2(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling; odd sizes padded by one zero row/column (count included), as torch does."""
    pad_h, pad_w = x.shape[0] % 2, x.shape[1] % 2
    if pad_h or pad_w:
        x = np.pad(x, ((pad_h, pad_h), (pad_w, pad_w)))
        x = x[: x.shape[0] - x.shape[0] % 2, : x.shape[1] - x.shape[1] % 2]
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def _ssim_pair(x: np.ndarray, y: np.ndarray, multiscale: bool) -> tuple[float, float]:
    """(SSIM, MS-SSIM) of one pair: MS-SSIM's first level is SSIM's computation, so both come at once."""
    ssim_value, values = 0.0, []
    for level, weight in enumerate(_MS_SSIM_WEIGHTS):
        s, cs = _ssim_cs(x, y)
        if level == 0:
            ssim_value = s
            if not multiscale:
                return s, math.nan
        last = level == len(_MS_SSIM_WEIGHTS) - 1
        values.append(max(s if last else cs, 0.0) ** weight)
        if not last:
            x, y = _avg_pool2(x), _avg_pool2(y)
    return ssim_value, float(np.prod(values))


#: MS-SSIM's coarsest scale must still hold one 11-px window: shorter side > 10 * 2^4.
MS_SSIM_MIN_SIDE = (_SSIM_G.size - 1) * 2 ** (len(_MS_SSIM_WEIGHTS) - 1) + 1


def ssim_family(f: np.ndarray, a: np.ndarray, b: np.ndarray, multiscale: bool = True) -> dict[str, float]:
    """SSIM(A, F) + SSIM(B, F) and (``multiscale``) MS-SSIM(A, F) + MS-SSIM(B, F), reference convention."""
    if multiscale and min(f.shape) < MS_SSIM_MIN_SIDE:
        raise FusionInputError(f"MS-SSIM needs images of at least {MS_SSIM_MIN_SIDE} pixels on the shorter side "
                               f"(5 scales of an 11-pixel window), got {f.shape[1]}x{f.shape[0]}")
    fs = _reference_scale(f)
    (s_a, ms_a), (s_b, ms_b) = (_ssim_pair(_reference_scale(a), fs, multiscale),
                                _ssim_pair(_reference_scale(b), fs, multiscale))
    return {"SSIM": s_a + s_b, "MS_SSIM": ms_a + ms_b} if multiscale else {"SSIM": s_a + s_b}


# ----- all together ------------------------------------------------------------------------------------

#: Metric name -> function of (f, a, b) returning {name: value}; SSIM and MS-SSIM (one shared
#: computation) are handled by :func:`ssim_family`.
_GROUPS: dict[str, Callable[..., dict[str, float]]] = {
    "EN": lambda f, a, b: {"EN": entropy(f)},
    "SD": lambda f, a, b: {"SD": standard_deviation(f)},
    "SF": lambda f, a, b: {"SF": spatial_frequency(f)},
    "AG": lambda f, a, b: {"AG": average_gradient(f)},
    "MI": lambda f, a, b: {"MI": mutual_information(f, a, b)},
    "SCD": lambda f, a, b: {"SCD": scd(f, a, b)},
    "CC": lambda f, a, b: {"CC": correlation_coefficient(f, a, b)},
    "VIF": lambda f, a, b: {"VIF": vif(f, a, b)},
    "Qabf": lambda f, a, b: {"Qabf": qabf(f, a, b)},
    "Nabf": lambda f, a, b: {"Nabf": nabf(f, a, b)},
    "PSNR": lambda f, a, b: {"PSNR": psnr(f, a, b)},
}


def gray_metrics(f: np.ndarray, a: np.ndarray, b: np.ndarray, names: tuple[str, ...] = METRICS) -> dict[str, float]:
    """Metrics of float64 [0, 255] gray images (already converted with :func:`to_gray_l`)."""
    _check_triple(f, a, b)
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise FusionInputError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)}")
    values: dict[str, float] = {}
    for name in names:
        if name in values:
            continue
        if name in ("SSIM", "MS_SSIM"):
            values.update(ssim_family(f, a, b, multiscale="MS_SSIM" in names))
        else:
            values.update(_GROUPS[name](f, a, b))
    return {name: values[name] for name in names}


def all_metrics(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray,
                names: tuple[str, ...] = METRICS) -> dict[str, float]:
    """Every metric of ``names`` for one triple of 8-bit images (colour converted as PIL 'L')."""
    return gray_metrics(to_gray_l(fused, "fused"), to_gray_l(ir, "ir"), to_gray_l(vis, "vis"), names)
