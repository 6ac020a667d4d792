"""Parameter declarations shared by the nodes: one `Param` per parameter, declared with a
`ParameterDescriptor` (type, description, range), validated at startup and on every change.

Each node module lists its parameters in a `PARAMS` tuple; the README table, the
config file and the tests all read from those lists.
"""
from dataclasses import dataclass
from typing import Any, Optional

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


@dataclass(frozen=True)
class Param:
    name: str
    default: Any                      # its Python type fixes the ROS parameter type
    description: str
    range: Optional[tuple] = None     # (low, high), inclusive, for int / float parameters
    choices: Optional[tuple] = None   # allowed values of a string parameter
    dynamic: bool = False             # False: read at startup only (read_only descriptor)

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(name=self.name, description=self.description,
                                read_only=not self.dynamic)
        if self.choices:
            d.additional_constraints = 'one of: ' + ', '.join(self.choices)
        if self.range and isinstance(self.default, bool):
            raise TypeError(f'{self.name}: a bool parameter cannot have a range')
        if self.range and isinstance(self.default, int):
            d.integer_range = [IntegerRange(from_value=self.range[0], to_value=self.range[1],
                                            step=1)]
        elif self.range:
            d.floating_point_range = [FloatingPointRange(
                from_value=float(self.range[0]), to_value=float(self.range[1]), step=0.0)]
        return d


def declare_parameters(node, params) -> dict:
    """Declare `params` on `node`, rejecting out-of-range or unknown-choice values;
    return their values ({name: value}, as param_values).

    rclpy enforces the descriptor's type and range itself (also for values from a
    --params-file); string choices are checked by a callback that runs for the
    declaration too, so a bad config value makes the node fail at startup with a
    message naming the parameter. Raises rclpy.exceptions.ParameterException.
    """
    by_name = {p.name: p for p in params}

    def check_choices(changed):
        for param in changed:
            spec = by_name.get(param.name)
            if spec and spec.choices and param.value not in spec.choices:
                return SetParametersResult(
                    successful=False,
                    reason=f"{param.name}={param.value!r} is not one of {', '.join(spec.choices)}")
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(check_choices)
    for p in params:
        node.declare_parameter(p.name, p.default, p.descriptor())
    # A misspelt key in a YAML file is otherwise ignored without a word.
    overrides = getattr(node, '_parameter_overrides', {})
    unknown = sorted(set(overrides) - set(by_name) - {'use_sim_time'})
    if unknown:
        node.get_logger().warning(f"ignoring unknown parameters: {', '.join(unknown)}")
    return param_values(node, params)


def param_values(node, params) -> dict:
    """{name: current value} for `params`."""
    return {p.name: node.get_parameter(p.name).value for p in params}


def qos_profile(reliability: str, depth: int) -> QoSProfile:
    """Keep-last QoS from the `qos_reliability` / `qos_depth` parameter values."""
    policy = {'reliable': ReliabilityPolicy.RELIABLE,
              'best_effort': ReliabilityPolicy.BEST_EFFORT}[reliability]
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policy)


# Requests (the /vqa service, `question` messages) are reliable and queued: a burst of
# callers is served in order instead of having its oldest requests overwritten.
REQUEST_PARAMS = (
    Param('request_queue_depth', 100,
          'requests (/vqa calls, questions) queued while the model is busy; beyond this the '
          'oldest waiting one is dropped by DDS. Also the depth of the /vqa responses.',
          range=(1, 10000)),
    Param('max_batch', 64, 'questions (/vqa calls, `question` messages) answered in one model '
          'call at most, from those that queued while the model was busy (1 = one at a time)',
          range=(1, 1024)),
)


def request_qos(depth: int) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE)


# Results go out RELIABLE: a reliable publisher reaches both reliable and best-effort
# subscribers, a best-effort one only the latter (e.g. not `ros2 topic echo` defaults).
OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                        reliability=ReliabilityPolicy.RELIABLE)
# Topics that say what state something is in (`action_status`, `sim_events`): a late
# joiner gets the last few messages, e.g. the sim learns the instruction being followed
# even when it matched the VLA node after the instruction began.
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)

# Service clients. rmw_fastrtps sends every reply of a service to every client's reader,
# and each reader keeps only its history depth of them until the executor takes its own
# (filtering the others out). With the services default depth (10), many concurrent
# clients and a busy executor, a client's own reply was pushed out before it was taken:
# `vla-ros load-test` (50 clients, a CPU burner alongside) lost 26 of 1000 replies; with
# this depth, none. Replies are small: 1000 of them are a few hundred KB at most.
CLIENT_QOS = request_qos(1000)
