"""Instructions in the 3D world's words: sphere / ball, cube / box / block, cylinder / drum,
pyramid. Parsing, refusals (relations other than left / right of, unknown shapes),
grounding in the 2D arena and the 3D world, wordings, and the tokenizer corpus holding
the 3D language. Targets named through another object: test_relations_3d.py."""
import re
import subprocess
import sys

import numpy as np
import pytest

from vla_ros.control.instructions import (Goal, ground, instruction_text, InstructionRefused,
                                          LEXICON, OTHER_SHAPES, parse_instruction,
                                          PREFIXES, SHAPE_SYNONYMS_3D, SHAPE_WORDS, SHAPES_3D,
                                          SUFFIXES, TEMPLATES, words)
from vla_ros.data.vocabulary import COLOR_NAMES, SHAPES
from vla_ros.sim.world import Pose, Shape, World

NEW_WORDS = {'sphere': 'sphere', 'ball': 'sphere', 'cube': 'cube', 'box': 'cube',
             'block': 'cube', 'cylinder': 'cylinder', 'drum': 'cylinder',
             'pyramid': 'pyramid'}


@pytest.mark.parametrize('word, shape', sorted(NEW_WORDS.items()))
@pytest.mark.parametrize('kind, verb', [('goto', 'go to'), ('face', 'turn towards')])
def test_every_3d_shape_word_parses_to_its_canonical_shape(word, shape, kind, verb):
    assert parse_instruction(f'{verb} the red {word}') == Goal(kind, 'red', shape)
    assert parse_instruction(f'Please {verb} a GREY {word}!') == Goal(kind, 'gray', shape)


@pytest.mark.parametrize('text, goal', [
    ('go to the red ball', Goal('goto', 'red', 'sphere')),
    ('find the turquoise block', Goal('goto', 'teal', 'cube')),
    ('look at the brown drum', Goal('face', 'brown', 'cylinder')),
    ('robot, approach the yellow pyramid now', Goal('goto', 'yellow', 'pyramid')),
    # the 2D words keep their own family
    ('go to the red disc', Goal('goto', 'red', 'circle')),
    ('go to the blue round shape', Goal('goto', 'blue', 'circle')),
    ('go to the green oblong', Goal('goto', 'green', 'rectangle')),
    ('face the black triangular shape', Goal('face', 'black', 'triangle')),
])
def test_parses_both_families(text, goal):
    assert parse_instruction(text) == goal


def test_shape_words_cover_both_families_and_nothing_else():
    assert set(SHAPE_WORDS.values()) == set(SHAPES) | set(SHAPES_3D)
    assert {w: s for w, s in SHAPE_WORDS.items() if s in SHAPES_3D} == NEW_WORDS
    assert not set(NEW_WORDS) & OTHER_SHAPES
    assert set(NEW_WORDS) <= LEXICON


def test_the_3d_word_table_agrees_with_the_3d_captions():
    pytest.importorskip('mujoco')
    from vla_ros.sim3d.captions import SHAPE_WORDS_3D
    from vla_ros.sim3d.scene import SHAPES_3D as SCENE_SHAPES
    assert SHAPE_SYNONYMS_3D == SHAPE_WORDS_3D
    assert SHAPES_3D == SCENE_SHAPES


def test_the_control_layer_does_not_import_mujoco():
    code = ('import sys, vla_ros.control.instructions, vla_ros.sim.world; '
            'assert "mujoco" not in sys.modules, "mujoco imported"')
    subprocess.run([sys.executable, '-c', code], check=True)


RELATIONAL = [   # relations other than 'left of' / 'right of' a fully named object
    'go to the red cube to the right of the ball',
    'the ball near the red cube',
    'go to the ball next to the blue pyramid',
    'find the red cube behind the green drum',
    'go to the red ball in front of the cube',
    'go to the nearest red ball',
    'go to the red ball on the left',
    'approach the red ball between the cubes',
]


@pytest.mark.parametrize('text', RELATIONAL)
def test_other_relations_are_refused_saying_which_are_understood(text):
    with pytest.raises(InstructionRefused, match="left of|right of") as e:
        parse_instruction(text)
    assert "'go to the green ball'" in str(e.value) or 'green ball' in str(e.value)


def test_a_second_object_is_refused_as_a_relation():
    with pytest.raises(InstructionRefused, match="names 2 shapes.*the only relations"):
        parse_instruction('go to the red ball and the blue cube')
    with pytest.raises(InstructionRefused, match="'left': the only relations"):
        parse_instruction('go to the red cube left the green ball')


@pytest.mark.parametrize('text', ['turn left', 'go to the left', 'turn right now'])
def test_left_and_right_alone_are_motions(text):
    with pytest.raises(InstructionRefused, match='only going to or turning towards'):
        parse_instruction(text)


@pytest.mark.parametrize('word', sorted(OTHER_SHAPES))
def test_unknown_shapes_are_refused_listing_both_families(word):
    with pytest.raises(InstructionRefused, match=f"unknown shape '{word}'") as e:
        parse_instruction(f'go to the red {word}')
    reason = str(e.value)
    assert '2D arena: circle, rectangle, triangle' in reason
    assert '3D world: sphere, cube, cylinder, pyramid' in reason


