"""ROS-facing pieces of the fusion node: subscriptions, publishers, watchdog and /diagnostics."""
