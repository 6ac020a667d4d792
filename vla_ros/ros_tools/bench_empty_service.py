"""`empty_vqa`, the floor of `vla-ros bench-ros`: the VQA service answering at once.

Run as its own process (`python -m vla_ros.ros_tools.bench_empty_service`) next to the
real `vqa_service`; the difference between the two round trips is the work the real node
does.
"""
import sys

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from ..srv import VQA


class EmptyVQANode(Node):
    """`empty_vqa`: the VQA service type answering at once, on the same kind of executor
    as the real service (vla_ros/ros/runner.py's single-threaded one), so the difference
    between the two round trips is the work the real node does."""

    def __init__(self):
        super().__init__('bench_empty_vqa')
        self.create_service(VQA, 'empty_vqa', self._on_request)

    def _on_request(self, request, response):
        response.success, response.answer = True, 'yes'
        return response


def main(args=None) -> int:
    rclpy.init(args=args)
    node = EmptyVQANode()
    executor = SingleThreadedExecutor()   # = runner.make_executor (runner imports torch)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown(timeout_sec=5.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
