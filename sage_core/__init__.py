"""sage_core: thermal + visible image fusion (SAGE), free of any ROS dependency.

Start at :class:`sage_core.fuser.Fuser`, the inference API every tool uses.
"""

__version__ = "0.1.0"
