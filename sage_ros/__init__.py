"""sage_ros: the ROS 2 layer over sage_core (fusion node, time pairing, image conversion) and the demo."""
