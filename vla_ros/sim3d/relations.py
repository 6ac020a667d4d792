"""Which object an instruction means by "the cube left of the green ball".

The robot's camera decides: left and right are the image's, at the moment the
instruction arrives (captions.observe: one segmentation render, so hidden objects do not
count). The rules are the 'what is left of ...?' questions' (language.py): two objects
are side by side only when their mask centroids are RELATION_MARGIN image widths apart.
Anything unsure is refused with the reason - the robot asks rather than guesses:

- the other object (the anchor) is not in the arena, not in view, or only glimpsed;
- no object of the target's description is on that side of it;
- more than one is (then the target needs its colour);
- one is in line with the anchor (neither left nor right of it), or only glimpsed.

    i = find_beside(observe(world), None, 'cube', 'left', 'green', 'sphere')

No ROS, no MuJoCo of its own: `view` is a captions.SceneView.
"""
from typing import Optional

from .captions import plural, SceneView
from .language import RELATION_MARGIN


def find_beside(view: SceneView, color: Optional[str], shape: str, side: str,
                anchor_color: str, anchor_shape: str) -> int:
    """world.shapes index of the only `[color] shape` on `side` ('left' / 'right') of the
    `anchor_color anchor_shape` in `view`. Raises LookupError with the reason."""
    if side not in ('left', 'right'):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    anchor_name = f'{anchor_color} {anchor_shape}'
    anchors = [o for o in view.visible if (o.color, o.shape) == (anchor_color, anchor_shape)]
    if not anchors:
        if (anchor_color, anchor_shape) in view.world_objects:
            raise LookupError(f'the {anchor_name} is not in view: turn towards it first, '
                              f'so that left and right of it mean something')
        raise LookupError(f'there is no {anchor_name} here')
    anchor = anchors[0]
    if anchor not in view.seen:
        raise LookupError(f'the {anchor_name} is barely in view ({anchor.pixels} pixels)')
    described = f'{color} {shape}' if color else shape
    sign = -1 if side == 'left' else 1
    alike = [o for o in view.visible if o is not anchor and o.shape == shape
             and (color is None or o.color == color)]
    if any(abs(o.u - anchor.u) < RELATION_MARGIN for o in alike):
        raise LookupError(f'a {described} is in line with the {anchor_name}, neither left nor '
                          f'right of it')
    on_side = [o for o in alike if sign * (o.u - anchor.u) > 0]
    if not on_side:
        raise LookupError(f'no {described} is {side} of the {anchor_name} in view')
    if len(on_side) > 1:
        raise LookupError(f'{len(on_side)} {plural(described)} are {side} of the '
                          f'{anchor_name}: name its colour too')
    target = on_side[0]
    if target not in view.seen:
        raise LookupError(f'the {described} {side} of the {anchor_name} is barely in view '
                          f'({target.pixels} pixels)')
    return target.index


def relational_goals(view: SceneView) -> list:
    """Every way to name a seen object through a seen neighbour that find_beside grounds
    back to it: [(target index, colour or None, shape, side, anchor colour, anchor
    shape)] (evaluation episodes and demonstrations draw from these)."""
    goals = []
    for target in view.seen:
        for anchor in view.seen:
            if anchor is target:
                continue
            side = 'left' if target.u < anchor.u else 'right'
            for color in (None, target.color):
                try:
                    found = find_beside(view, color, target.shape, side, anchor.color,
                                        anchor.shape)
                except LookupError:
                    continue
                if found == target.index:
                    goals.append((target.index, color, target.shape, side, anchor.color,
                                  anchor.shape))
    return goals
