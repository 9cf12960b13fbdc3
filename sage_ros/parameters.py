"""The fusion node's parameters, each declared once: the fields of :class:`FusionParams`.

A field's default, description, range or choices, whether it is read-only (needs a restart) and
whether ``fusion.launch.py`` exposes it as a launch argument all live in its ``param(...)``. From
that one table come the ROS declarations (``node/ros_parameters.py``), the validation at start and at
run time, the typed view the node reads (a ``FusionParams``), the launch arguments
(:func:`launch_parameters`) and ``config/fusion.yaml`` (``parameters_yaml.render_yaml``; a test keeps the file
equal to it). Importing this module needs no ROS, PyTorch or OpenCV: the launch file reads the table too.

    python -m sage_ros.parameters_yaml > config/fusion.yaml     # after changing the table (parameters_yaml.py)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from sage_core import inference_settings
from sage_core.cameras import Camera
from sage_core.errors import ConfigError
from sage_core.thermal import METHODS
from sage_ros.rig_parameters import check_rig_rules

if TYPE_CHECKING:  # the library's configs load on first use: the launch file reads this table without them
    from sage_core.alignment import AlignmentConfig
    from sage_core.fusion_smoothing import SmoothingConfig
    from sage_core.options import InferenceOptions
    from sage_core.rig import RigExtrinsics
    from sage_core.rig_alignment import DepthSettings
    from sage_core.thermal import ThermalNormalizerConfig


#: image_transport names of the input transports the node subscribes with (the topic's suffix, except raw).
INPUT_TRANSPORTS = ("raw", "compressed", "compressedDepth")


class ParameterError(ConfigError):
    """An invalid parameter value; the message names the parameter and what it accepts."""


def param(default: Any, description: str, *, read_only: bool = False, choices: tuple[str, ...] = (),
          low: float | None = None, high: float | None = None, launch: bool = False):
    """One parameter: its default and everything ROS, the launch file and the docs say about it."""
    meta = {"description": description, "read_only": read_only, "choices": choices, "low": low, "high": high,
            "launch": launch}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def inference_param(name: str, *, launch: bool = False):
    """An inference setting of ``sage_core.inference_settings`` as a (read-only) node parameter."""
    setting = inference_settings.BY_NAME[name]
    return param(setting.default, setting.description, read_only=True, choices=setting.choices, low=setting.low,
                 high=setting.high, launch=launch)


@dataclass(frozen=True)
class FusionParams:
    """Typed view of the node's parameters (field name = parameter name), validated as a whole."""

    model: str = inference_param("model", launch=True)
    model_file_path: str = inference_param("model_file_path", launch=True)
    device: str = inference_param("device", launch=True)
    backend: str = inference_param("backend", launch=True)
    engine_cache_dir: str = inference_param("engine_cache_dir", launch=True)
    engine_file_path: str = param(
        "", "deprecated: use engine_cache_dir (engines are cached one per key in a folder, not in one file); "
        "if set, its folder is used as engine_cache_dir, with a warning", read_only=True)
    force_engine_update: bool = inference_param("force_engine_update")
    enable_fp16: bool = inference_param("enable_fp16")
    inference_threads: int = inference_param("inference_threads")
    inference_workers: int = param(
        0, "frames fused at once (each result published in frame order); 0: two on a CPU, where one frame's "
        "model and colour work overlaps the previous one's, one on a GPU", read_only=True, low=0, high=8)
    warmup: bool = param(True, "run one dummy frame at start so the first real frame is not slow", read_only=True)
    output_encoding: str = param("bgr8", "encoding of fused/image", choices=("bgr8", "rgb8", "mono8"), launch=True)
    detection_stream: bool = param(
        True, "also offer detection/image (and /compressed, detection/camera_info): the same pairs, paired and aligned "
        "once, fused by the shipped detection model for machines (a detector's input, docs/downstream.md); each "
        "stream is fused only while somebody subscribes to it", read_only=True, launch=True)
    jpeg_quality: int = param(90, "JPEG quality of fused/image/compressed (published only while someone "
                              "subscribes to it)", low=1, high=100)
    lazy: bool = param(True, "skip conversion and inference while nobody subscribes to fused/image, "
                       "fused/image/compressed or fused/camera_info, nor to their detection/ twins (the "
                       "image_pipeline behaviour)")
    thermal_transport: str = param("raw", "thermal input: raw (thermal/image, sensor_msgs/Image), compressed "
                                   "(thermal/image/compressed, sensor_msgs/CompressedImage: PNG, 16-bit kept, or "
                                   "JPEG) or compressedDepth (thermal/image/compressedDepth: 16-bit PNG)",
                                   read_only=True, choices=INPUT_TRANSPORTS, launch=True)
    rgb_transport: str = param("raw", "rgb input: raw (rgb/image, sensor_msgs/Image) or compressed "
                               "(rgb/image/compressed, sensor_msgs/CompressedImage: JPEG / PNG)", read_only=True,
                               choices=INPUT_TRANSPORTS[:2], launch=True)
    reference_camera: str = param(
        "rgb", "camera whose pixel grid, stamp, frame_id and camera_info the output takes", read_only=True,
        choices=("rgb", "thermal"), launch=True)
    output_width: int = param(0, "output width in pixels; 0 with output_height 0: the (cropped) reference size",
                              read_only=True, low=0, high=16384)
    output_height: int = param(0, "output height in pixels; 0 with output_width 0: the (cropped) reference size",
                               read_only=True, low=0, high=16384)
    homography: list = param(
        [0.0], "3x3 row-major homography mapping thermal pixels to rgb pixels (rigid rig, calibrated once); "
        "[0.0]: the cameras are co-registered and only resized", read_only=True)
    crop_to_valid: bool = param(True, "crop the output to the area both cameras see", read_only=True)
    rig_file: str = param(
        "", "rig file (YAML): the thermal optical frame's pose in the rgb optical frame (translation in metres, "
        "quaternion x, y, z, w) or camera_calibration's stereo camera_info files, and optionally camera_info files "
        "for cameras that publish none; the cameras are then registered by the rig's geometry at "
        "registration_distance (per pixel with use_depth); '': no rig", read_only=True, launch=True)
    rig_translation: list = param(
        [0.0], "the rig without a file: the thermal camera's optical centre in the rgb camera's optical frame "
        "(metres; x right, y down, z forward), as tf2_echo <rgb optical frame> <thermal optical frame> prints it; "
        "[0.0]: no rig", read_only=True)
    rig_rotation: list = param(
        [0.0, 0.0, 0.0, 1.0], "with rig_translation: the thermal optical frame's orientation in the rgb optical "
        "frame, a unit quaternion x, y, z, w", read_only=True)
    registration_distance: float = param(
        math.inf, "with a rig: metres to the plane, square to the rgb camera's axis, at which thermal is registered "
        "(content nearer or farther is off by f * baseline * |1/Z - 1/distance| px); .inf: the far plane, as a "
        "homography calibrated on far content; with use_depth, the distance of pixels without depth",
        low=0.1, high=math.inf, launch=True)
    use_depth: bool = param(
        False, "subscribe to rgb/depth, a depth image registered to the rgb camera (16UC1 millimetres or 32FC1 "
        "metres, as RealSense's aligned_depth_to_color), paired with each rgb frame within slop: every rgb pixel "
        "with a depth takes the thermal value of its own 3-D point, and thermal hidden by a nearer surface is left "
        "out (needs a rig and reference_camera rgb)", read_only=True, launch=True)
    depth_transport: str = param("raw", "depth input: raw (rgb/depth), compressedDepth (rgb/depth/compressedDepth) "
                                 "or compressed (rgb/depth/compressed, 16-bit PNG)", read_only=True,
                                 choices=INPUT_TRANSPORTS, launch=True)
    depth_fill_holes: int = param(
        4, "holes in the depth image within this many pixels of a depth take the farthest depth around them (the "
        "band beside near objects that an RGB-D camera's second view cannot see, speckles); the others take "
        "registration_distance; 0: none filled", low=0, high=64)
    rectify: bool = param(
        True, "undistort each camera's images by its camera_info (plumb_bob, rational_polynomial, equidistant) "
        "before alignment, as sage-calibrate --thermal-info/--rgb-info calibrates; fused/camera_info then "
        "describes the rectified image", read_only=True, launch=True)
    alignment_check_period: float = param(
        5.0, "seconds between background checks of the homography on the current pair (residual in "
        "/diagnostics); 0: off", read_only=True, low=0.0, high=3600.0)
    alignment_warn_px: float = param(3.0, "residual misalignment (pixels of a 640-wide rgb image) above which "
                                     "/diagnostics warns", low=0.1, high=1000.0)
    auto_align: bool = param(False, "refine the homography online when the residual stays above "
                             "alignment_warn_px for auto_align_checks checks (half way, at most 2 px per update, "
                             "never on textureless frames)", read_only=True)
    auto_align_checks: int = param(3, "consecutive checks above alignment_warn_px before auto_align moves the "
                                   "homography", read_only=True, low=1, high=100)
    queue_size: int = param(10, "messages kept per stream while waiting for a partner (ApproximateTime queue)",
                            low=1, high=1000)
    slop: float = param(0.05, "largest stamp difference (s) between a thermal and an rgb image that may pair",
                        low=0.0, high=10.0, launch=True)
    time_offset: float = param(
        0.0, "seconds the thermal camera's stamps are late against the rgb camera's for the same moment "
        "(subtracted from thermal stamps before pairing); with auto_time_offset, where the estimate starts",
        low=-10.0, high=10.0)
    auto_time_offset: bool = param(
        False, "estimate the camera time offset from image content (both streams' motion, cross-correlated over "
        "10 s; reported in /diagnostics either way) and apply it to pairing, in steps of at most 50 ms and only "
        "when the estimate is confident (never on a static scene)", read_only=True, launch=True)
    pairing_rate_bound: float = param(
        0.5, "fraction of each camera's period (estimated from its stamps) assumed to pass at least between two "
        "of its frames: a pair is then proven best as soon as both frames are in, instead of when the next "
        "frames come (message_filters' inter-message lower bound); 0: wait as the C++ policy does by default",
        low=0.0, high=0.95)
    max_stamp_jump: float = param(
        1.0, "a stamp further than this (s) from where both cameras' clocks should be is rejected (counted as "
        "stamp_jump), unless adopt_after_frames consistent stamps follow (a camera or bag clock jump)",
        low=0.01, high=86400.0)
    adopt_after_frames: int = param(
        5, "consecutive messages after which a change of a stream's clock, encoding or resolution is adopted; "
        "until then such messages are rejected and counted", low=1, high=1000)
    thermal_normalization: str = param("plateau", "how raw (16-bit and float) thermal images map to [0, 1]; 8-bit "
                                       "ones are already tone-mapped by their camera and keep their tone",
                                       choices=METHODS)
    thermal_low_percentile: float = param(1.0, "percentile mapped to black (percentile method)", low=0.0, high=100.0)
    thermal_high_percentile: float = param(99.0, "percentile mapped to white (percentile method)", low=0.0,
                                           high=100.0)
    thermal_fixed_min: float = param(0.0, "raw value mapped to black (fixed method)")
    thermal_fixed_max: float = param(65535.0, "raw value mapped to white (fixed method)")
    thermal_range_smoothing: float = param(
        0.8, "weight of the previous range when smoothing the automatic range over time (0: none); avoids "
        "flicker", low=0.0, high=0.99)
    thermal_plateau_level: float = param(
        3.0, "plateau method: each histogram bin is capped at this many times the mean count of the occupied "
        "bins (lower: closer to a linear stretch; higher: closer to full equalisation)", low=0.1, high=1000.0)
    thermal_plateau_tail: float = param(
        0.1, "plateau method: percent of pixels at each end mapped to black and white", low=0.0, high=49.0)
    thermal_plateau_linear: float = param(
        0.15, "plateau method: share of a linear stretch blended into the equalised curve, so that a hot target "
        "stands out from a warm background by how much hotter it is (0: pure equalisation, only the order of "
        "temperatures; higher: more of the gap shown, and more pumping when a hot object enters)", low=0.0,
        high=1.0)
    thermal_detect_repeats: bool = param(
        True, "recognise a thermal frame equal to the previous one (a flat-field correction freeze): it does not "
        "move the automatic range, the jump after it is not taken for a change of scene, and it is counted in "
        "/diagnostics")
    thermal_steadying: float = param(
        0.9, "8-bit thermal (already tone-mapped by its camera, kept as it is): the camera's gain steps are undone "
        "and let back in slowly; weight of that correction kept per frame (0: off; 0.9: half of a step within 7 "
        "frames). See docs/temporal.md", low=0.0, high=0.99)
    fusion_smoothing: float = param(
        0.8, "weight of the previous frame's fusion decisions (the affine model's coefficients, warped along the "
        "visible motion) in a moving average over time: a steadier fused video (0: none). Applies where the "
        "backend exposes the coefficients (the shipped model on a CPU); see docs/temporal.md", low=0.0, high=0.95)
    fusion_smoothing_max_change: float = param(
        0.02, "the most (fraction of the grey range, at 1/4 resolution) the fusion smoothing may hold the picture "
        "from the current frame's own decisions: larger changes (a moving object) show at once", low=0.001,
        high=1.0)
    fusion_motion_gain_limit: float = param(
        1.0, "where the picture moves, the most total gain a + b the fusion rule may give the two cameras' detail "
        "(each block's mean kept): at 1.0 a moving part of the fused picture changes by no more than the larger of "
        "its cameras' changes (0: no limit; where nothing moves: fusion_still_gain_limit). Applies where the "
        "backend exposes the coefficients; see docs/temporal.md", low=0.0, high=4.0)
    fusion_still_gain_limit: float = param(
        1.0, "where nothing moves (and on a stream's first frame, before any motion is known), the most total gain "
        "a + b the fusion rule may give the two cameras' detail (each block's mean kept): at 1.0 the two cameras' "
        "temporal noise does not add up above the noisier camera's on a calm scene; 0 keeps the model's rule there "
        "(more detail, more noise). "
        "Applies where the backend exposes the coefficients; see docs/temporal.md", low=0.0, high=4.0)
    fusion_change_cap: float = param(
        0.02, "the fused picture never changes between frames by more than the larger of its two cameras' changes "
        "(along the visible motion) plus one grey level, pixel by pixel, but is never held more than this (fraction "
        "of the grey range) from the model's own frame (0: no cap). Applies where the backend exposes the "
        "coefficients; see docs/temporal.md", low=0.0, high=1.0)
    qos_reliability: str = param("best_effort", "reliability of the input subscriptions (sensor data: "
                                 "best_effort)", read_only=True, choices=("best_effort", "reliable"), launch=True)
    qos_depth: int = param(5, "history depth of the input subscriptions and the output publisher", read_only=True,
                           low=1, high=1000)
    stale_timeout: float = param(1.0, "seconds without a message after which a camera counts as stale",
                                 low=0.05, high=3600.0)
    on_stale: str = param("drop", "when one camera is stale: drop (publish nothing) or passthrough (publish the "
                          "live camera's image, with that camera's stamp and frame_id)",
                          choices=("drop", "passthrough"), launch=True)
    no_data_warning: float = param(5.0, "warn when a topic has publishers but nothing arrives for this many "
                                   "seconds (likely a QoS mismatch)", low=0.5, high=3600.0)
    diagnostics_period: float = param(1.0, "seconds between /diagnostics messages", read_only=True, low=0.05,
                                      high=60.0)

    def __post_init__(self) -> None:
        check_rules(self)

    # ----- the views other layers take ------------------------------------------------------------

    @property
    def homography_matrix(self) -> list[float]:
        """The homography as 9 values, or [] when none is set."""
        values = [float(v) for v in self.homography]
        return [] if values in ([], [0.0]) else values

    def thermal_config(self) -> ThermalNormalizerConfig:
        from sage_core.thermal import ThermalNormalizerConfig

        return ThermalNormalizerConfig(self.thermal_normalization, self.thermal_low_percentile,
                                       self.thermal_high_percentile, self.thermal_fixed_min, self.thermal_fixed_max,
                                       self.thermal_range_smoothing, plateau_level=self.thermal_plateau_level,
                                       plateau_tail=self.thermal_plateau_tail,
                                       plateau_linear=self.thermal_plateau_linear,
                                       detect_repeats=self.thermal_detect_repeats, steadying=self.thermal_steadying)

    def smoothing_config(self) -> SmoothingConfig:
        from sage_core.fusion_smoothing import SmoothingConfig

        return SmoothingConfig(self.fusion_smoothing, self.fusion_smoothing_max_change,
                               motion_gain_limit=self.fusion_motion_gain_limit, change_cap=self.fusion_change_cap,
                               still_gain_limit=self.fusion_still_gain_limit)

    def alignment_config(self) -> AlignmentConfig:
        from sage_core.alignment import AlignmentConfig

        return AlignmentConfig(self.reference_camera, self.output_width, self.output_height, self.homography_matrix,
                               self.crop_to_valid)

    @property
    def has_rig(self) -> bool:
        """Whether the rig's geometry registers the cameras (a rig file or rig_translation)."""
        return bool(self.rig_file) or [float(v) for v in self.rig_translation] != [0.0]

    def rig_extrinsics(self) -> RigExtrinsics | None:
        """The extrinsics of rig_translation and rig_rotation, or None when not given (a rig file has its own)."""
        if [float(v) for v in self.rig_translation] == [0.0]:
            return None
        from sage_core.rig import RigExtrinsics

        return RigExtrinsics.from_quaternion(self.rig_translation, self.rig_rotation, "parameters rig_translation, "
                                             "rig_rotation")

    def depth_settings(self) -> DepthSettings:
        from sage_core.rig_alignment import DepthSettings
        return DepthSettings(fill_holes_px=self.depth_fill_holes)

    def inference_options(self) -> InferenceOptions:
        from sage_core.options import InferenceOptions

        return InferenceOptions(model=self.model, model_file_path=self.model_file_path or None, device=self.device,
                                backend=self.backend, engine_cache_dir=self.engine_cache_folder or None,
                                force_engine_update=self.force_engine_update, enable_fp16=self.enable_fp16,
                                inference_threads=self.inference_threads)

    @property
    def engine_cache_folder(self) -> str:
        """engine_cache_dir, or the folder of the deprecated engine_file_path (a file path means its folder)."""
        if self.engine_cache_dir or not self.engine_file_path:
            return self.engine_cache_dir
        path = PurePath(self.engine_file_path)
        return str(path.parent if path.suffix else path)

    def transport(self, camera: Camera) -> str:
        return self.thermal_transport if camera is Camera.THERMAL else self.rgb_transport

    def replace(self, **changes: Any) -> FusionParams:
        return dataclasses.replace(self, **changes)


