"""The range of frame sizes a compiled engine accepts: a TensorRT optimization profile (min, opt, max).

TensorRT engines (torch-tensorrt's, and ONNX Runtime's TensorRT provider's) are built for a range of input
shapes and tuned at one of them. :class:`ShapeProfile` is that range for our two ``(1, 1, H, W)`` inputs,
which always share their height and width. A frame outside it is resized into it (:meth:`ShapeProfile.fit`)
and the output resized back, as the ONNX backend does for a fixed-shape export, so no camera size makes
every frame fail; the backends log it once.

The default range covers every camera the node meets (an 80x60 Lepton and up to 1920x1200), tuned at
``engine_shape`` (512x640, the common thermal size). A larger ``max`` costs engine memory: TensorRT sizes an
execution context's activations for the largest shape, which on a Jetson is shared with the CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

from sage_core.errors import ConfigError

#: Smallest frame (height, width) of the default profile (torch.export specialises sizes 0 and 1, so >= 2).
DEFAULT_MIN_SHAPE = (32, 32)
#: Largest frame (height, width) of the default profile: 1920x1200 and 1920x1080 cameras fit.
DEFAULT_MAX_SHAPE = (1200, 1920)

Shape = tuple[int, int]


@dataclass(frozen=True)
class ShapeProfile:
    """Height and width range (min, opt, max) shared by both inputs; ``opt`` is where the engine is tuned."""

    min: Shape
    opt: Shape
    max: Shape

    def __post_init__(self) -> None:
        for axis, name in enumerate(("height", "width")):
            low, opt, high = self.min[axis], self.opt[axis], self.max[axis]
            if not 2 <= low <= opt <= high:
                raise ConfigError(f"engine profile {name}: expected 2 <= min <= opt <= max, got min {low}, "
                                  f"opt {opt}, max {high}")

    @classmethod
    def around(cls, opt: Shape, low: Shape = DEFAULT_MIN_SHAPE, high: Shape = DEFAULT_MAX_SHAPE) -> ShapeProfile:
        """The default range, tuned at ``opt`` (widened to include it when it lies outside)."""
        opt = (int(opt[0]), int(opt[1]))
        return cls((min(low[0], opt[0]), min(low[1], opt[1])), opt, (max(high[0], opt[0]), max(high[1], opt[1])))

    @classmethod
    def fixed(cls, shape: Shape) -> ShapeProfile:
        """An engine for one shape only."""
        shape = (int(shape[0]), int(shape[1]))
        return cls(shape, shape, shape)

    @classmethod
    def from_json(cls, value: object) -> ShapeProfile:
        """Back from :meth:`to_json` (a sidecar, a cache record); ConfigError when malformed."""
        try:
            return cls(*(tuple(int(v) for v in value[k]) for k in ("min", "opt", "max")))  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            raise ConfigError(f"engine profile {value!r}: expected {{'min': [H, W], 'opt': [H, W], "
                              "'max': [H, W]}") from None

    def to_json(self) -> dict:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @property
    def dynamic(self) -> bool:
        return self.min != self.max

    def shapes(self) -> dict[str, Shape]:
        """The profile's three shapes by name (min, opt, max), in that order."""
        return {"min": self.min, "opt": self.opt, "max": self.max}

    def contains(self, height: int, width: int) -> bool:
        return self.min[0] <= height <= self.max[0] and self.min[1] <= width <= self.max[1]

    def fit(self, height: int, width: int) -> Shape:
        """(height, width) itself when the profile accepts it; else the nearest accepted size of about the same
        aspect ratio (scaled down into ``max`` or up into ``min``; clamped per axis where no scale fits both)."""
        if self.contains(height, width):
            return height, width
        scale = min(1.0, self.max[0] / height, self.max[1] / width)
        scale = max(scale, self.min[0] / height, self.min[1] / width)
        return (min(self.max[0], max(self.min[0], round(height * scale))),
                min(self.max[1], max(self.min[1], round(width * scale))))

    def describe(self) -> str:
        def text(shape: Shape) -> str:
            return f"{shape[1]}x{shape[0]}"

        if not self.dynamic:
            return f"fixed {text(self.opt)}"
        return f"{text(self.min)} to {text(self.max)}, tuned at {text(self.opt)}"
