"""The visual servo on the simulator's own segmentation: the reference row for acting by
grounding (control/visual_servo.py), as the privileged expert is for the action head.

A pretrained vision-language model acts by grounding the instruction's target in each
frame and servoing on the box (engine/grounding.py). This policy gives the same servo a
perfect grounder, the box of the target's pixels in the 3D camera's segmentation, so
`vla-ros sim-eval --world 3d --policy servo` measures the controller alone: the best any
model's grounding can do through it. 3D only (the 2D arena has no segmentation).
"""
import numpy as np

from ..control.visual_servo import servo_command
from ..engine.api import GroundingResult


def segmentation_grounding(world, target: int, width: int, height: int) -> GroundingResult:
    """The box around the pixels of object `target` in the camera image (none if unseen)."""
    ys, xs = np.nonzero(world.segmentation(width, height) == target)
    if len(xs) == 0:
        return GroundingResult('', [], [], [], 0.0, (height, width))
    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    point = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    return GroundingResult('', [box], [point], [1.0], 0.0, (height, width))


class SegmentationServoPolicy:
    """servo_command on segmentation_grounding, behind sim/evaluate.py's policy interface."""

    name = 'servo'
    needs_frames = False      # it reads the segmentation, not the frame
    takes_goal = True

    def __init__(self, size: int = 96):
        self.image_size = size

    def reset(self, world, goal, instruction: str = None):
        self.world, self.goal, self.target = world, goal, world.target

    def __call__(self, frame, instruction: str):
        grounding = segmentation_grounding(self.world, self.target, self.image_size,
                                           self.image_size)
        return servo_command(self.goal.kind, grounding)
