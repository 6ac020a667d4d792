"""Instructions the robot follows: parse them into goals, ground them in a world, word them.

The language of the control loop, not of any simulator: the action loop parses with it,
the sims ground goals in their worlds (anything with `find(color, shape)`), and training
words demonstrations with it.

Three kinds of goal: `goto` ("go to the red circle", "find the blue ball"), `face` ("turn
towards the green triangle", "look at the grey cube") and `stop`. A target is always a
colour and a shape. Shapes come in two families, and Goal.shape is the canonical word of
the family its word belongs to:

- the 2D arena's (vocabulary.py, with its synonyms): circle (disc, round shape),
  rectangle (oblong), triangle (triangular shape);
- the 3D world's (SHAPE_SYNONYMS_3D, sim3d/captions.py's SHAPE_WORDS_3D): sphere (ball),
  cube (box, block), cylinder (drum), pyramid.

'box' is the cube's word (it used to be the rectangle's). Worlds translate between the
families in `find`: the 2D arena finds its rectangle for a cube (so "the grey box" still
works there), the 3D world its cube for a rectangle.

Parsing is strict on purpose: every word must be understood, so "don't go to the red
circle" or "go to the red circle, not the blue one" are refused rather than half-obeyed.
One relation is understood: a target on the left or right of another object in the
camera's view ("go to the cube left of the green ball", "face the red drum to the right of
the blue box"); the other object is named by colour and shape, the target by its shape
and perhaps its colour. Which object that is depends on the view when the instruction
arrives, so only a world with a camera grounds it (World3D.find_beside); other relations
("near", "behind", "nearest"...) are refused. A refusal is an InstructionRefused whose
message says why.

Every wording family has a *train* list and a *held-out* list (like data/questions.py):
demonstrations only ever use the train lists, so held-out wordings measure whether the
policy understood the words rather than memorised the sentences.
"""
import re
import unicodedata
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..data.vocabulary import COLOR_NAMES, COLOR_SYNONYMS, SHAPE_SYNONYMS, SHAPES

MAX_CHARS = 120
KINDS = ('goto', 'face', 'stop')

# The 3D world's shape words, first the canonical one. The same table as
# sim3d.captions.SHAPE_WORDS_3D (a test checks): copied, since importing sim3d imports
# mujoco and the control layer runs where mujoco is not installed.
SHAPE_SYNONYMS_3D = {'sphere': ('sphere', 'ball'),
                     'cube': ('cube', 'box', 'block'),
                     'cylinder': ('cylinder', 'drum'),
                     'pyramid': ('pyramid',)}
SHAPES_3D = tuple(SHAPE_SYNONYMS_3D)

# word (or two-word phrase) -> canonical colour / shape. A word in both families ('box')
# is the 3D family's.
COLOR_WORDS = {w: c for c in COLOR_NAMES for w in COLOR_SYNONYMS.get(c, (c,))}
SHAPE_WORDS = {**{w: s for s in SHAPES for w in SHAPE_SYNONYMS.get(s, (s,))},
               **{w: s for s in SHAPES_3D for w in SHAPE_SYNONYMS_3D[s]}}
VERBS = {'go': 'goto', 'drive': 'goto', 'move': 'goto', 'navigate': 'goto', 'head': 'goto',
         'approach': 'goto', 'reach': 'goto', 'find': 'goto',
         'turn': 'face', 'face': 'face', 'look': 'face',
         'stop': 'stop', 'halt': 'stop', 'wait': 'stop'}
FILLERS = {'to', 'towards', 'toward', 'at', 'the', 'a', 'an', 'and', 'please', 'now', 'robot',
           'hey', 'ok'}
# Known words for motions the action head does not do: refused with a specific reason.
# ('left' / 'right' followed by 'of', or in an instruction naming two shapes, are relations.)
UNSUPPORTED = {'left', 'right', 'forward', 'back', 'backward', 'slowly', 'quickly', 'around',
               'spin', 'then'}
# Words that place the target relative to something else: refused (only 'left of' /
# 'right of' are understood).
RELATIONS = {'near', 'nearby', 'nearest', 'close', 'closest', 'next', 'beside', 'behind',
             'between', 'above', 'below', 'under', 'underneath', 'beneath', 'of', 'front',
             'by', 'from', 'far', 'farthest', 'furthest', 'opposite', 'among', 'beyond',
             'than', 'other', 'on', 'in'}
SIDES = {'left', 'right'}
# Recognisably a colour or a shape, but not one the model knows.
OTHER_COLORS = {'purple', 'orange', 'pink', 'white', 'cyan', 'magenta', 'violet', 'gold',
                'silver', 'beige', 'navy', 'olive', 'maroon', 'lime'}
OTHER_SHAPES = {'square', 'star', 'hexagon', 'pentagon', 'octagon', 'oval', 'ellipse',
                'diamond', 'heart', 'cross', 'cone', 'prism', 'torus', 'cuboid', 'rhombus',
                'capsule'}
