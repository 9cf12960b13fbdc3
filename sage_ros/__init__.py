"""sage_ros: the ROS 2 layer over sage_core, laid out by role (docs/architecture.md).

The nodes (``fusion_node``, ``managed_fusion_node``) and their parameter table at the top; ``node/``: what
faces ROS (subscriptions, publishers, /diagnostics); ``stream/``: the node's rules without ROS (intake,
pairing, the frame path, workers, statistics); ``codec/``: messages <-> arrays; ``bags/``: recorded data;
``harness/``: the demo and what benchmarks and tests use to drive a running node.
"""
