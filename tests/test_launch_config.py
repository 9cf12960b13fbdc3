"""Launch file, parameter file and rviz view agree with the node's declared parameters."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

from sage_ros.parameters import FusionParams, coerce
from sage_ros.parameters_yaml import render_yaml

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "fusion.launch.py"


def _load_launch_file(monkeypatch, share: Path):
    """The launch file, executed against small stand-ins for ``launch`` / ``launch_ros`` that record what it
    builds, so its logic is tested here without a ROS install (the real modules are used when present)."""
    class Recorded:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

    class DeclareLaunchArgument(Recorded):
        @property
        def name(self):
            return self.args[0]

    class LaunchConfiguration(Recorded):
        def perform(self, context):
            return context[self.args[0]]

    class FindPackageShare(Recorded):
        def perform(self, context):
            return str(share)

    class LifecycleNode(Recorded):
        pass

    class EmitEvent(Recorded):
        pass

    class RegisterEventHandler(Recorded):
        pass

    class ChangeState(Recorded):
        pass

    class OnStateTransition(Recorded):
        pass

    fakes = {
        "launch": types.SimpleNamespace(LaunchDescription=lambda entities: types.SimpleNamespace(entities=entities)),
        "launch.actions": types.SimpleNamespace(
            DeclareLaunchArgument=DeclareLaunchArgument, EmitEvent=EmitEvent,
            RegisterEventHandler=RegisterEventHandler,
            OpaqueFunction=lambda function: types.SimpleNamespace(function=function)),
        "launch.events": types.SimpleNamespace(matches_action=lambda action: ("matches", action)),
        "launch.event_handlers": types.SimpleNamespace(OnShutdown=Recorded),
        "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=LaunchConfiguration),
        "launch_ros": types.SimpleNamespace(),
        "launch_ros.actions": types.SimpleNamespace(Node=Recorded, LifecycleNode=LifecycleNode),
        "launch_ros.event_handlers": types.SimpleNamespace(OnStateTransition=OnStateTransition),
        "launch_ros.events": types.SimpleNamespace(),
        "launch_ros.events.lifecycle": types.SimpleNamespace(ChangeState=ChangeState),
        "launch_ros.substitutions": types.SimpleNamespace(FindPackageShare=FindPackageShare),
    }
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("fusion_launch_under_test", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_arguments_come_from_the_parameter_table(monkeypatch, tmp_path):
    module = _load_launch_file(monkeypatch, tmp_path)
    names = [name for name, _, _ in module.ARGUMENTS]
    assert len(names) == len(set(names))
    assert all(description.strip() for _, _, description in module.ARGUMENTS)
    assert {"namespace", "params_file", "rviz", "thermal_topic", "rgb_topic", "fused_topic"} <= set(names)
    exposed = {f.name for f in dataclasses.fields(FusionParams) if f.metadata["launch"]}
    assert exposed == set(module.PARAMETER_ARGUMENTS) and exposed <= set(names)
    assert {"model_file_path", "engine_cache_dir", "slop"} <= exposed and "engine_file_path" not in exposed
    description = module.generate_launch_description()
    declared = [e.name for e in description.entities if hasattr(e, "name")]
    assert declared == names


def test_launch_setup_passes_parameters_remaps_and_rviz(monkeypatch, tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "rviz").mkdir()
    (tmp_path / "rviz" / "fusion.rviz").write_text((REPO / "rviz" / "fusion.rviz").read_text())
    (tmp_path / "config" / "fusion.yaml").write_text((REPO / "config" / "fusion.yaml").read_text())
    module = _load_launch_file(monkeypatch, tmp_path)
    context = {name: default for name, default, _ in module.ARGUMENTS}
    context.update(namespace="front", thermal_topic="/boson/image_raw", slop="0.1", model_file_path="/m/a.onnx",
                   rviz="true")
    fusion, rviz, cleanup = module._launch_setup(context)
    kwargs = fusion.kwargs
    assert kwargs["executable"] == "fusion_node" and kwargs["namespace"] == "front"
    params_file, overrides = kwargs["parameters"]
    assert params_file == str(tmp_path / "config" / "fusion.yaml")
    # empty arguments leave params_file's; use_sim_time is always the argument's (default false)
    assert overrides == {"slop": 0.1, "model_file_path": "/m/a.onnx", "use_sim_time": False}
    # one remap per base topic: the node derives <base>/compressed and camera_info from the resolved base
    assert kwargs["remappings"] == [("thermal/image", "/boson/image_raw"), ("rgb/image", "rgb/image"),
                                    ("fused/image", "fused/image"), ("rgb/depth", "rgb/depth")]
    assert kwargs["arguments"] == ["--ros-args", "--log-level", "front.sage_fusion:=info"]
    view = Path(rviz.kwargs["arguments"][1]).read_text()
    assert "Value: /boson/image_raw\n" in view and "Value: /front/rgb/image\n" in view
    assert "Fixed Frame: base_link\n" in view
    assert module._logger_name("/a/b/", "sage_fusion") == "a.b.sage_fusion"
    cleanup.args[0].kwargs["on_shutdown"](None, None)  # the rewritten view is removed when the launch ends
    assert not Path(rviz.kwargs["arguments"][1]).exists()


def test_rviz_view_follows_compressed_transports_and_the_fixed_frame(monkeypatch, tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "rviz").mkdir()
    (tmp_path / "rviz" / "fusion.rviz").write_text((REPO / "rviz" / "fusion.rviz").read_text())
    (tmp_path / "config" / "fusion.yaml").write_text("/**:\n  ros__parameters:\n    rgb_transport: compressed\n")
    module = _load_launch_file(monkeypatch, tmp_path)
    context = {name: default for name, default, _ in module.ARGUMENTS}
    context.update(rviz="true", thermal_transport="compressedDepth", rviz_fixed_frame="flir_optical")
    _, rviz, cleanup = module._launch_setup(context)
    view = Path(rviz.kwargs["arguments"][1]).read_text()
    # rviz2's image display picks the transport from the topic's last name (image_transport naming)
    assert "Value: /thermal/image/compressedDepth\n" in view  # the launch argument
    assert "Value: /rgb/image/compressed\n" in view  # params_file's value
    assert "Value: /fused/image\n" in view and "Fixed Frame: flir_optical\n" in view
    cleanup.args[0].kwargs["on_shutdown"](None, None)
    assert module._typed("false", bool) is False and module._typed("7", int) == 7


@pytest.mark.parametrize("autostart", ["true", "false"])
def test_managed_true_launches_the_lifecycle_node_and_autostart_configures_then_activates_it(
        monkeypatch, tmp_path, autostart):
    pytest.importorskip("lifecycle_msgs", reason="lifecycle_msgs comes with rclpy ([ros] extra or ROS 2)")
    from lifecycle_msgs.msg import Transition

    module = _load_launch_file(monkeypatch, tmp_path)
    context = {name: default for name, default, _ in module.ARGUMENTS}
    context.update(managed="true", autostart=autostart, namespace="front")
    actions = module._launch_setup(context)
    node = actions[0]
    assert type(node).__name__ == "LifecycleNode"
    assert node.kwargs["executable"] == "managed_fusion_node" and node.kwargs["name"] == "sage_fusion"
    assert node.kwargs["namespace"] == "front" and ("thermal/image", "thermal/image") in node.kwargs["remappings"]
    if autostart == "false":
        assert len(actions) == 1
        return
    handler, configure = actions[1], actions[2]
    assert configure.kwargs["event"].kwargs == {"lifecycle_node_matcher": ("matches", node),
                                                "transition_id": Transition.TRANSITION_CONFIGURE}
    transition = handler.args[0].kwargs
    assert transition["target_lifecycle_node"] is node and transition["goal_state"] == "inactive"
    assert transition["entities"][0].kwargs["event"].kwargs["transition_id"] == Transition.TRANSITION_ACTIVATE


def test_parameter_file_is_the_rendered_table():
    assert (REPO / "config" / "fusion.yaml").read_text() == render_yaml(), \
        "config/fusion.yaml is stale: python -m sage_ros.parameters_yaml > config/fusion.yaml"
    values = yaml.safe_load(render_yaml())["/**"]["ros__parameters"]
    defaults = FusionParams()
    assert set(values) == {f.name for f in dataclasses.fields(FusionParams)}
    for name, value in values.items():
        assert coerce(name, value) == getattr(defaults, name), name


def test_rviz_view_shows_thermal_rgb_and_fused():
    view = yaml.safe_load((REPO / "rviz" / "fusion.rviz").read_text())
    displays = view["Visualization Manager"]["Displays"]
    topics = {d["Name"]: d["Topic"]["Value"] for d in displays if d["Class"] == "rviz_default_plugins/Image"}
    assert topics == {"Thermal": "/thermal/image", "RGB": "/rgb/image", "Fused": "/fused/image"}
    launch_source = LAUNCH.read_text()
    for topic in topics.values():  # the launch file rewrites exactly these for namespaces and remaps
        assert f'"{topic}"' in launch_source


def test_launch_description_loads_when_launch_is_installed():
    pytest.importorskip("launch_ros", reason="launch / launch_ros are not installed here (they come with ROS 2)")
    from launch.actions import DeclareLaunchArgument

    from launch import LaunchDescription

    spec = importlib.util.spec_from_file_location("fusion_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    declared = [e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)]
    assert declared == [name for name, _, _ in module.ARGUMENTS]
    assert module._sibling("/boson/image_raw", "camera_info") == "/boson/camera_info"
    assert module._absolute("thermal/image", "front") == "/front/thermal/image"


def test_wheel_installs_share_files_weights_and_executables(tmp_path):
    """What colcon and pip install: share/ files, the ament index marker, weights, console scripts."""
    import subprocess
    import sys
    import zipfile

    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and "No module named" in done.stderr:
        pytest.skip(f"cannot build a wheel here: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("sage_ros-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = next(n.split("/")[0] for n in names if n.endswith(".data/data/share/sage_ros/package.xml"))
    for path in ("share/ament_index/resource_index/packages/sage_ros", "share/sage_ros/launch/fusion.launch.py",
                 "share/sage_ros/config/fusion.yaml", "share/sage_ros/rviz/fusion.rviz",
                 "share/sage_ros/config/fastdds_loopback.xml"):
        assert f"{data}/data/{path}" in names, path
    assert {"sage_core/weights/affine_fuse_default.pt", "sage_ros/fastdds_loopback.xml"} <= names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    for script in ("sage-fuse = sage_core.cli.fuse:main", "sage-demo = sage_ros.harness.demo:main",
                   "fusion_node = sage_ros.fusion_node:main",
                   "managed_fusion_node = sage_ros.managed_fusion_node:main"):
        assert script in entry_points
    cfg = (REPO / "setup.cfg").read_text()  # colcon: executables where `ros2 run` looks
    assert "script_dir=$base/lib/sage_ros" in cfg and "install_scripts=$base/lib/sage_ros" in cfg
