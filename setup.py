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
    package_data={"sage_core": ["weights/*.pt", "weights/*.md"], "sage_ros": ["*.xml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        # The Fast DDS profile for large images (sage_ros/dds_profile.py): where ROS users look for it too.
        (f"share/{PACKAGE}/config", [*glob("config/*.yaml"), f"{PACKAGE}/fastdds_loopback.xml"]),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
    ],
    # Ranges, not pins: a robot brings its own PyTorch (JetPack's CUDA wheel), NumPy and OpenCV (Ubuntu's apt),
    # and pip must not replace them. Our own environment pins exact versions in constraints/ (run.sh), and the
    # test command also runs the library and node tests with the oldest versions claimed here
    # (constraints/oldest.txt). OpenCV is imported as cv2 whoever installed it (apt's python3-opencv, a pip
    # wheel), so it is not a requirement a pip install could satisfy by shadowing the system's: the [opencv]
    # extra installs a wheel where none is present.
    install_requires=[
        "torch>=2.3",  # JetPack 6.0's PyTorch 2.3 is the oldest claimed
        "numpy>=1.21",  # Ubuntu 22.04 / Humble / JetPack 6 ship 1.21, Ubuntu 24.04 / Jazzy 1.26
        "tqdm>=4.62",
        "PyYAML>=5.4",  # Ubuntu 22.04's python3-yaml
        # rosbag2 (MCAP, SQLite3) read and written in pure Python for `sage-fuse --bag` and the demo's
        # recording: no ROS install needed, so it is a plain dependency, not part of the [ros] extra.
        "rosbags>=0.11,<0.12",
    ],
    extras_require={
        # ROS 2 Kilted as wheels, for machines without a system ROS 2 install.
        # OpenCV as a pip wheel, for machines without apt's python3-opencv.
        "opencv": ["opencv-python-headless>=4.5"],
        "ros": [
            "ros-kilted-rclpy[fastrtps]>=9.1",
            "ros-kilted-sensor-msgs>=5.5",
            "ros-kilted-std-msgs>=5.5",
            "ros-kilted-diagnostic-msgs>=5.5",
            "ros-kilted-lifecycle-msgs>=2.3",
            "ros-kilted-ament-index-python>=1.11",
        ],
        "sam": ["segment-anything>=1.0", "torchvision>=0.18"],
        # Training and evaluation tools (training/): SAM priors, TensorBoard logs, metric charts.
        "train": ["segment-anything>=1.0", "torchvision>=0.18", "tensorboard>=2.14", "matplotlib>=3.5"],
        # Exported models: ONNX (export and checks) and ONNX Runtime (a CPU/CUDA inference backend).
        "export": ["onnx>=1.14", "onnxruntime>=1.16"],
        # TensorRT through PyPI's torch-tensorrt: x86_64 PCs whose torch it matches. Never on a Jetson: it pins its
        # own torch and TensorRT and would replace JetPack's (README, "Jetson": NVIDIA's builds, or ONNX Runtime).
        "tensorrt": ["torch-tensorrt"],
        # Tests: the launch tests run the real launch system (../shared/vendor/ros2_launch, put on the path by
        # the tests), which needs osrf-pycommon beside it (and lark, which rosidl brings as lark-parser).
        "dev": ["pytest>=8", "hypothesis>=6.100", "psutil>=5.9", "ruff==0.17.6", "osrf-pycommon>=2.0"],
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