LEXICON = set(COLOR_WORDS) | {w for p in SHAPE_WORDS for w in p.split()} | set(VERBS) | FILLERS
assert not (OTHER_SHAPES | RELATIONS | UNSUPPORTED) & LEXICON and not RELATIONS & UNSUPPORTED
KNOWN_SHAPES = ('2D arena: ' + ', '.join(SHAPES) + '; 3D world: ' + ', '.join(SHAPES_3D))
EXAMPLES = "e.g. 'go to the red circle', 'turn towards the blue cube' or 'stop'"
NO_RELATIONS = ("the only relations understood are 'left of' and 'right of' another object "
                "named by colour and shape (e.g. 'go to the cube left of the green ball'); "
                "or name the target by its colour and shape, e.g. 'go to the green ball'")


class InstructionRefused(ValueError):
    """An instruction that will not be acted on; the message says why."""


@dataclass(frozen=True)
class Goal:
    kind: str                      # goto | face | stop
    color: Optional[str] = None    # canonical colour (None for stop; may be None with a side)
    shape: Optional[str] = None    # canonical shape (None for stop)
    side: Optional[str] = None     # 'left' / 'right': the target is on that side of...
    anchor: Optional[tuple] = None  # ...this (colour, shape), in the camera's view

    @property
    def target(self) -> str:
        """'red cube', 'cube left of the green ball'."""
        named = f'{self.color} {self.shape}' if self.color else self.shape
        return f'{named} {self.side} of the {" ".join(self.anchor)}' if self.side else named


def words(text: str) -> list:
    """Lower-case words of `text`, punctuation dropped (what the parser reads)."""
    return re.findall(r'[^\W\d_]+', unicodedata.normalize('NFKC', text).lower())


def _terms(ws: list) -> list:
    """[(word or two-word shape phrase, canonical shape or None)]."""
    terms, i = [], 0
    while i < len(ws):
        pair = ' '.join(ws[i:i + 2])
        if pair in SHAPE_WORDS:          # two-word synonyms: "round shape", ...
            terms.append((pair, SHAPE_WORDS[pair]))
            i += 2
        else:
            terms.append((ws[i], SHAPE_WORDS.get(ws[i])))
            i += 1
    return terms


def _relation_at(terms: list):
    """Index of the side word of 'left of' / 'right of', or None."""
    for j in range(len(terms) - 1):
        if terms[j][0] in SIDES and terms[j + 1][0] == 'of':
            return j
    return None


def _read(terms: list, n_shapes: int):
    """(action kinds, colours, shapes) named by `terms`; refuses any word it cannot use."""
    kinds, colors, shapes = set(), [], []
    for j, (w, shape) in enumerate(terms):
        following = terms[j + 1][0] if j + 1 < len(terms) else None
        if shape is not None:
            shapes.append(shape)
        elif w in COLOR_WORDS:
            colors.append(COLOR_WORDS[w])
        elif w in VERBS:
            kinds.add(VERBS[w])
        elif w in FILLERS:
            pass
        elif w in OTHER_COLORS:
            raise InstructionRefused(f"unknown colour '{w}'; known colours: "
                                     + ', '.join(COLOR_NAMES))
        elif w in OTHER_SHAPES:
            raise InstructionRefused(f"unknown shape '{w}'; known shapes: {KNOWN_SHAPES}")
        elif w in RELATIONS or (w in SIDES and (following == 'of' or n_shapes > 1)):
            raise InstructionRefused(f"'{w}': {NO_RELATIONS}")
        elif w in UNSUPPORTED:
            raise InstructionRefused(f"'{w}': only going to or turning towards a named shape, "
                                     f'or stopping, is supported; {EXAMPLES}')
        else:
            raise InstructionRefused(f"unknown word '{w}'; {EXAMPLES}")
    return kinds, colors, shapes


def parse_instruction(text: str) -> Goal:
    """Instruction text -> Goal. Raises InstructionRefused with the reason."""
    if not isinstance(text, str):
        raise InstructionRefused(f'instruction must be text, got {type(text).__name__}')
    if not text.strip():
        raise InstructionRefused('instruction is empty')
    if len(text.strip()) > MAX_CHARS:
        raise InstructionRefused(f'instruction is {len(text.strip())} characters long; '
                                 f'the limit is {MAX_CHARS}')
    ws = words(text)
    if not ws:
        raise InstructionRefused(f'instruction has no words; {EXAMPLES}')
    terms = _terms(ws)
    j = _relation_at(terms)
    head, tail = (terms, []) if j is None else (terms[:j], terms[j + 2:])
    kinds, colors, shapes = _read(head, 1 if j is not None else
                                  sum(shape is not None for _w, shape in terms))
    if not kinds:
        raise InstructionRefused(f'no action word (go to, turn towards, stop...); {EXAMPLES}')
    if len(kinds) > 1:
        raise InstructionRefused('mixes ' + ' and '.join(sorted(kinds)) + f' actions; {EXAMPLES}')
    kind = kinds.pop()
    if kind == 'stop':
        if colors or shapes or j is not None:
            raise InstructionRefused("'stop' takes no target; to drive to a shape say "
                                     "'go to the <colour> <shape>'")
        return Goal('stop')
    if len(shapes) > 1:
        raise InstructionRefused(f'names {len(shapes)} shapes; one target at a time, and '
                                 + NO_RELATIONS)
    if j is None:
        if len(colors) != 1 or len(shapes) != 1:
            raise InstructionRefused(f'name exactly one colour and one shape (got {len(colors)} '
                                     f'colour and {len(shapes)} shape words); {EXAMPLES}')
        return Goal(kind, colors[0], shapes[0])
    side = terms[j][0]
    if len(colors) > 1 or len(shapes) != 1:
        raise InstructionRefused(f"name the target {side} of the other object by its shape "
                                 f"(and colour), e.g. 'go to the cube {side} of the green ball'")
    a_kinds, a_colors, a_shapes = _read(tail, 1)
    if a_kinds or len(a_colors) != 1 or len(a_shapes) != 1:
        raise InstructionRefused(f"name the object after '{side} of' by one colour and one "
                                 f"shape, e.g. 'go to the cube {side} of the green ball'")
    return Goal(kind, colors[0] if colors else None, shapes[0], side,
                (a_colors[0], a_shapes[0]))


