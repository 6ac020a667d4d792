"""Language about the 3D arena: captions, descriptions and questions count only what the
camera sees, positions agree with the image, and no question is ambiguous.

Answers are checked against an independent oracle: World3D.visible_objects (its own
segmentation render), the scene state and the camera's pose, with the question's words
parsed back into a colour and a shape.
"""
import math
import re

import numpy as np
import pytest

pytest.importorskip('mujoco')

from vla_ros.sim.world import Pose  # noqa: E402
from vla_ros.sim3d.captions import (color_words, column, EMPTY_CAPTION,  # noqa: E402
                                    min_pixels_for, NEAR_DISTANCE, NUMBER_WORDS_3D, plural,
                                    SHAPE_WORDS_3D)
from vla_ros.sim3d.language import (ANSWER_WORDS, describe_scene, language_words,  # noqa: E402
                                    scene_caption, scene_questions, TEMPLATES_3D, TYPES)
from vla_ros.data.vocabulary import COLOR_NAMES  # noqa: E402
from vla_ros.sim3d.scene import Object3D, SHAPES_3D  # noqa: E402
from vla_ros.sim3d.styles import Style  # noqa: E402
from vla_ros.sim3d.world3d import World3D  # noqa: E402

CLEAN = Style(noise_std=0.0)
SEEN = min_pixels_for(96, 96)
COLOR_OF = {w: c for c in COLOR_NAMES for w in color_words(c)}
SHAPE_OF = {v: s for s, ws in SHAPE_WORDS_3D.items() for w in ws for v in (w, plural(w))}
# Everything a caption may say: articles, places, colours, shapes, the empty caption.
CAPTION_WORDS = set('a on in the left center right and'.split() + EMPTY_CAPTION.split()
                    + list(COLOR_NAMES) + list(SHAPES_3D))


def cube(color, x, y, side):
    return Object3D('cube', color, x, y, side * math.sqrt(2), side)


@pytest.fixture
def make_world():
    worlds = []

    def make(shapes, pose):
        worlds.append(World3D(shapes, pose, CLEAN, target=None))
        return worlds[-1]
    yield make
    for w in worlds:
        w.close()


@pytest.fixture
def hiding_world(make_world):
    """A red sphere ahead (centre, near), a blue cube to the right (near) with a green
    sphere hidden behind it, a teal cylinder to the left (far), a yellow pyramid behind
    the robot and a brown cube beside it, out of view."""
    return make_world([Object3D('sphere', 'red', 2.0, 2.55, 0.3, 0.3),
                       cube('blue', 2.21, 1.99, 0.4),
                       Object3D('sphere', 'green', 3.48, 1.40, 0.16, 0.16),
                       Object3D('pyramid', 'yellow', 0.3, 2.5, 0.3, 0.3),
                       Object3D('cylinder', 'teal', 2.8, 3.5, 0.3, 0.3),
                       cube('brown', 1.2, 4.0, 0.3)], Pose(1.0, 2.5, 0.0))


def facing_world(seed):
    """Episode `seed`'s arena with the robot turned towards one of its objects (+-0.5 rad):
    episode start poses often face a bare wall."""
    world = World3D.random(seed)
    rng = np.random.default_rng([seed, 99])
    p, i = world.pose, int(rng.integers(len(world.objects)))
    world.pose = Pose(p.x, p.y, p.theta + world.bearing(i) + float(rng.uniform(-0.5, 0.5)))
    return world


def ground_distance(world, i):
    camera = world.camera_pose()[0]
    return math.hypot(world.shapes[i].x - camera[0], world.shapes[i].y - camera[1])


def parse(question):
    """(colour, shape) the question names; None where it names none."""
    words = re.findall(r'[a-z]+', question)
    colors = {COLOR_OF[w] for w in words if w in COLOR_OF}
    shapes = {SHAPE_OF[w] for w in words if w in SHAPE_OF}
    assert len(colors) <= 1 and len(shapes) <= 1, question
    return next(iter(colors), None), next(iter(shapes), None)


