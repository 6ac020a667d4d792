"""Control logic between a policy and `cmd_vel`: the language of instructions, safety
limits and the action loop (no ROS)."""
