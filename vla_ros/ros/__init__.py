"""ROS 2 layer: nodes that wire camera topics to vla_ros.engine (no model code here)."""
