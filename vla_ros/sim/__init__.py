"""Simulated robot: a 2D arena, its camera, an expert driver, demonstrations, evaluation.

Pure Python / numpy / OpenCV; no ROS (vla_ros/ros/sim_node.py wraps it).
"""
