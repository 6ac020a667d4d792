"""Control logic between a policy and `cmd_vel`: safety limits and the action loop (no ROS)."""
