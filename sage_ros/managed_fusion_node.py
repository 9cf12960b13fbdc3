"""``managed_fusion_node``: the fusion node as a managed (lifecycle) node, for orchestrated robots.

The same node as ``fusion_node`` (same topics, parameters and diagnostics), whose stages run on the
standard lifecycle transitions instead of at start:

==============  ===========================================================================
configure       read and validate the parameters, create the publishers (lifecycle publishers
                for the fused outputs: they publish only while active), load the model (build or
                load its engine: the slow part) and warm it up
activate        subscribe, start the worker and diagnostics
deactivate      unsubscribe, stop the worker and diagnostics; the model stays loaded
cleanup         free the model, destroy the publishers (back to unconfigured)
shutdown        cleanup from any state
==============  ===========================================================================

Parameters marked read-only can be changed while the node is unconfigured (they are read at
configure) and are refused while it is configured. A failing transition (a bad parameter or a model
that does not load at configure) logs the reason and returns FAILURE, which leaves the node in its
previous state.

    ros2 run sage_ros managed_fusion_node
    ros2 lifecycle set /sage_fusion configure && ros2 lifecycle set /sage_fusion activate
    ros2 launch sage_ros fusion.launch.py managed:=true   # configured and activated by the launch file

nav2's lifecycle manager also expects each managed node to open a bond (the ``bond`` package, C++ and
rospy only: there is no rclpy bond), and aborts bringup after ``bond_timeout`` (4 s) without one: give
this node its own lifecycle manager with ``bond_timeout: 0.0``, or manage it from the launch file.
"""

from __future__ import annotations

import sys

from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn

from sage_core.errors import ConfigError
from sage_ros.fusion_node import FusionNode
from sage_ros.node.lifetime import run_node


class ManagedFusionNode(LifecycleNodeMixin, FusionNode):
    """:class:`FusionNode` driven by lifecycle transitions (see the module docstring)."""

    LOCKS_READ_ONLY = False  # read-only parameters are set while unconfigured and read at configure

    def __init__(self, node_name: str = "sage_fusion", **kwargs) -> None:
        FusionNode.__init__(self, node_name, autostart=False, **kwargs)
        LifecycleNodeMixin.__init__(self, enable_communication_interface=True)

    def _create_output_publisher(self, msg_type, topic: str, qos):
        return self.create_lifecycle_publisher(msg_type, topic, qos)

    def _destroy_output_publisher(self, publisher) -> None:
        self.destroy_lifecycle_publisher(publisher)

    def _attempt(self, transition: str, stage) -> TransitionCallbackReturn:
        """Run one stage; a ConfigError (or any failure) is logged and answers FAILURE."""
        try:
            stage()
        except ConfigError as exc:
            self.get_logger().error(f"{transition} failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # noqa: BLE001 - a transition must answer, not take the process down
            self.get_logger().error(f"{transition} failed: {type(exc).__name__}: {exc}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = self._attempt("configure", self.configure)
        if result != TransitionCallbackReturn.SUCCESS:
            self.cleanup()  # whatever configure made before failing
        return result

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        LifecycleNodeMixin.on_activate(self, state)  # the publishers first: the first frame must go out
        result = self._attempt("activate", self.activate)
        if result != TransitionCallbackReturn.SUCCESS:
            self.deactivate()
            LifecycleNodeMixin.on_deactivate(self, state)
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.deactivate()
        return LifecycleNodeMixin.on_deactivate(self, state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error in state {state.label}: cleaning up")
        self.cleanup()
        return TransitionCallbackReturn.SUCCESS


def main(argv: list[str] | None = None) -> int:
    return run_node(ManagedFusionNode, "managed_fusion_node", argv, __doc__)


if __name__ == "__main__":
    sys.exit(main())