SPECS: dict[str, dataclasses.Field] = {f.name: f for f in fields(FusionParams)}
_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "text",
               list: "a list of numbers"}


def parameter_kind(spec: dataclasses.Field) -> type:
    """The Python type of a parameter (bool, int, float, str or list)."""
    return {"bool": bool, "int": int, "float": float, "str": str, "list": list}[str(spec.type)]


def coerce(name: str, value: Any) -> Any:
    """One value checked against its parameter's type, range and choices; ParameterError says why not."""
    spec = SPECS.get(name)
    if spec is None:
        raise ParameterError(f"unknown parameter {name!r}")
    kind, meta = parameter_kind(spec), spec.metadata
    expected = f"parameter {name}: expected {_TYPE_WORDS[kind]}"
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is list:
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ParameterError(f"{expected}, got {value!r}")
        value = [float(v) for v in value]
        if not all(math.isfinite(v) for v in value):
            raise ParameterError(f"{expected}, all finite, got {value!r}")
        return value
    if type(value) is not kind:
        raise ParameterError(f"{expected}, got {value!r} ({type(value).__name__})")
    if kind is float and not math.isfinite(value) and not (value == math.inf and meta["high"] == math.inf):
        raise ParameterError(f"{expected} (finite), got {value}")
    if meta["choices"] and value not in meta["choices"]:
        raise ParameterError(f"parameter {name}: {value!r} is not one of {', '.join(meta['choices'])}")
    if meta["low"] is not None and not meta["low"] <= value <= meta["high"]:
        raise ParameterError(f"parameter {name}: {value} is outside [{meta['low']}, {meta['high']}]")
    return value


