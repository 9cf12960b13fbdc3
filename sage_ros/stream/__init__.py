"""The fusion node's rules without ROS: frames, guards, pairing, workers, statistics, the alignment watch."""
