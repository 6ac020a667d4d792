"""Acting with a model that can only say where things are: grounding + a visual servo.

A pretrained vision-language model gives no velocities, but one that grounds phrases
(PaliGemma's `detect`, Qwen2.5-VL's boxes; engine/grounding.py) says where the target is
in the frame. `servo_command` turns that into a command the same safety layer clamps as
the bundled model's (action_loop.py: speed limits, frame watchdog, timeouts, stop):

- not visible: turn in place (left) to look for it, no forward motion;
- otherwise turn towards it in proportion to its horizontal offset from the image
  centre; a `goto` goal also drives forward, slower the further off-centre it is, and is
  reached when the box's bottom edge comes down to `arrive_bottom` of the frame's height:
  with a forward camera above a flat floor, how low an object's base appears says how
  near it is whatever its size (in the 3D arena's camera, 0.8 is about 0.3 m away; set
  it for your camera's height and pitch); a `face` goal is reached once the target is
  within `face_tolerance` of the centre.

The instruction's target is free text ("go to the orange mug"), parsed by
`parse_open_instruction`: the verbs and fillers of instructions.py, the rest is the
phrase the model grounds. No ROS, no torch.
"""
from dataclasses import dataclass

from .instructions import FILLERS, InstructionRefused, MAX_CHARS, VERBS, words

OPEN_EXAMPLES = "e.g. 'go to the orange mug', 'look at the door' or 'stop'"


@dataclass(frozen=True)
class OpenGoal:
    kind: str            # goto | face | stop
    phrase: str = ''     # what to ground ('' for stop)

    @property
    def target(self) -> str:
        return self.phrase


def parse_open_instruction(text: str) -> OpenGoal:
    """'go to the orange mug' -> OpenGoal('goto', 'orange mug'). The leading words must be
    an action (go to, drive to, turn towards, face, look at, find, stop...), the rest
    names the target. Raises InstructionRefused with the reason."""
    if not isinstance(text, str):
        raise InstructionRefused(f'instruction must be text, got {type(text).__name__}')
    ws = words(text)
    if not ws:
        raise InstructionRefused(f'instruction is empty; {OPEN_EXAMPLES}')
    if len(text.strip()) > MAX_CHARS:
        raise InstructionRefused(f'instruction is {len(text.strip())} characters long; '
                                 f'the limit is {MAX_CHARS}')
    i, kinds = 0, set()
    while i < len(ws) and (ws[i] in VERBS or ws[i] in FILLERS):
        if ws[i] in VERBS:
            kinds.add(VERBS[ws[i]])
        i += 1
    if not kinds:
        raise InstructionRefused('no action word at the start (go to, turn towards, '
                                 f'stop...); {OPEN_EXAMPLES}')
    if len(kinds) > 1:
        raise InstructionRefused('mixes ' + ' and '.join(sorted(kinds)) + ' actions; '
                                 + OPEN_EXAMPLES)
    kind, phrase = kinds.pop(), ' '.join(ws[i:])
    if kind == 'stop':
        if phrase:
            raise InstructionRefused("'stop' takes no target")
        return OpenGoal('stop')
    if not phrase:
        raise InstructionRefused(f'no target named; {OPEN_EXAMPLES}')
    return OpenGoal(kind, phrase)


@dataclass
class ServoGains:
    turn_gain: float = 2.0         # turn (fraction of max) per unit offset from the centre
    approach: float = 0.6          # forward speed (fraction of max) when centred and far
    arrive_bottom: float = 0.8     # goto reached: the box's bottom edge / frame height
    face_tolerance: float = 0.06   # face reached: |offset| (fraction of the frame's width)
    search_turn: float = 0.3       # turn (fraction of max, left) while the target is unseen


def servo_command(kind: str, grounding, gains: ServoGains = ServoGains()):
    """(linear, angular, done) in [-1, 1] / [-1, 1] / {0, 1} for a goal of `kind` ('goto'
    or 'face') given a GroundingResult (its best-scoring box is the target)."""
    if not grounding.visible:
        return 0.0, gains.search_turn, 0.0
    height, width = grounding.frame_size
    best = max(range(len(grounding.boxes)), key=lambda k: grounding.scores[k])
    x, _y = grounding.points[best]
    x0, y0, x1, y1 = grounding.boxes[best]
    offset = x / width - 0.5                 # > 0: the target is right of centre
    angular = max(-1.0, min(1.0, -gains.turn_gain * offset))
    if kind == 'face':
        return 0.0, angular, float(abs(offset) <= gains.face_tolerance)
    bottom = y1 / height
    if bottom >= gains.arrive_bottom:
        return 0.0, 0.0, 1.0
    centred = max(0.0, 1.0 - 4.0 * abs(offset))        # drive only when roughly facing it
    remaining = min(1.0, 4.0 * (gains.arrive_bottom - bottom))   # slow down near the end
    return gains.approach * centred * max(remaining, 0.3), angular, 0.0
