"""The fusion node's parameters: declared once, here, with descriptions, ranges and choices.

``read_only`` parameters need a restart (model, device, QoS, geometry); the
others are applied at run time through the parameter-set callback. Every value
is validated with one readable message naming the parameter and what it takes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter


class ConfigError(ValueError):
    """An invalid parameter value; the message names the parameter and what it accepts."""


@dataclass(frozen=True)
class Spec:
    name: str
    default: object
    description: str
    read_only: bool = False
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None


SPECS: tuple[Spec, ...] = (
    Spec("model_file_path", "", "model file: our checkpoint, the released SAGE student, or a TorchScript / ONNX / "
         "TensorRT export with its sidecar JSON; empty: the shipped default model", read_only=True),
    Spec("device", "auto", "inference device", read_only=True, choices=("auto", "cpu", "cuda")),
    Spec("backend", "auto", "inference backend; auto: the fastest available for the device (logged with reasons)",
         read_only=True, choices=("auto", "torch", "torchscript", "onnxruntime", "tensorrt")),
    Spec("engine_file_path", "", "folder of compiled engines (TensorRT, ONNX), one per model hash, library "
         "version, GPU, precision and shape; a file path means its folder; empty: ~/.cache/sage_ros/engines",
         read_only=True),
    Spec("force_engine_update", False, "rebuild the compiled engine even if a valid one is cached", read_only=True),
    Spec("enable_fp16", False, "half precision on a GPU (TensorRT, ONNX Runtime CUDA, torch)", read_only=True),
    Spec("warmup", True, "run one dummy frame at start so the first real frame is not slow", read_only=True),
    Spec("output_encoding", "bgr8", "encoding of fused/image", choices=("bgr8", "rgb8", "mono8")),
    Spec("reference_camera", "rgb", "camera whose pixel grid, stamp, frame_id and camera_info the output takes",
         read_only=True, choices=("rgb", "thermal")),
    Spec("output_width", 0, "output width in pixels; 0 with output_height 0: the (cropped) reference size",
         read_only=True, low=0, high=16384),
    Spec("output_height", 0, "output height in pixels; 0 with output_width 0: the (cropped) reference size",
         read_only=True, low=0, high=16384),
    Spec("homography", [0.0], "3x3 row-major homography mapping thermal pixels to rgb pixels (rigid rig, "
         "calibrated once); [0.0] or empty: the cameras are co-registered and only resized", read_only=True),
    Spec("crop_to_valid", True, "crop the output to the area both cameras see", read_only=True),
    Spec("queue_size", 10, "messages kept per stream while waiting for a partner (ApproximateTime queue)",
         low=1, high=1000),
    Spec("slop", 0.05, "largest stamp difference (s) between a thermal and an rgb image that may pair",
         low=0.0, high=10.0),
    Spec("thermal_normalization", "percentile", "how 16-bit and float thermal images map to [0, 1]",
         choices=("percentile", "minmax", "fixed")),
    Spec("thermal_low_percentile", 1.0, "percentile mapped to black (percentile method)", low=0.0, high=100.0),
    Spec("thermal_high_percentile", 99.0, "percentile mapped to white (percentile method)", low=0.0, high=100.0),
    Spec("thermal_fixed_min", 0.0, "raw value mapped to black (fixed method)"),
    Spec("thermal_fixed_max", 65535.0, "raw value mapped to white (fixed method)"),
    Spec("thermal_range_smoothing", 0.8, "weight of the previous range when smoothing the automatic range over "
         "time (0: none); avoids flicker", low=0.0, high=0.99),
    Spec("qos_reliability", "best_effort", "reliability of the input subscriptions (sensor data: best_effort)",
         read_only=True, choices=("best_effort", "reliable")),
    Spec("qos_depth", 5, "history depth of the input subscriptions and the output publisher", read_only=True,
         low=1, high=1000),
    Spec("stale_timeout", 1.0, "seconds without a message after which a camera counts as stale", low=0.05,
         high=3600.0),
    Spec("on_stale", "drop", "when one camera is stale: drop (publish nothing) or passthrough (publish the live "
         "camera's image)", choices=("drop", "passthrough")),
    Spec("no_data_warning", 5.0, "warn when a topic has publishers but nothing arrives for this many seconds "
         "(likely a QoS mismatch)", low=0.5, high=3600.0),
    Spec("diagnostics_period", 1.0, "seconds between /diagnostics messages", read_only=True, low=0.05, high=60.0),
)

SPEC_BY_NAME = {spec.name: spec for spec in SPECS}


@dataclass
class FusionParams:
    """Typed view of the parameters (field names = parameter names)."""

    model_file_path: str
    device: str
    backend: str
    engine_file_path: str
    force_engine_update: bool
    enable_fp16: bool
    warmup: bool
    output_encoding: str
    reference_camera: str
    output_width: int
    output_height: int
    homography: list
    crop_to_valid: bool
    queue_size: int
    slop: float
    thermal_normalization: str
    thermal_low_percentile: float
    thermal_high_percentile: float
    thermal_fixed_min: float
    thermal_fixed_max: float
    thermal_range_smoothing: float
    qos_reliability: str
    qos_depth: int
    stale_timeout: float
    on_stale: str
    no_data_warning: float
    diagnostics_period: float

    def replace(self, **changes) -> FusionParams:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return FusionParams(**values)

    @property
    def homography_matrix(self) -> list[float]:
        """The homography as 9 values, or [] when none is set."""
        h = [float(v) for v in self.homography]
        return [] if h in ([], [0.0]) else h


def check_value(spec: Spec, value: object) -> None:
    """Validate one value against its spec (choices and range)."""
    if spec.choices and value not in spec.choices:
        raise ConfigError(f"parameter {spec.name}: {value!r} is not one of {', '.join(spec.choices)}")
    if spec.low is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not spec.low <= value <= spec.high:
            raise ConfigError(f"parameter {spec.name}: {value} is outside [{spec.low}, {spec.high}]")


def check_params(params: FusionParams) -> None:
    """Rules across parameters."""
    if params.thermal_low_percentile >= params.thermal_high_percentile:
        raise ConfigError(f"parameters thermal_low_percentile ({params.thermal_low_percentile}) must be below "
                          f"thermal_high_percentile ({params.thermal_high_percentile})")
    if params.thermal_fixed_min >= params.thermal_fixed_max:
        raise ConfigError(f"parameters thermal_fixed_min ({params.thermal_fixed_min}) must be below "
                          f"thermal_fixed_max ({params.thermal_fixed_max})")
    if (params.output_width == 0) != (params.output_height == 0):
        raise ConfigError(f"parameters output_width and output_height: give both or neither "
                          f"(got {params.output_width}x{params.output_height})")
    if len(params.homography_matrix) not in (0, 9):
        raise ConfigError(f"parameter homography: expected 9 numbers (3x3 row-major) or [0.0], "
                          f"got {len(params.homography)} values")


def _descriptor(spec: Spec) -> ParameterDescriptor:
    text = spec.description + (f" ({' | '.join(spec.choices)})" if spec.choices else "")
    descriptor = ParameterDescriptor(description=text, read_only=spec.read_only)
    if spec.low is not None:
        if isinstance(spec.default, int) and not isinstance(spec.default, bool):
            descriptor.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)]
        else:
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(spec.low),
                                                                  to_value=float(spec.high), step=0.0)]
    return descriptor


def declare_parameters(node: Node) -> FusionParams:
    """Declare every parameter on ``node`` and return the validated values; ConfigError if any is invalid."""
    values = {}
    for spec in SPECS:
        try:
            declared = node.declare_parameter(spec.name, spec.default, _descriptor(spec))
        except InvalidParameterValueException:
            raise ConfigError(f"parameter {spec.name}: value outside [{spec.low}, {spec.high}]") from None
        except Exception as exc:  # wrong type from a YAML file or the command line
            raise ConfigError(f"parameter {spec.name}: {exc} (expected a {type(spec.default).__name__} "
                              f"like {spec.default!r})") from None
        value = declared.value
        if isinstance(spec.default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(spec.default, list):
            value = list(value)
        check_value(spec, value)
        values[spec.name] = value
    params = FusionParams(**values)
    check_params(params)
    return params


def apply_changes(current: FusionParams, changes: list[Parameter]) -> FusionParams:
    """Validate run-time changes; return the new parameter set or raise ConfigError."""
    updates = {}
    for change in changes:
        spec = SPEC_BY_NAME.get(change.name)
        if spec is None:
            continue
        value = change.value
        if isinstance(spec.default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not type(spec.default) and not isinstance(spec.default, list):
            raise ConfigError(f"parameter {spec.name}: expected a {type(spec.default).__name__}, got {value!r}")
        check_value(spec, value)
        updates[spec.name] = value
    new = current.replace(**updates)
    check_params(new)
    return new
