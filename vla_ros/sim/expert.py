"""Expert driver: privileged world state -> (linear, angular, done), for demonstrations.

Proportional heading control towards the target, with a detour along the tangent of any
distractor that blocks the straight line (each distractor is inflated by the robot's
radius plus a clearance), slowing down near the goal. Two choices keep it imitable by a
camera policy, which is what behaviour cloning needs:
- it is stateless: the action depends only on the current state, so a label for any
  state (also perturbed, off-trajectory ones) is well defined;
- when the target is out of the camera's view (`world.in_view`: the 2D world's
  half-plane ahead, render.py, or the 3D world's field of view, World3D.in_view) it
  searches by turning left, which an image can predict; turning the shorter way would
  be a label no image shows;
- detours never steer so far off that the target would leave the view (`max_detour`:
  the 3D camera's 80 degree field of view allows less than the 2D half-plane).
Any world with the 2D World's geometry works: the 2D World and World3D, whose `shapes`
include clutter items, obstacles like any distractor. Velocities are fractions of
MAX_LINEAR / MAX_ANGULAR in [-1, 1].
"""
import math
from typing import Optional

from ..control.instructions import Goal
from .world import Pose, REACH_DISTANCE, ROBOT_RADIUS, World, wrap_angle

GAIN = 2.5               # angular fraction per radian of heading error
TURN_IN_PLACE = 1.0      # rad: beyond this heading error only turn
SLOW_RADIUS = 1.0        # m: full speed beyond this gap to the target, slower inside
MIN_SPEED = 0.2          # fraction: speed near the goal (so it arrives)
MIN_TURN = 0.12          # fraction: slowest turn (so the last degrees close)
SEARCH_TURN = 0.7        # fraction: turn left at this rate while the target is behind
CLEARANCE = 0.2          # m kept free around distractors
MAX_DETOUR = 1.2         # rad: largest steer away from the target's bearing (2D)
VIEW_MARGIN = 0.1        # rad: a detour keeps the target this far inside a camera's view
WALL_LOOKAHEAD = 0.6     # m: directions that would bring the robot this close to a wall...
WALL_CLEARANCE = 0.05    # m: ...within this of touching it are blocked
FACE_TOLERANCE = 0.15    # rad: "facing" the target
TOUCH_MARGIN = 0.01      # m: never drive on into an obstacle's footprint closer than this
#                          (grazing at 1 cm lets it slip past one beside a target that
#                          the 3D camera's narrower view must keep in sight)


def max_detour(world, target: int, pose: Optional[Pose] = None) -> float:
    """Largest steer (rad) off the target's bearing that keeps it in the camera's view:
    the field of view's half-angle plus the target's own angular radius (in_view counts
    an object as soon as part of it is in view), less VIEW_MARGIN."""
    half = getattr(world, 'view_half_angle', None)
    if half is None:
        return MAX_DETOUR
    d = math.hypot(*world.ego(target, pose))
    size = math.asin(min(1.0, world.shapes[target].radius / d)) if d > 0 else math.pi / 2
    return min(MAX_DETOUR, half() + size - VIEW_MARGIN)


def _turn(error: float) -> float:
    """Proportional turn command for a heading error, with a floor and a ceiling."""
    if error == 0:
        return 0.0
    return math.copysign(min(1.0, max(MIN_TURN, GAIN * abs(error))), error)


def detour_heading(world: World, target: int) -> float:
    """Heading (relative to the robot's, + left) that avoids distractors and walls.

    The straight bearing to the target, unless a distractor nearer than the target (or a
    wall close by) blocks it; then the free tangent direction of the inflated distractors
    nearest to the bearing, at most max_detour() off it; if none is free, the least blocked.
    """
    p = world.pose   # read once: a World3D's pose comes from its physics state
    bearing = world.bearing(target, p)
    reach = math.hypot(*world.ego(target, p))
    blocked = []   # (centre, half-width) of the directions each nearby distractor blocks
    for j, s in enumerate(world.shapes):   # distractors and (3D) clutter items
        if j == target:
            continue
        forward, left = world.ego(j, p)
        d = math.hypot(forward, left)
        if d - s.radius > reach:
            continue   # behind the target: not in the way
        inflated = s.radius + ROBOT_RADIUS + CLEARANCE
        half = math.pi / 2 if d <= inflated else math.asin(inflated / d)
        blocked.append((math.atan2(left, forward), half))
    blocked += _walls_ahead(world, min(WALL_LOOKAHEAD, world.gap(target, p)), p)

    def violation(heading):
        return max([half - abs(wrap_angle(heading - c)) for c, half in blocked] + [0.0])

    candidates = [bearing] + [c + sign * (half + 1e-3) for c, half in blocked for sign in (1, -1)]
    # Never steer so far off that the target drops behind: it would leave the camera's view.
    limit = max_detour(world, target, p)
    candidates = [h for h in candidates if abs(wrap_angle(h - bearing)) < limit]
    candidates += [bearing + limit - 1e-3, bearing - limit + 1e-3]
    # Free directions first, then the one closest to the target; ties go left.
    return min(candidates, key=lambda h: (violation(h) > 0, violation(h),
                                          abs(wrap_angle(h - bearing)), -h))


def _walls_ahead(world: World, lookahead: float, p: Pose):
    """(centre, half-width) of the directions that run into a nearby wall.

    Heading at angle a from a wall's outward normal, the robot closes in on it at
    cos(a) per metre: blocked if `lookahead` metres would leave less than WALL_CLEARANCE.
    """
    walls = ((p.x, math.pi), (world.arena - p.x, 0.0),            # left, right
             (p.y, -math.pi / 2), (world.arena - p.y, math.pi / 2))  # bottom, top
    out = []
    for distance, normal in walls:
        room = distance - ROBOT_RADIUS - WALL_CLEARANCE
        if lookahead > 0 and room < lookahead:
            half = math.acos(max(-1.0, room / lookahead))
            out.append((wrap_angle(normal - p.theta), half))
    return out


def expert_action(world: World, goal: Goal, target: Optional[int]):
    """(linear, angular, done) for `goal` whose target is shape index `target`."""
    if goal.kind == 'stop':
        return 0.0, 0.0, 1.0
    if not world.in_view(target):
        return 0.0, SEARCH_TURN, 0.0
    if goal.kind == 'face':   # done only in view (above): 3D's view is narrower than 2D's
        error = world.bearing(target)
        if abs(error) <= FACE_TOLERANCE:
            return 0.0, 0.0, 1.0
        return 0.0, _turn(error), 0.0
    gap = world.gap(target)
    if gap <= REACH_DISTANCE:
        return 0.0, 0.0, 1.0
    error = wrap_angle(detour_heading(world, target))
    speed = min(1.0, max(MIN_SPEED, (gap - REACH_DISTANCE) / SLOW_RADIUS))
    linear = speed * max(0.0, 1.0 - abs(error) / TURN_IN_PLACE)
    if linear > 0 and _would_touch(world, target):
        linear = 0.0   # boxed in: turn on the spot rather than bump into an obstacle
    return linear, _turn(error), 0.0


def _would_touch(world: World, target: int, ahead: float = 0.1) -> bool:
    """Whether driving `ahead` metres straight on brings an obstacle's footprint within
    TOUCH_MARGIN (or closer still, where it already is within that)."""
    p = world.pose
    probe = Pose(p.x + ahead * math.cos(p.theta), p.y + ahead * math.sin(p.theta), p.theta)
    return any(world.gap(j, probe) < min(TOUCH_MARGIN, world.gap(j, p))
               for j in range(len(world.shapes)) if j != target)