def check_answer(world, question, answer, kind):
    """The oracle: asserts that the question is unambiguous and its answer right."""
    loose = world.visible_objects(min_pixels=1)     # any pixel at all
    strict = world.visible_objects(min_pixels=SEEN)
    color, shape = parse(question)

    def matching(indices):
        return [i for i in indices if (color is None or world.shapes[i].color == color)
                and (shape is None or world.shapes[i].shape == shape)]

    def name(i):
        return f'{world.shapes[i].color} {world.shapes[i].shape}'
    words = set(re.findall(r'[a-z]+', question))
    where = f'{question!r} -> {answer!r} ({kind})'
    if kind == 'count':
        assert len(matching(strict)) == len(matching(loose)), where
        assert answer == NUMBER_WORDS_3D[len(matching(strict))], where
    elif kind == 'exists':
        assert answer == ('yes' if matching(strict) else 'no'), where
        assert answer == 'yes' or not matching(loose), where
    elif kind == 'absent':
        assert not matching(loose) and answer.startswith('there is no '), where
        assert answer == 'there is no ' + (f'{color} {shape}' if color and shape
                                           else shape or f'{color} object'), where
    elif kind == 'relation' and words & {'nearest', 'closest', 'farthest', 'furthest'}:
        order = sorted(loose, key=lambda i: ground_distance(world, i))
        if words & {'farthest', 'furthest'}:
            order = order[::-1]
        assert order[0] in strict and answer == name(order[0]), where
    else:   # a question about one object: exactly one candidate, seen
        assert len(matching(loose)) == 1 and matching(loose)[0] in strict, where
        i = matching(loose)[0]
        if kind == 'color':
            assert answer == world.shapes[i].color, where
        elif kind == 'shape':
            assert answer == world.shapes[i].shape, where
        elif kind == 'distance':
            near = ground_distance(world, i) < NEAR_DISTANCE
            if answer in ('near', 'far'):
                assert answer == ('near' if near else 'far'), where
            else:
                asks_near = not words & {'far'}
                assert answer == ('yes' if asks_near == near else 'no'), where
        elif kind == 'relation':
            assert answer == 'nothing' or answer in [name(j) for j in strict if j != i], where
        else:
            assert kind == 'position' and answer in ('left', 'center', 'right', 'yes', 'no')


def test_hidden_and_out_of_view_objects_never_count(hiding_world):
    w = hiding_world
    assert w.in_view(2) and w.ego(3)[0] < 0 and not w.in_view(5)   # hidden, behind, beside
    described = {d['index']: d for d in describe_scene(w)}
    assert set(described) == set(w.visible_objects(min_pixels=SEEN)) == {0, 1, 4}
    assert [(described[i]['position'], described[i]['distance']) for i in (0, 1, 4)] == \
        [('center', 'near'), ('right', 'near'), ('left', 'far')]
    seg = w.segmentation()
    assert all(d['pixels'] == int((seg == i).sum()) for i, d in described.items())
    assert scene_caption(w) == ('a red sphere in the center, a blue cube on the right '
                                'and a teal cylinder on the left')   # nearest first
    qa = scene_questions(w, np.random.default_rng(0), 300)
    assert {k for _q, _a, k in qa} == set(TYPES)
    for q, a, k in qa:
        check_answer(w, q, a, k)
        if {'green', 'yellow', 'brown'} & set(re.findall(r'[a-z]+', q)):
            assert a in ('no', 'zero') or a.startswith('there is no'), (q, a)
    hidden_exists = [(q, a) for q, a, k in qa if k == 'exists' and
                     any(c in q for c in ('green', 'yellow', 'brown'))]
    assert hidden_exists and all(a == 'no' for _q, a in hidden_exists)


def test_nothing_seen_gives_the_empty_caption(hiding_world):
    hiding_world.pose = Pose(1.0, 2.5, -math.pi / 2)   # facing the wall at y = 0
    assert describe_scene(hiding_world) == []
    assert scene_caption(hiding_world) == EMPTY_CAPTION
    qa = scene_questions(hiding_world, np.random.default_rng(1), 40)
    assert {k for _q, _a, k in qa} <= {'count', 'absent'}   # nothing else can be asked
    assert all(a == 'zero' or a.startswith('there is no') for _q, a, _k in qa)


