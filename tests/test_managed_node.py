"""The managed (lifecycle) fusion node, driven over loopback DDS through its lifecycle services."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed: pip install -e .[ros]")

import rclpy
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from sage_core.synthetic import SyntheticScene
from sage_ros.harness.probe import NodeSource
from sage_ros.managed_fusion_node import ManagedFusionNode
from tests.ros_harness import make_image, wait_for

pytestmark = pytest.mark.dds  # starts ROS nodes: a DDS domain of its own per test


FRAME = SyntheticScene(160, 128, seed=3).frame(0.5)


class ManagedLoopback:
    """A managed fusion node and a probe that drives its transitions and sends / receives images."""

    def __init__(self, **params) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        overrides = [Parameter(name, value=value) for name, value in
                     {"warmup": False, "backend": "torch", "max_stamp_jump": 1000.0, **params}.items()]
        self.node = ManagedFusionNode(context=self.context, namespace="/managed", parameter_overrides=overrides)
        self.probe = rclpy.create_node("lifecycle_probe", namespace="/managed", context=self.context)
        self.fused: list[Image] = []
        source = NodeSource(self.probe, "sage_fusion", "/managed")  # this test's node only
        self.probe.create_subscription(Image, "fused/image", source.only("fused/image", self.fused.append), 50)
        self.thermal_pub = self.probe.create_publisher(Image, "thermal/image", qos_profile_sensor_data)
        self.rgb_pub = self.probe.create_publisher(Image, "rgb/image", qos_profile_sensor_data)
        self.change = self.probe.create_client(ChangeState, "sage_fusion/change_state")
        self.get = self.probe.create_client(GetState, "sage_fusion/get_state")
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)
        self._spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self._spinner.start()
        assert self.change.wait_for_service(timeout_sec=10.0) and self.get.wait_for_service(timeout_sec=10.0)

    def call(self, client, request):
        future = client.call_async(request)
        deadline = time.monotonic() + 30.0
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert future.done(), "lifecycle service did not answer"
        return future.result()

    def transition(self, transition_id: int) -> bool:
        request = ChangeState.Request()
        request.transition.id = transition_id
        return self.call(self.change, request).success

    def state(self) -> int:
        return self.call(self.get, GetState.Request()).current_state.id

    def node_subscribes(self) -> bool:
        return self.thermal_pub.get_subscription_count() > 0 and self.rgb_pub.get_subscription_count() > 0

    def send_pairs(self, count: int) -> None:
        for _ in range(count):
            stamp = time.time_ns()
            self.thermal_pub.publish(make_image(FRAME.thermal_mono16, "mono16", stamp, "thermal"))
            self.rgb_pub.publish(make_image(FRAME.visible, "bgr8", stamp, "rgb"))
            time.sleep(0.05)

    def send_until_fused(self, total: int, timeout: float = 10.0) -> bool:
        """Pairs until ``total`` fused images have arrived (best effort: the first may precede discovery)."""
        deadline = time.monotonic() + timeout
        while len(self.fused) < total and time.monotonic() < deadline:
            self.send_pairs(1)
        return self.wait_for(lambda: len(self.fused) >= total, timeout=1.0)

    def wait_for(self, condition, timeout: float = 10.0) -> bool:
        return wait_for(condition, timeout)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self._spinner.join(timeout=5.0)
        self.node.destroy_node()
        self.probe.destroy_node()
        rclpy.shutdown(context=self.context)


@pytest.fixture
def managed(request):
    loop = ManagedLoopback(**getattr(request, "param", {}))
    yield loop
    loop.close()


def test_the_transitions_load_subscribe_pause_and_free_as_the_lifecycle_says(managed):
    assert managed.state() == State.PRIMARY_STATE_UNCONFIGURED
    assert not managed.node_subscribes() and managed.node.pipeline is None

    assert managed.transition(Transition.TRANSITION_CONFIGURE)
    assert managed.state() == State.PRIMARY_STATE_INACTIVE
    model = managed.node.pipeline
    assert managed.node.params is not None and model is not None  # the model (an engine build) loads at configure
    assert not managed.node_subscribes()

    assert managed.transition(Transition.TRANSITION_ACTIVATE)
    assert managed.state() == State.PRIMARY_STATE_ACTIVE
    assert managed.node.pipeline is model  # activate only subscribes and starts the worker
    assert managed.wait_for(managed.node_subscribes)
    assert managed.wait_for(lambda: managed.node.outputs.wanted())
    assert managed.send_until_fused(3)
    assert (managed.fused[-1].height, managed.fused[-1].width) == (128, 160)

    assert managed.transition(Transition.TRANSITION_DEACTIVATE)
    assert managed.state() == State.PRIMARY_STATE_INACTIVE
    assert managed.wait_for(lambda: not managed.node_subscribes())
    assert managed.node.pipeline is model  # deactivate keeps the model
    published = len(managed.fused)
    managed.send_pairs(3)
    time.sleep(0.3)
    assert len(managed.fused) == published

    assert managed.transition(Transition.TRANSITION_ACTIVATE)
    assert managed.node.pipeline is model  # not loaded again
    assert managed.wait_for(managed.node_subscribes)
    assert managed.send_until_fused(published + 3)

    assert managed.transition(Transition.TRANSITION_DEACTIVATE)
    assert managed.transition(Transition.TRANSITION_CLEANUP)
    assert managed.state() == State.PRIMARY_STATE_UNCONFIGURED
    assert managed.node.pipeline is None and managed.node.outputs is None
    assert managed.wait_for(lambda: managed.probe.count_publishers("/managed/fused/image") == 0)
    # Unconfigured again: read-only parameters may change, and the next configure reads them.
    results = managed.node.set_parameters([Parameter("output_encoding", value="mono8"),
                                            Parameter("reference_camera", value="thermal")])
    assert all(result.successful for result in results)
    assert managed.transition(Transition.TRANSITION_CONFIGURE)
    assert managed.node.params.reference_camera == "thermal"
    assert managed.transition(Transition.TRANSITION_CLEANUP)

    assert managed.transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    assert managed.state() == State.PRIMARY_STATE_FINALIZED


@pytest.mark.parametrize("managed", [{"output_width": 320}], indirect=True)
def test_configure_refuses_bad_parameters_and_stays_unconfigured_until_they_are_fixed(managed):
    assert not managed.transition(Transition.TRANSITION_CONFIGURE)
    assert managed.state() == State.PRIMARY_STATE_UNCONFIGURED
    assert managed.node.set_parameters([Parameter("output_height", value=256)])[0].successful
    assert managed.transition(Transition.TRANSITION_CONFIGURE)
    refused = managed.node.set_parameters([Parameter("output_height", value=128)])[0]
    assert not refused.successful and "read-only while configured" in refused.reason
    assert managed.transition(Transition.TRANSITION_ACTIVATE)
    assert managed.wait_for(managed.node_subscribes)
    assert managed.wait_for(lambda: managed.node.outputs.wanted())
    assert managed.send_until_fused(2)
    assert (managed.fused[-1].width, managed.fused[-1].height) == (320, 256)


@pytest.mark.parametrize("managed", [{"model_file_path": "/nonexistent/model.pt"}], indirect=True)
def test_a_model_that_does_not_load_fails_configure_and_the_node_stays_unconfigured(managed):
    assert not managed.transition(Transition.TRANSITION_CONFIGURE)
    assert managed.state() == State.PRIMARY_STATE_UNCONFIGURED
    assert managed.node.pipeline is None and managed.node.outputs is None and not managed.node_subscribes()
    assert managed.node.set_parameters([Parameter("model_file_path", value="")])[0].successful  # the default
    assert managed.transition(Transition.TRANSITION_CONFIGURE)
    assert managed.transition(Transition.TRANSITION_ACTIVATE)
    assert managed.wait_for(managed.node_subscribes)