def ground(goal: Goal, world) -> Optional[int]:
    """Index of the goal's target in `world` (None for stop). Raises InstructionRefused."""
    if goal.kind == 'stop':
        return None
    if goal.side is not None:
        if not hasattr(world, 'find_beside'):
            raise InstructionRefused(f"'{goal.target}': relations between objects need a "
                                     'camera view to be grounded in (the 3D world)')
        try:
            return world.find_beside(goal.color, goal.shape, goal.side, *goal.anchor)
        except LookupError as e:      # says which part does not hold, and why
            raise InstructionRefused(str(e)) from None
    i = world.find(goal.color, goal.shape)
    if i is None:
        raise InstructionRefused(f'there is no {goal.target} here')
    return i


# -- wordings ---------------------------------------------------------------------------------
# {t} is the target ("red circle", "blue ball"); each kind has (train, held-out) lists.
TEMPLATES = {
    'goto': (
        ['go to the {t}', 'drive to the {t}', 'move to the {t}', 'navigate to the {t}',
         'head to the {t}', 'approach the {t}', 'reach the {t}', 'find the {t}',
         'go towards the {t}', 'drive toward the {t}', 'go to a {t}', 'find a {t}'],
        ['move towards the {t}', 'head toward the {t}', 'navigate towards the {t}',
         'drive to a {t}', 'approach a {t}', 'go find the {t}']),
    'face': (
        ['turn towards the {t}', 'turn to the {t}', 'face the {t}', 'look at the {t}',
         'turn toward the {t}'],
        ['turn to face the {t}', 'turn and face the {t}', 'look at a {t}']),
    'stop': (['stop', 'halt', 'stop now', 'please stop'],
             ['wait', 'please wait']),
}
PREFIXES = ('', '', '', '', 'please ', 'robot, ', 'ok, ')
SUFFIXES = ('', '', '', '', ' please', ' now', '.', '!')


def target_words(rng: np.random.Generator, color: str, shape: str) -> str:
    """'<colour> <shape>', usually canonical, sometimes a synonym of the shape's family.

    A 2D rectangle keeps vocabulary.py's synonyms, 'box' among them (2D wordings are what
    they were): "grey box" parses to a cube, which the 2D arena's find() maps back to its
    rectangle. Every 3D wording parses back to its own shape.
    """
    colors = COLOR_SYNONYMS.get(color, (color,))
    shapes = SHAPE_SYNONYMS_3D.get(shape) or SHAPE_SYNONYMS.get(shape, (shape,))
    c = colors[rng.integers(len(colors))] if rng.random() < 0.3 else color
    s = shapes[rng.integers(len(shapes))] if rng.random() < 0.2 else shape
    return f'{c} {s}'


def goal_words(rng: np.random.Generator, goal: Goal) -> str:
    """The words for the goal's target: 'red ball', 'cube to the left of the green ball'."""
    if goal.side is None:
        return target_words(rng, goal.color, goal.shape)
    shapes = SHAPE_SYNONYMS_3D.get(goal.shape) or SHAPE_SYNONYMS.get(goal.shape, (goal.shape,))
    named = (target_words(rng, goal.color, goal.shape) if goal.color else
             shapes[rng.integers(len(shapes))] if rng.random() < 0.2 else goal.shape)
    side = f'to the {goal.side} of' if rng.random() < 0.4 else f'{goal.side} of'
    return f'{named} {side} the {target_words(rng, *goal.anchor)}'


def instruction_text(rng: np.random.Generator, goal: Goal, held_out: bool = False) -> str:
    """A random wording of `goal` from the train (or held-out) templates."""
    templates = TEMPLATES[goal.kind][1 if held_out else 0]
    text = templates[rng.integers(len(templates))]
    if goal.kind != 'stop':
        text = text.replace('{t}', goal_words(rng, goal))
    prefix, suffix = PREFIXES[rng.integers(len(PREFIXES))], SUFFIXES[rng.integers(len(SUFFIXES))]
    if prefix and text.startswith('please'):
        prefix = ''
    return prefix + text + ('' if suffix == ' please' and 'please' in prefix + text else suffix)
