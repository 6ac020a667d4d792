"""ROS 2 bags without ROS: read, write, describe, generate test fixtures, score replays."""