def test_left_center_right_follows_the_object_across_the_image(make_world):
    w = make_world([Object3D('sphere', 'red', 2.6, 2.5, 0.3, 0.3)], Pose(1.0, 2.5, 0.0))
    K = w.camera_info()['K']
    words = set()
    for theta in np.linspace(-0.6, 0.6, 13):
        w.pose = Pose(1.0, 2.5, float(theta))
        c, R = w.camera_pose()
        x, _y, z = R.T @ (np.array(w.shapes[0].centre) - c)   # optical frame
        u = (K[0, 0] * x / z + K[0, 2] + 0.5) / 96             # fraction of the width
        described = describe_scene(w)
        assert len(described) == 1 and abs(described[0]['u'] - u) < 0.03, (theta, u)
        if min(abs(u - 1 / 3), abs(u - 2 / 3)) > 0.03:
            assert described[0]['position'] == column(u), (theta, u)
            words.add(described[0]['position'])
    assert words == {'left', 'center', 'right'}


@pytest.mark.parametrize('held_out', [False, True])
def test_answers_right_and_unambiguous_over_many_scenes(held_out):
    for seed in range(25):
        with facing_world(seed) as w:
            for q, a, k in scene_questions(w, np.random.default_rng(seed), 12, held_out):
                check_answer(w, q, a, k)


def test_captions_name_exactly_the_seen_objects():
    for seed in range(25):
        with facing_world(seed) as w:
            caption = scene_caption(w)
            seen = w.visible_objects(min_pixels=SEEN)
            names = sorted(f'{w.shapes[i].color} {w.shapes[i].shape}' for i in seen)
            named = sorted(' '.join(m) for m in re.findall(
                rf"a ({'|'.join(COLOR_NAMES)}) ({'|'.join(SHAPES_3D)})", caption))
            assert named == names, (seed, caption)
            assert set(caption.replace(',', '').split()) <= CAPTION_WORDS
            assert (caption == EMPTY_CAPTION) == (not seen)


def test_held_out_wordings_never_appear_in_training():
    train = {t for _k, tr, _h in TEMPLATES_3D.values() for t in tr}
    held = {t for _k, _tr, h in TEMPLATES_3D.values() for t in h}
    assert train and held and not train & held
    asked = {False: set(), True: set()}
    for seed in range(6):
        with facing_world(seed) as w:
            for held_out in (False, True):
                rng = np.random.default_rng(seed)
                asked[held_out].update(q for q, _a, _k in scene_questions(w, rng, 30, held_out))
    assert not asked[False] & asked[True]


def test_same_seed_same_language_and_closed_answer_set():
    words = set()
    for seed in (3, 8, 21):
        runs = []
        for _ in range(2):
            with facing_world(seed) as w:
                runs.append((scene_caption(w), describe_scene(w),
                             scene_questions(w, np.random.default_rng(seed), 30)))
        assert runs[0] == runs[1]
        for _q, a, k in runs[0][2]:
            assert k in TYPES
            words.update(a.split())
    assert words <= ANSWER_WORDS, words - ANSWER_WORDS
    assert ANSWER_WORDS <= set(language_words())
    assert not {'img', 'obj', 'ref'} & set(language_words())   # slot names, not words


def test_yes_no_balanced():
    counts = {'yes': 0, 'no': 0}
    for seed in range(40):
        with facing_world(seed) as w:
            answers = [a for _q, a, _k in scene_questions(w, np.random.default_rng(seed), 10)]
        frame = {v: answers.count(v) for v in counts}
        assert abs(frame['yes'] - frame['no']) <= 3   # at most one extra per yes/no family
        counts = {v: counts[v] + frame[v] for v in counts}
    assert sum(counts.values()) > 80
    assert abs(counts['yes'] - counts['no']) <= 0.1 * sum(counts.values()), counts
