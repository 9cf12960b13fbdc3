"""Launch the sage_ros fusion node (and optionally rviz2 with the packaged view).

    ros2 launch sage_ros fusion.launch.py thermal_topic:=/boson/image_raw rgb_topic:=/camera/color/image_raw
    ros2 launch sage_ros fusion.launch.py namespace:=front model_file_path:=/models/student.onnx rviz:=true
    ros2 launch sage_ros fusion.launch.py managed:=true autostart:=false   # a lifecycle manager drives it
    ros2 launch sage_ros fusion.launch.py rig_file:=rig.yaml use_depth:=true \
        depth_topic:=/camera/camera/aligned_depth_to_color/image_raw      # a thermal + RGB-D rig

Each user-facing setting is a launch argument (``ros2 launch sage_ros fusion.launch.py --show-args``):
the topics, namespace, rviz and log level here, and the node parameters marked ``launch=True`` in
sage_ros/parameters.py (their one declaration). The others come from ``params_file`` (default: the
packaged config/fusion.yaml).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from sage_ros.parameters import launch_parameters

NODE_NAME = "sage_fusion"
#: Node parameters exposed as launch arguments -> their types (from the parameter table).
PARAMETER_ARGUMENTS = {name: kind for name, _, kind in launch_parameters()}
# (name, default, description). A parameter argument's empty default leaves the value of params_file in force.
ARGUMENTS = [
    ("namespace", "", "namespace of the fusion node and its relative topics"),
    ("params_file", "", "parameter YAML file (empty: the packaged config/fusion.yaml)"),
    ("thermal_topic", "thermal/image", "thermal image topic (its camera_info is the sibling topic)"),
    ("rgb_topic", "rgb/image", "RGB image topic (its camera_info is the sibling topic)"),
    ("fused_topic", "fused/image", "fused output image topic (fused camera_info is the sibling topic)"),
    ("depth_topic", "rgb/depth", "with use_depth: the depth image registered to the rgb camera, e.g. "
                                 "/camera/camera/aligned_depth_to_color/image_raw (its camera_info is the sibling)"),
    *[(name, "", f"{description} (empty: the value in params_file)") for name, description, _ in launch_parameters()],
    ("managed", "false", "run the managed (lifecycle) node, managed_fusion_node, instead of fusion_node"),
    ("autostart", "true", "with managed:=true, configure and activate it at launch (false: leave the transitions "
                          "to a lifecycle manager)"),
    ("use_sim_time", "false", "use /clock (a bag played with --clock, a simulator) as the node's time"),
    ("log_level", "info", "log level of the fusion node (its logger, under any namespace)"),
    ("rviz", "false", "also start rviz2 with the packaged thermal / RGB / fused view"),
    ("rviz_fixed_frame", "base_link", "rviz2's fixed frame (its image panels need no TF; set a frame your robot "
                                      "publishes, e.g. the fused image's frame_id, to silence rviz's frame error)"),
]


def _typed(text: str, kind: type):
    """A launch argument's text as the parameter's type (``bool("false")`` would be True)."""
    if kind is bool:
        return text.strip().lower() in ("true", "1", "yes")
    if kind is float and text.strip().lower() in (".inf", "inf"):  # YAML's infinity, or Python's
        return math.inf
    return kind(text)


def _logger_name(namespace: str, node_name: str) -> str:
    """rcl names a node's logger after its namespace and name, with dots: ``front/cams`` -> ``front.cams.<name>``."""
    return ".".join([part for part in namespace.split("/") if part] + [node_name])


def _absolute(topic: str, namespace: str) -> str:
    if topic.startswith("/"):
        return topic
    prefix = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return f"{prefix}/{topic}"


