"""sage_ros: thermal + visible image fusion (SAGE) for ROS 2.

An ament_python package: ``colcon build`` on a ROS 2 machine and ``pip install``
anywhere use this same file. ROS 2 itself comes from the system on a robot, or
from the ``[ros]`` extra (ROS 2 Kilted wheels) on a plain Python machine.
"""

from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "sage_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Real-time infrared + visible image fusion (SAGE, CVPR 2025) for ROS 2",
    # colcon --symlink-install runs this from build/sage_ros, where README.md is not linked.
    long_description=(Path(__file__).resolve().parent / "README.md").read_text(encoding="utf-8")
    if (Path(__file__).resolve().parent / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["sage_core", "sage_core.*", "sage_ros", "sage_ros.*"]),
    package_data={"sage_core": ["weights/*.pt", "weights/*.md"], "sage_ros.harness": ["*.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
    ],
    install_requires=[
        "torch==2.14.1",
        "torchvision==0.29.1",
        "numpy>=1.24,<3",  # a range: a system ROS 2 brings its own NumPy
        "opencv-python-headless==5.0.0.93",
        "tqdm==4.70.1",
        "PyYAML==6.0.4",
        # rosbag2 (MCAP, SQLite3) read and written in pure Python for `sage-fuse --bag` and the demo's
        # recording: no ROS install needed, so it is a plain dependency, not part of the [ros] extra.
        "rosbags==0.11.9",
    ],
    extras_require={
        # ROS 2 Kilted as wheels, for machines without a system ROS 2 install.
        "ros": [
            "ros-kilted-rclpy[fastrtps]==9.1.2",
            "ros-kilted-sensor-msgs==5.5.1",
            "ros-kilted-std-msgs==5.5.1",
            "ros-kilted-diagnostic-msgs==5.5.1",
        ],
        "sam": ["segment-anything==1.0"],
        # Training and evaluation tools (training/): SAM priors, TensorBoard logs, metric charts.
        "train": ["segment-anything==1.0", "tensorboard==2.21.0", "matplotlib==3.11.2"],
        # Exported models: ONNX (export and checks) and ONNX Runtime (a CPU/CUDA inference backend).
        "export": ["onnx==1.23.2", "onnxruntime==1.32.0"],
        # TensorRT through torch-tensorrt: on a CUDA machine whose TensorRT matches (Jetson: NVIDIA's wheels).
        "tensorrt": ["torch-tensorrt"],
        "dev": ["pytest==9.2.0", "hypothesis==6.148.0", "psutil==7.2.2", "ruff==0.17.6"],
    },
    entry_points={
        "console_scripts": [
            "sage-fuse = sage_core.cli.fuse:main",  # image files; other modes from sage_fuse.modes
            "sage-calibrate = sage_core.cli.calibrate:main",
            "sage-demo = sage_ros.harness.demo:main",
            "fusion_node = sage_ros.fusion_node:main",
            "managed_fusion_node = sage_ros.managed_fusion_node:main",
        ],
        # sage-fuse --bag: the bag mode, found by sage_core.cli.fuse without importing sage_ros by name.
        "sage_fuse.modes": ["bag = sage_ros.bags.cli"],
    },
    zip_safe=True,
)