def test_2d_arena_grounds_3d_names_on_its_shapes():
    world = World([Shape('rectangle', 'gray', 1, 1, 0.4), Shape('circle', 'red', 3, 3, 0.4),
                   Shape('triangle', 'blue', 1, 3, 0.4)], Pose(2, 2, 0))
    assert ground(parse_instruction('go to the grey box'), world) == 0
    assert ground(parse_instruction('go to the gray cube'), world) == 0
    assert ground(parse_instruction('go to the gray rectangle'), world) == 0
    assert ground(parse_instruction('turn towards the red ball'), world) == 1
    assert ground(parse_instruction('go to the blue pyramid'), world) == 2
    assert world.find('red', 'sphere') == world.find('red', 'circle') == 1
    with pytest.raises(InstructionRefused, match='there is no red cylinder here'):
        ground(parse_instruction('go to the red drum'), world)   # no 2D counterpart
    with pytest.raises(InstructionRefused, match='there is no blue cube here'):
        ground(parse_instruction('go to the blue block'), world)


def test_2d_find_agrees_with_the_3d_scene_names():
    pytest.importorskip('mujoco')
    from vla_ros.sim3d.scene import VOCAB_SHAPE
    world = World([Shape(s, 'red', 1 + i, 1, 0.4) for i, s in enumerate(SHAPES)], Pose(4, 4, 0))
    for shape_3d, vocab in VOCAB_SHAPE.items():
        assert world.find('red', shape_3d) == (None if vocab is None else
                                               world.find('red', vocab)), shape_3d


def _world3d_with(color, shape, **kw):
    from vla_ros.sim3d.world3d import World3D
    for seed in range(200):
        w = World3D.random(seed, **kw)
        if any(not s.clutter and (s.color, s.shape) == (color, shape) for s in w.shapes):
            return w
        w.close()
    raise AssertionError(f'no {color} {shape} in 200 seeds')


def test_3d_world_grounds_3d_words():
    pytest.importorskip('mujoco')
    w = _world3d_with('red', 'sphere')
    try:
        i = ground(parse_instruction('go to the red ball'), w)
        assert (w.shapes[i].color, w.shapes[i].shape) == ('red', 'sphere')
        assert ground(parse_instruction('turn towards the red sphere'), w) == i
        assert ground(parse_instruction('go to the red circle'), w) == i   # the 2D word
        absent = next(c for c in COLOR_NAMES
                      if not any((s.color, s.shape) == (c, 'pyramid') for s in w.shapes))
        with pytest.raises(InstructionRefused, match=f'there is no {absent} pyramid here'):
            ground(parse_instruction(f'go to the {absent} pyramid'), w)
    finally:
        w.close()
    w = _world3d_with('blue', 'cylinder', cylinder_targets=True)
    try:
        i = ground(parse_instruction('find the blue drum'), w)
        assert (w.shapes[i].color, w.shapes[i].shape) == ('blue', 'cylinder')
    finally:
        w.close()


@pytest.mark.parametrize('kind', list(TEMPLATES))
def test_3d_wordings_round_trip_through_the_parser(kind):
    rng = np.random.default_rng(3)
    shapes = SHAPES_3D if kind != 'stop' else (None,)
    for shape in shapes:
        used = set()
        for held_out in (False, True):
            templates = set(TEMPLATES[kind][int(held_out)])
            for i in range(200):
                color = COLOR_NAMES[i % len(COLOR_NAMES)]
                goal = Goal('stop') if kind == 'stop' else Goal(kind, color, shape)
                text = instruction_text(rng, goal, held_out)
                assert parse_instruction(text) == goal, text
                assert set(words(text)) <= LEXICON, text
                assert any(_fits(text, t) for t in templates), (text, held_out)
                used.update(w for w in words(text) if w in SHAPE_WORDS)
        if shape is not None:   # canonical usually, every synonym sometimes
            assert used == set(SHAPE_SYNONYMS_3D[shape]), (shape, used)


def _fits(text, template):
    """Whether `text` is `template` with a target, one of PREFIXES and one of SUFFIXES."""
    filled = re.escape(template).replace(re.escape('{t}'), r'[a-z]+ [a-z]+')
    return any(re.fullmatch(re.escape(p) + filled + re.escape(s), text)
               for p in PREFIXES for s in SUFFIXES)


def test_2d_wordings_still_ground_on_their_shape():
    """2D wordings are what they were: 'box' for a rectangle parses to a cube, which the
    2D arena finds as its rectangle."""
    rng = np.random.default_rng(4)
    world = World([Shape(s, c, 0.5 + 0.5 * i, 0.5 + 0.5 * j, 0.3)
                   for i, c in enumerate(COLOR_NAMES) for j, s in enumerate(SHAPES)],
                  Pose(4.5, 4.5, 0))
    for i in range(600):
        goal = Goal(('goto', 'face')[i % 2], COLOR_NAMES[i % 8], SHAPES[i % 3])
        text = instruction_text(rng, goal, held_out=bool(i % 3 == 0))
        parsed = parse_instruction(text)
        assert parsed == goal or (goal.shape, parsed.shape) == ('rectangle', 'cube'), text
        assert ground(parsed, world) == world.find(goal.color, goal.shape), text


def test_corpus_holds_the_3d_language_and_every_instruction_word():
    pytest.importorskip('mujoco')
    pytest.importorskip('easy_vqa')
    from vla_ros.data.corpus import vocabulary_texts
    from vla_ros.sim3d.captions import NUMBER_WORDS_3D
    from vla_ros.sim3d.language import language_words
    from vla_ros.tokenizer import Tokenizer
    vocab = set(Tokenizer.from_corpus(vocabulary_texts()).vocab)
    assert set(language_words()) <= vocab, sorted(set(language_words()) - vocab)
    assert set(NUMBER_WORDS_3D) <= vocab and 'eight' in vocab
    assert LEXICON <= vocab, sorted(LEXICON - vocab)