def _launch_setup(context, *args, **kwargs):
    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    share = FindPackageShare("sage_ros").perform(context)
    params_file = value["params_file"] or os.path.join(share, "config", "fusion.yaml")
    overrides = {name: _typed(value[name], kind) for name, kind in PARAMETER_ARGUMENTS.items() if value[name]}
    overrides["use_sim_time"] = _typed(value["use_sim_time"], bool)
    # One remap per base topic: the node derives <topic>/compressed and the sibling camera_info from the
    # resolved base, as image_transport does.
    remappings = [("thermal/image", value["thermal_topic"]), ("rgb/image", value["rgb_topic"]),
                  ("fused/image", value["fused_topic"]), ("rgb/depth", value["depth_topic"])]
    logger = _logger_name(value["namespace"], NODE_NAME)
    node = dict(package="sage_ros", name=NODE_NAME, namespace=value["namespace"],
                parameters=[params_file, overrides], remappings=remappings, output="screen", emulate_tty=True,
                arguments=["--ros-args", "--log-level", f"{logger}:={value['log_level']}"])
    if _typed(value["managed"], bool):
        actions = _managed_node(node, autostart=_typed(value["autostart"], bool))
    else:
        actions = [Node(executable="fusion_node", **node)]
    if _typed(value["rviz"], bool):
        actions += _rviz(share, value, params_file, overrides)
    return actions


def _managed_node(node: dict, autostart: bool) -> list:
    """The lifecycle node and, with ``autostart``, the events that configure it and then activate it."""
    from launch.actions import EmitEvent, RegisterEventHandler
    from launch.events import matches_action
    from launch_ros.actions import LifecycleNode
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState
    from lifecycle_msgs.msg import Transition

    managed = LifecycleNode(executable="managed_fusion_node", **node)
    if not autostart:
        return [managed]

    def change(transition_id: int):
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(managed), transition_id=transition_id))

    activate_once_configured = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=managed, start_state="configuring", goal_state="inactive",
        entities=[change(Transition.TRANSITION_ACTIVATE)]))
    return [managed, activate_once_configured, change(Transition.TRANSITION_CONFIGURE)]


def _rviz(share: str, value: dict, params_file: str, overrides: dict) -> list:
    """rviz2 with the packaged view, and the removal of its rewritten copy when the launch shuts down."""
    from launch.actions import RegisterEventHandler
    from launch.event_handlers import OnShutdown

    from sage_ros.bags.params_file import load_params  # the effective transports (argument or params_file)

    params, _ = load_params(params_file, {k: v for k, v in overrides.items() if k in PARAMETER_ARGUMENTS})
    path = _rviz_config(share, value, {"thermal": params.thermal_transport, "rgb": params.rgb_transport})
    rviz = Node(package="rviz2", executable="rviz2", name="sage_fusion_rviz", output="screen",
                arguments=["-d", path])
    remove = RegisterEventHandler(OnShutdown(on_shutdown=lambda event, context: _remove(path)))
    return [rviz, remove]


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _rviz_config(share: str, value: dict, transports: dict[str, str]) -> str:
    """The packaged view, with its topics rewritten for this namespace, these remappings and transports
    (rviz2's image display subscribes ``<base>/compressed`` through image_transport when the topic ends so)."""
    with open(os.path.join(share, "rviz", "fusion.rviz"), encoding="utf-8") as handle:
        text = handle.read()
    for camera, default, topic in (("thermal", "/thermal/image", value["thermal_topic"]),
                                   ("rgb", "/rgb/image", value["rgb_topic"]),
                                   ("fused", "/fused/image", value["fused_topic"])):
        shown = _absolute(topic, value["namespace"])
        if transports.get(camera, "raw") != "raw":
            shown = f"{shown}/{transports[camera]}"
        text = text.replace(f"Value: {default}\n", f"Value: {shown}\n")
    text = text.replace("Fixed Frame: base_link\n", f"Fixed Frame: {value['rviz_fixed_frame']}\n")
    handle, path = tempfile.mkstemp(prefix="sage_fusion_", suffix=".rviz")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    return path


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=description)
         for name, default, description in ARGUMENTS]
        + [OpaqueFunction(function=_launch_setup)]
    )
