"""Recorded data: rosbag2 bags (MCAP or SQLite3) read, fused offline and written, without a ROS install.

- ``messages.py``: sensor_msgs Image / CompressedImage <-> arrays through rosbags' typestore;
- ``topics.py``: which image topic is the thermal camera and which the RGB one;
- ``storage.py``: opening a bag (one clear error when it cannot be read), writing one atomically;
- ``offline.py``: the fusion node's intake and frame path (``sage_ros.stream``), in line, for a bag;
- ``params_file.py``: the node's parameter YAML as a ``FusionParams``;
- ``recording.py``: bags written from image pairs (tests, benchmarks, the demo's ``fused.mcap``);
- ``cli.py``: ``sage-fuse --bag IN --out OUT``, sage-fuse's bag mode (found by the entry point ``sage_fuse.modes``).

Imports no rclpy: rosbags reads and writes the CDR messages itself.
"""
