"""Data: easy-VQA labels, procedural scenes, generated questions, camera frames."""
import numpy as np
import pytest

from vla_ros.data.camera import camera_frame
from vla_ros.data.easy_vqa import label_disagreements, load_split
from vla_ros.data.questions import TEMPLATES, caption, generate_qa, question_type
from vla_ros.data.scenes import Scene, SceneObject, random_scene, render
from vla_ros.data.vocabulary import position_phrase
from vla_ros.preprocess import ImageError, to_model_input


@pytest.fixture(scope='module')
def test_split():
    return load_split('test')


def test_easy_vqa_test_split_is_the_official_one(test_split):
    assert test_split.images.shape == (1000, 64, 64, 3)
    assert len(test_split.questions) == 9673


def test_derived_labels_agree_with_every_yes_no_answer(test_split):
    assert label_disagreements(test_split) == 0


def test_scenes_are_deterministic_for_a_seed():
    a = render(random_scene(np.random.default_rng(7), 3, True))
    b = render(random_scene(np.random.default_rng(7), 3, True))
    assert np.array_equal(a, b) and a.shape == (64, 64, 3) and a.dtype == np.uint8


def test_rendered_shape_has_its_colour_where_the_scene_says():
    obj = SceneObject('circle', 'teal', 0.25, 0.75, 0.3)
    img = render(Scene([obj], background_rgb=(250, 250, 250)))
    assert tuple(img[48, 16]) == (0, 128, 128)
    assert tuple(img[10, 54]) == (250, 250, 250)


def test_generated_answers_are_true_of_the_scene():
    obj = [SceneObject('triangle', 'red', 0.8, 0.2, 0.3)]
    rng = np.random.default_rng(0)
    for q, a, family in generate_qa(obj, rng, 300):
        if family == 'color':
            assert a == 'red'
        elif family == 'shape':
            assert a == 'triangle'
        elif family == 'where':
            assert a == 'top right'
        elif family == 'describe':
            assert a == 'a red triangle at the top right'
        elif family == 'absent':
            assert a.startswith('there is no ') and a[12:].split()[0] in q
        elif family == 'yes/no':
            mentions_other = any(w in q for w in ('blue', 'green', 'circle', 'rectangle',
                                                  'gray', 'teal', 'brown', 'yellow', 'black'))
            negated = any(w in q.replace('?', ' ').split() for w in
                          ('no', 'not', 'absent', 'lack', 'without', 'missing'))
            assert (a == 'yes') == (mentions_other == negated), q


def test_held_out_templates_are_disjoint_from_training_ones():
    for train, held_out in TEMPLATES.values():
        assert not set(train) & set(held_out)


def test_captions_name_every_object_left_to_right():
    objs = [SceneObject('circle', 'blue', 0.8, 0.5, 0.2),
            SceneObject('rectangle', 'gray', 0.1, 0.1, 0.45)]
    assert caption(objs) == ('a large gray rectangle at the top left and '
                             'a small blue circle on the right')
    assert position_phrase(0.5, 0.5) == 'center'


def test_question_types():
    assert question_type('what color is the shape?') == 'color'
    assert question_type('what is the blue shape?') == 'shape'
    assert question_type('does the image not contain a gray shape?') == 'yes/no color negated'
    assert question_type('is there a circle?') == 'yes/no shape'


def test_camera_frame_is_a_640x480_rgb_frame():
    img = render(random_scene(np.random.default_rng(1)))
    frame = camera_frame(img, np.random.default_rng(1))
    assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8


@pytest.mark.parametrize('shape', [(480, 640, 3), (64, 64, 3), (10, 300, 3), (300, 10),
                                   (20, 20, 4), (1, 1, 1)])
def test_any_frame_size_becomes_a_model_input(shape):
    out = to_model_input(np.zeros(shape, np.uint8))
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8


@pytest.mark.parametrize('bad', [np.zeros((0, 5, 3), np.uint8), np.zeros((5, 5, 2), np.uint8),
                                 np.zeros((5, 5, 3), np.float32), np.zeros((2, 2, 2, 3), np.uint8),
                                 'not an image'])
def test_unusable_frames_raise_a_clear_error(bad):
    with pytest.raises(ImageError):
        to_model_input(bad)


def test_bgr_flag_swaps_channels():
    img = np.zeros((64, 64, 3), np.uint8)
    img[..., 0] = 255
    assert to_model_input(img, bgr=True)[0, 0].tolist() == [0, 0, 255]
