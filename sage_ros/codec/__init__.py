"""Messages <-> arrays without ROS: sensor_msgs/Image and its CDR bytes, the compressed transports, camera_info."""
