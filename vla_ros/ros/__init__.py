"""ROS 2 nodes (what `ros2 run vla_ros <executable>` starts) and the modules they are built
from; they wire camera topics to vla_ros.engine (no model code here). Programs that drive
these nodes (benchmarks, bags, demos) live in vla_ros.ros_tools."""
