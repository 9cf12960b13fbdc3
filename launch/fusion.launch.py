"""Launch the sage_ros fusion node (and optionally rviz2 with the packaged view).

    ros2 launch sage_ros fusion.launch.py thermal_topic:=/boson/image_raw rgb_topic:=/camera/color/image_raw
    ros2 launch sage_ros fusion.launch.py namespace:=front model_file_path:=/models/student.onnx rviz:=true
    ros2 launch sage_ros fusion.launch.py managed:=true autostart:=false   # a lifecycle manager drives it

Each user-facing setting is a launch argument (``ros2 launch sage_ros fusion.launch.py --show-args``):
the topics, namespace, rviz and log level here, and the node parameters marked ``launch=True`` in
sage_ros/parameters.py (their one declaration). The others come from ``params_file`` (default: the
packaged config/fusion.yaml).
"""

from __future__ import annotations

import os
import tempfile

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription
from sage_ros.parameters import launch_parameters

#: Node parameters exposed as launch arguments -> their types (from the parameter table).
PARAMETER_ARGUMENTS = {name: kind for name, _, kind in launch_parameters()}
# (name, default, description). A parameter argument's empty default leaves the value of params_file in force.
ARGUMENTS = [
    ("namespace", "", "namespace of the fusion node and its relative topics"),
    ("params_file", "", "parameter YAML file (empty: the packaged config/fusion.yaml)"),
    ("thermal_topic", "thermal/image", "thermal image topic (its camera_info is the sibling topic)"),
    ("rgb_topic", "rgb/image", "RGB image topic (its camera_info is the sibling topic)"),
    ("fused_topic", "fused/image", "fused output image topic (fused camera_info is the sibling topic)"),
    *[(name, "", f"{description} (empty: the value in params_file)") for name, description, _ in launch_parameters()],
    ("managed", "false", "run the managed (lifecycle) node, managed_fusion_node, instead of fusion_node"),
    ("autostart", "true", "with managed:=true, configure and activate it at launch (false: leave the transitions "
                          "to a lifecycle manager)"),
    ("log_level", "info", "log level of the fusion node"),
    ("rviz", "false", "also start rviz2 with the packaged thermal / RGB / fused view"),
]


def _typed(text: str, kind: type):
    """A launch argument's text as the parameter's type (``bool("false")`` would be True)."""
    if kind is bool:
        return text.strip().lower() in ("true", "1", "yes")
    return kind(text)


def _sibling(topic: str, name: str) -> str:
    head = topic.rsplit("/", 1)[0] if "/" in topic else ""
    return f"{head}/{name}" if head else name


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
    remappings = []
    for local, topic in (("thermal/image", value["thermal_topic"]), ("rgb/image", value["rgb_topic"]),
                         ("fused/image", value["fused_topic"])):
        # image_transport naming: the compressed topic follows its image topic (<topic>/compressed).
        remappings += [(local, topic), (f"{local}/compressed", f"{topic}/compressed"),
                       (f"{local}/compressedDepth", f"{topic}/compressedDepth"),
                       (_sibling(local, "camera_info"), _sibling(topic, "camera_info"))]
    node = dict(package="sage_ros", name="sage_fusion", namespace=value["namespace"],
                parameters=[params_file, overrides], remappings=remappings, output="screen", emulate_tty=True,
                arguments=["--ros-args", "--log-level", f"sage_fusion:={value['log_level']}"])
    if _typed(value["managed"], bool):
        actions = _managed_node(node, autostart=_typed(value["autostart"], bool))
    else:
        actions = [Node(executable="fusion_node", **node)]
    if _typed(value["rviz"], bool):
        actions.append(Node(package="rviz2", executable="rviz2", name="sage_fusion_rviz", output="screen",
                            arguments=["-d", _rviz_config(share, value)]))
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


def _rviz_config(share: str, value: dict) -> str:
    """The packaged view, with its topics rewritten for this namespace and these remappings."""
    with open(os.path.join(share, "rviz", "fusion.rviz"), encoding="utf-8") as handle:
        text = handle.read()
    for default, topic in (("/thermal/image", value["thermal_topic"]), ("/rgb/image", value["rgb_topic"]),
                           ("/fused/image", value["fused_topic"])):
        text = text.replace(f"Value: {default}\n", f"Value: {_absolute(topic, value['namespace'])}\n")
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
