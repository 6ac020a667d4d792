"""`ground` -> `groundings` on the VLA node over real DDS, with the bundled checkpoint.

A phrase is grounded in the latest camera frame (a held-out 2D arena frame whose target
positions the simulator knows) and published with that frame's header; refusals are
messages with a reason; while an instruction runs, the policy's own grounding of its
target is published too. Waits are upper bounds against hangs, never timing assertions.
"""
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from std_msgs.msg import String  # noqa: E402

from test_ros_nodes import header, Probe, same_header, start, wait_for  # noqa: E402
from vla_ros.msg import Grounding  # noqa: E402
from vla_ros.ros.image_conversion import rgb_to_image  # noqa: E402
from vla_ros.ros.vla_node import VLANode  # noqa: E402
from vla_ros.sim.demonstrations import target_uv_2d  # noqa: E402
from vla_ros.sim.world import World  # noqa: E402

SIZE = 256


class GroundingProbe(Probe):
    def __init__(self, executor):
        super().__init__(executor)
        self.groundings = []
        self.node.create_subscription(Grounding, 'groundings', self.groundings.append, 10)
        self.ground_pub = self.node.create_publisher(String, 'ground', 10)
        self.instruction_pub = self.node.create_publisher(String, 'instruction', 10)

    def ground(self, target, phrase):
        wait_for(lambda: self.ground_pub.get_subscription_count() > 0
                 and target.groundings.publisher.get_subscription_count() > 0,
                 'ground/groundings match')
        count = len(self.groundings)
        self.ground_pub.publish(String(data=phrase))
        wait_for(lambda: any(g.phrase == phrase for g in self.groundings[count:]),
                 f'a grounding of {phrase!r}')
        return next(g for g in self.groundings[count:] if g.phrase == phrase)


def visible_targets(world):
    return [(s, target_uv_2d(world, i, SIZE)) for i, s in enumerate(world.shapes)
            if target_uv_2d(world, i, SIZE) is not None]


def test_phrases_are_grounded_in_the_latest_frame_with_its_header(ros_executor):
    vla = start(ros_executor, VLANode, caption_rate=0.0)
    probe = GroundingProbe(ros_executor)
    world = World.random(1_000_003)   # three shapes in view
    frame = rgb_to_image(world.render(SIZE, SIZE), header(700))
    probe.send_frame(vla, frame)
    found = 0
    for shape, (u, v) in visible_targets(world):
        g = probe.ground(vla, f'{shape.color} {shape.shape}')
        assert g.success and g.error == '', g.error
        assert same_header(g.header, frame.header) and (g.width, g.height) == (SIZE, SIZE)
        assert g.latency_ms > 0 and len(g.boxes) <= 1
        for box in g.boxes:
            assert 0 <= box.x_min < box.x_max <= SIZE and 0 <= box.y_min < box.y_max <= SIZE
            assert 0.5 <= box.score <= 1.0
            found += np.hypot(box.x - u * SIZE, box.y - v * SIZE) < SIZE / 8
    assert found >= 1     # (accuracy over many frames: test_grounding.py)
    refused = probe.ground(vla, 'the purple unicorn')
    assert not refused.success and "does not know the word(s) 'purple', 'unicorn'" in \
        refused.error
    assert same_header(refused.header, frame.header) and refused.boxes == []
    empty = probe.ground(vla, ' ')
    assert not empty.success and empty.error == 'phrase is empty'


def test_the_policy_publishes_where_it_sees_its_target(ros_executor):
    vla = start(ros_executor, VLANode, caption_rate=0.0, frame_timeout=10.0)
    probe = GroundingProbe(ros_executor)
    world = World.random(1_000_004)   # two in view
    shape, _uv = visible_targets(world)[0]
    frame = rgb_to_image(world.render(SIZE, SIZE), header(701))
    probe.send_frame(vla, frame)
    instruction = f'go to the {shape.color} {shape.shape}'
    wait_for(lambda: probe.instruction_pub.get_subscription_count() > 0
             and vla.groundings.publisher.get_subscription_count() > 0, 'matches')
    probe.instruction_pub.publish(String(data=instruction))
    wait_for(lambda: any(g.phrase == instruction for g in probe.groundings),
             'a grounding from the policy')
    g = next(g for g in probe.groundings if g.phrase == instruction)
    assert g.success and same_header(g.header, frame.header)
    probe.instruction_pub.publish(String(data='stop'))
