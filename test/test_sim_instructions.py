"""Instructions: parsing, synonyms, grounding in an arena, refusals, wording templates."""
import numpy as np
import pytest

from vla_ros.control.instructions import (Goal, ground, instruction_text, InstructionRefused,
                                          LEXICON, parse_instruction, TEMPLATES, words)
from vla_ros.sim.world import Pose, Shape, World


@pytest.mark.parametrize('text, goal', [
    ('go to the red circle', Goal('goto', 'red', 'circle')),
    ('Drive to the BLUE triangle!', Goal('goto', 'blue', 'triangle')),
    ('please find the yellow circle.', Goal('goto', 'yellow', 'circle')),
    ('approach a grey box', Goal('goto', 'gray', 'cube')),   # 2D find(): its rectangle
    ('go to the gray rectangle', Goal('goto', 'gray', 'rectangle')),
    ('navigate towards the turquoise round shape', Goal('goto', 'teal', 'circle')),
    ('robot, head to the black triangular shape now', Goal('goto', 'black', 'triangle')),
    ('turn towards the green rectangle', Goal('face', 'green', 'rectangle')),
    ('look at the brown disc', Goal('face', 'brown', 'circle')),
    ('turn to face the red oblong', Goal('face', 'red', 'rectangle')),
    ('stop', Goal('stop')),
    ('  STOP!! ', Goal('stop')),
    ('please halt now', Goal('stop')),
])
def test_parses(text, goal):
    assert parse_instruction(text) == goal


@pytest.mark.parametrize('text, words_in_reason', [
    ('', 'empty'),
    ('   ', 'empty'),
    ('go to the ' + 'red ' * 40 + 'circle', 'characters long'),
    ('?!', 'no words'),
    ('go to the purple circle', "unknown colour 'purple'"),
    ('go to the red hexagon', "unknown shape 'hexagon'"),
    ('go to the red square', "unknown shape 'square'"),
    ("don't go to the red circle", "unknown word 'don'"),
    ('go to the red circle, not the blue one', "unknown word 'not'"),
    ('turn left', "'left': only going to or turning towards"),
    ('the red circle', 'no action word'),
    ('go to the circle', 'exactly one colour and one shape'),
    ('go to the red blue circle', 'exactly one colour and one shape'),
    ('stop at the red circle', "'stop' takes no target"),
    ('turn and go to the red circle', 'mixes'),
])
def test_refusals_say_why(text, words_in_reason):
    with pytest.raises(InstructionRefused, match=words_in_reason):
        parse_instruction(text)


def test_non_text_is_refused():
    with pytest.raises(InstructionRefused, match='must be text'):
        parse_instruction(None)


def test_grounding_against_the_arena():
    world = World([Shape('circle', 'red', 1, 1, 0.4), Shape('triangle', 'blue', 3, 3, 0.4)],
                  Pose(2, 2, 0))
    assert ground(parse_instruction('go to the blue triangle'), world) == 1
    assert ground(parse_instruction('stop'), world) is None
    with pytest.raises(InstructionRefused, match='there is no red triangle here'):
        ground(parse_instruction('go to the red triangle'), world)


def test_every_template_parses_to_its_goal_and_held_out_wordings_are_new():
    rng = np.random.default_rng(0)
    for kind in TEMPLATES:
        train, held_out = TEMPLATES[kind]
        assert not set(train) & set(held_out)
        goal = Goal(kind) if kind == 'stop' else Goal(kind, 'gray', 'triangle')
        for split in (False, True):
            for _ in range(100):
                text = instruction_text(rng, goal, held_out=split)
                assert parse_instruction(text) == goal, text
                assert set(words(text)) <= LEXICON, text