def check_rules(params: FusionParams) -> None:
    """Every value, then the rules across parameters (through the configs the library validates itself)."""
    for name in SPECS:
        coerce(name, getattr(params, name))
    if (params.output_width == 0) != (params.output_height == 0):
        raise ParameterError(f"parameters output_width and output_height: give both or neither "
                             f"(got {params.output_width}x{params.output_height})")
    if len(params.homography_matrix) not in (0, 9):
        raise ParameterError(f"parameter homography: expected 9 numbers (3x3 row-major) or [0.0], "
                             f"got {len(params.homography)} values")
    try:
        check_rig_rules(params)
    except ConfigError as exc:
        raise ParameterError(str(exc)) from None
    for names, config in ((_THERMAL_NAMES, params.thermal_config()), (_ALIGNMENT_NAMES, params.alignment_config()),
                          (_SMOOTHING_NAMES, params.smoothing_config())):
        try:
            config.validate()
        except ConfigError as exc:
            raise ParameterError(f"parameters {', '.join(names)}: {exc}") from None


_THERMAL_NAMES = ("thermal_normalization", "thermal_low_percentile", "thermal_high_percentile", "thermal_fixed_min",
                  "thermal_fixed_max", "thermal_range_smoothing", "thermal_plateau_level", "thermal_plateau_tail",
                  "thermal_plateau_linear",
                  "thermal_steadying")
_SMOOTHING_NAMES = ("fusion_smoothing", "fusion_smoothing_max_change", "fusion_motion_gain_limit",
                    "fusion_still_gain_limit", "fusion_change_cap")
_ALIGNMENT_NAMES = ("reference_camera", "output_width", "output_height", "homography", "crop_to_valid")


def from_values(values: dict[str, Any], base: FusionParams | None = None) -> FusionParams:
    """A validated FusionParams from ``values`` (coerced), over ``base`` or the defaults."""
    coerced = {name: coerce(name, value) for name, value in values.items()}
    return (base or FusionParams()).replace(**coerced)


def launch_parameters() -> list[tuple[str, str, type]]:
    """(name, description, type) of the parameters ``fusion.launch.py`` exposes as launch arguments."""
    return [(f.name, f.metadata["description"], parameter_kind(f)) for f in fields(FusionParams)
            if f.metadata["launch"]]
