"""``launch/fusion.launch.py`` run for real: the installed launch file (colcon workspace) through
``launch.LaunchService`` with the real ``launch`` / ``launch_ros``, as ``ros2 launch sage_ros fusion.launch.py``
runs it, and a probe node checking the running node from outside (graph, parameters, lifecycle, data)."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy not installed (install the [ros] extra or source ROS 2)")

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.srv import GetState
from rcl_interfaces.srv import GetParameters
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from sage_core.synthetic import SyntheticScene
from sage_ros.codec.compressed import encode_png
from sage_ros.harness.probe import NodeSource, wait_for
from tests.process_guard import stop_process_group
from tests.ros_harness import make_compressed, make_image
from tests.ros_workspace import launch_pythonpath

pytestmark = pytest.mark.dds  # each test: a DDS domain of its own, shared by its launch and its probe

# What `ros2 launch PACKAGE FILE args...` does: include the file with the arguments, run the service.
ROS2_LAUNCH = """
import sys
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
path = get_package_share_directory('sage_ros') + '/launch/fusion.launch.py'
arguments = [tuple(a.split(':=', 1)) for a in sys.argv[1:]]
service = LaunchService(argv=sys.argv[1:])
service.include_launch_description(LaunchDescription([
    IncludeLaunchDescription(PythonLaunchDescriptionSource(path), launch_arguments=arguments)]))
sys.exit(service.run())
"""
SECOND = 1_000_000_000


class Launched:
    """``ros2 launch sage_ros fusion.launch.py ARGS`` in a process of its own, and a probe node."""

    def __init__(self, workspace, stub_root, *arguments: str) -> None:
        env = workspace.environment(launch_pythonpath(stub_root))
        env["RCUTILS_COLORIZED_OUTPUT"] = "0"
        # In a session of its own, as in a terminal of its own: close() stops the whole group as Ctrl-C does.
        self.process = subprocess.Popen([sys.executable, "-c", ROS2_LAUNCH, *arguments], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.probe = rclpy.create_node("launch_probe", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.probe)
        self.output = ""

    def spin(self) -> None:
        self.executor.spin_once(timeout_sec=0.05)

    def wait_for(self, condition, timeout: float = 40.0) -> bool:
        return wait_for(condition, timeout, self.spin)

    def node_running(self, name: str, namespace: str) -> bool:
        return (name, namespace) in self.probe.get_node_names_and_namespaces()

    def call(self, service_type, name: str, request, timeout: float = 20.0):
        client = self.probe.create_client(service_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f"no service {name}"
        future = client.call_async(request)
        assert self.wait_for(future.done, timeout), f"{name} did not answer"
        return future.result()

    def parameter(self, node: str, name: str):
        from rclpy.parameter import parameter_value_to_python

        response = self.call(GetParameters, f"{node}/get_parameters", GetParameters.Request(names=[name]))
        return parameter_value_to_python(response.values[0])

    def close(self) -> str:
        """Stop the launch and the nodes it started as Ctrl-C does; what it printed."""
        if self.probe is not None:
            self.executor.shutdown(timeout_sec=2.0)
            self.probe.destroy_node()
            rclpy.shutdown(context=self.context)
            self.probe = None
            self.output = stop_process_group(self.process)
        return self.output


@pytest.fixture()
def launch(symlink_workspace, tmp_path):
    started = []

    def start(*arguments: str) -> Launched:
        started.append(Launched(symlink_workspace, tmp_path / "stub", *arguments))
        return started[-1]

    yield start
    for launched in started:  # a test that failed before its own close()
        launched.close()


def test_plain_launch_with_use_sim_time(launch):
    launched = launch("use_sim_time:=true")
    try:
        assert launched.wait_for(lambda: launched.node_running("sage_fusion", "/")), "the node never appeared"
        assert launched.parameter("/sage_fusion", "use_sim_time") is True
        assert launched.parameter("/sage_fusion", "slop") == pytest.approx(0.05)  # the packaged params_file
    finally:
        output = launched.close()
    assert "fusing /thermal/image (raw) + /rgb/image (raw) -> /fused/image" in output  # info level: the default


def test_namespaced_launch_with_remaps_compressed_transport_and_log_level(launch):
    launched = launch("namespace:=front", "thermal_topic:=/flir/image", "thermal_transport:=compressed",
                      "fused_topic:=out/fused", "log_level:=warn")
    probe = launched.probe
    fused, diagnostics = [], []
    source = NodeSource(probe, "sage_fusion", "/front")  # the launched node's messages only
    probe.create_subscription(Image, "/front/out/fused", source.only("/front/out/fused", fused.append), 10)
    probe.create_subscription(DiagnosticArray, "/diagnostics", source.only("/diagnostics", diagnostics.append), 10)
    thermal = probe.create_publisher(CompressedImage, "/flir/image/compressed", qos_profile_sensor_data)
    rgb = probe.create_publisher(Image, "/front/rgb/image", qos_profile_sensor_data)
    try:
        assert launched.wait_for(lambda: launched.node_running("sage_fusion", "/front")), "the node never appeared"
        assert launched.wait_for(lambda: thermal.get_subscription_count() and rgb.get_subscription_count())
        subscribed = {name for name, _ in probe.get_subscriber_names_and_types_by_node("sage_fusion", "/front")}
        assert {"/flir/image/compressed", "/flir/camera_info", "/front/rgb/image",
                "/front/rgb/camera_info"} <= subscribed
        published = {name for name, _ in probe.get_publisher_names_and_types_by_node("sage_fusion", "/front")}
        assert {"/front/out/fused", "/front/out/fused/compressed", "/front/out/camera_info"} <= published
        scene = SyntheticScene(96, 80, seed=3).frame(0.5)
        fmt, data = encode_png(scene.thermal_mono16, "mono16")
        stamp = 0

        def send_pair() -> bool:
            nonlocal stamp
            stamp += SECOND // 10
            thermal.publish(make_compressed(data, fmt, stamp, "flir"))
            rgb.publish(make_image(scene.visible, "bgr8", stamp, "rgb"))
            launched.spin()
            return bool(fused)

        assert wait_for(send_pair, 40.0, lambda: time.sleep(0.1)), "nothing fused through the launched node"
        assert (fused[-1].width, fused[-1].height) == (96, 80)
        assert np.frombuffer(bytes(fused[-1].data), np.uint8).std() > 0
        assert launched.wait_for(lambda: any(s.name == "front/sage_fusion: fusion"
                                             for array in diagnostics for s in array.status))
    finally:
        output = launched.close()
    assert "fusing /flir/image/compressed" not in output  # an info line: log_level warn applies under front/


def test_managed_launch_autostarts_to_active(launch):
    launched = launch("managed:=true", "namespace:=robot")
    try:
        assert launched.wait_for(lambda: launched.node_running("sage_fusion", "/robot"))

        def active() -> bool:
            state = launched.call(GetState, "/robot/sage_fusion/get_state", GetState.Request())
            return state.current_state.label == "active"

        assert wait_for(active, 60.0, lambda: time.sleep(0.2)), "the managed node never reached active"
    finally:
        launched.close()
