"""What the robot's camera sees, in words: per-object descriptions and captions.

Ground truth comes from the scene state *and* a segmentation render of the robot camera
(`World3D.segmentation`), so an object hidden behind another, behind the robot or out of
the field of view is never described. One render gives everything: which objects are
seen, their pixel area and the centroid of their mask.

Two visibility levels keep the labels free of guesswork:

- *seen*: at least `min_pixels` pixels (MIN_PIXELS = 50 at 96x96, 0.5% of the frame,
  scaled with the image area): about 7x7 pixels, what it takes to tell a colour and a
  shape apart at this resolution (a model answered 32% of questions about objects under
  30 px, 76% about objects over 300). Seen objects are what captions name and what
  answers count.
- *glimpsed*: 1 to min_pixels - 1 pixels: a sliver at the image edge or behind another
  object. Neither named nor counted, and questions whose answer would change if a
  glimpsed object did count are not asked (language.py checks both readings).

Words: positions are the image's thirds (vocabulary.COLUMNS: left / center / right, the
spelling the 2D answers use), from the centroid of the object's visible mask; distance is
near / far, the ground distance from the camera to the object's centre against
NEAR_DISTANCE. Shapes get their 3D words (SHAPE_WORDS_3D), new to the model's tokenizer
and the instruction parser, which still speak of circles, rectangles and triangles.
"""
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..data.vocabulary import COLOR_SYNONYMS, COLUMNS
from .scene import SHAPES_3D

IMAGE_SIZE = 96          # px, side of the segmentation render (the camera's default size)
MIN_PIXELS = 50          # px at IMAGE_SIZE x IMAGE_SIZE: an object is seen (scaled by area)
NEAR_DISTANCE = 1.5      # m, camera-to-centre ground distance below which an object is near
# The first word is the canonical name (captions and answers); questions use any of them.
# Not 'can' for cylinder: it is the modal of "can you see ...". Not 'cone' for pyramid:
# a different solid. 'box' already means the 2D rectangle, the cube's vocabulary word.
SHAPE_WORDS_3D = {'sphere': ('sphere', 'ball'),
                  'cube': ('cube', 'box', 'block'),
                  'cylinder': ('cylinder', 'drum'),
                  'pyramid': ('pyramid',)}
PLURALS = {'box': 'boxes'}   # every other shape word takes an 's'
NUMBER_WORDS_3D = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight')
EMPTY_CAPTION = 'nothing but the floor and walls'
PLACES = {'left': 'on the left', 'center': 'in the center', 'right': 'on the right'}

assert set(SHAPE_WORDS_3D) == set(SHAPES_3D), 'every 3D shape needs its words'


def plural(word: str) -> str:
    """'cube' -> 'cubes', 'box' -> 'boxes', 'red ball' -> 'red balls'."""
    head, _, last = word.rpartition(' ')
    return (head + ' ' if head else '') + PLURALS.get(last, last + 's')


def color_words(color: str) -> tuple:
    """The words questions may use for a palette colour ('gray' -> ('gray', 'grey'))."""
    return COLOR_SYNONYMS.get(color, (color,))


def min_pixels_for(width: int, height: int) -> int:
    """MIN_PIXELS scaled from IMAGE_SIZE^2 to a width x height image (at least 1)."""
    return max(1, round(MIN_PIXELS * width * height / IMAGE_SIZE ** 2))


def column(u: float) -> str:
    """left / center / right for a horizontal position u in [0, 1] of the image width."""
    return COLUMNS[min(2, int(u * 3))]


@dataclass(frozen=True)
class ObjectView:
    """One palette object as the camera sees it."""
    index: int          # into world.shapes
    color: str          # palette colour name
    shape: str          # one of SHAPES_3D
    pixels: int         # visible pixel area at the render size
    u: float            # mask centroid, fraction of image width (0 left edge, 1 right)
    v: float            # mask centroid, fraction of image height (0 top)
    distance: float     # m, ground distance from the camera to the object's centre

    @property
    def name(self) -> str:
        return f'{self.color} {self.shape}'

    @property
    def position(self) -> str:
        """left / center / right: the third of the image holding the mask's centroid."""
        return column(self.u)

    @property
    def near(self) -> bool:
        return self.distance < NEAR_DISTANCE

    @property
    def range_word(self) -> str:
        return 'near' if self.near else 'far'


@dataclass(frozen=True)
class SceneView:
    """A frame's ground truth: palette objects seen, glimpsed, and present but unseen."""
    seen: tuple         # ObjectView, nearest first
    glimpsed: tuple     # ObjectView with 1..min_pixels-1 pixels, nearest first
    unseen: tuple       # world.shapes indices of palette objects with no pixel at all
    world_objects: tuple   # (color, shape) of every palette object in the arena
    width: int
    height: int
    min_pixels: int

    @property
    def visible(self) -> tuple:
        """Objects with any pixel: what a question must be robust to."""
        return tuple(sorted(self.seen + self.glimpsed, key=lambda o: o.distance))


def observe(world, width: int = IMAGE_SIZE, height: int = IMAGE_SIZE,
            min_pixels: Optional[int] = None) -> SceneView:
    """The SceneView of the world's current camera frame (one segmentation render).

    Same visibility rule as World3D.visible_objects: a palette object is seen when its
    segmentation mask covers >= min_pixels pixels (default scaled from MIN_PIXELS).
    """
    min_pixels = min_pixels_for(width, height) if min_pixels is None else int(min_pixels)
    assert min_pixels >= 1, 'min_pixels must be at least 1'
    seg = world.segmentation(width, height)                    # (H, W) object index or -1
    counts = np.bincount(seg.ravel() + 1, minlength=len(world.shapes) + 1)[1:]
    cols = np.arange(width, dtype=np.float64)
    rows = np.arange(height, dtype=np.float64)
    camera = world.camera_pose()[0]
    seen, glimpsed, unseen = [], [], []
    for i in world.objects:
        n = int(counts[i])
        if n == 0:
            unseen.append(i)
            continue
        mask = seg == i
        # Centroid of the pixel centres, as a fraction of the image: column c covers
        # [c, c + 1) of the width.
        u = float((mask.sum(axis=0) @ cols) / n + 0.5) / width
        v = float((mask.sum(axis=1) @ rows) / n + 0.5) / height
        s = world.shapes[i]
        view = ObjectView(i, s.color, s.shape, n, u, v,
                          math.hypot(s.x - camera[0], s.y - camera[1]))
        (seen if n >= min_pixels else glimpsed).append(view)

    def nearest_first(views):
        return tuple(sorted(views, key=lambda o: (o.distance, o.index)))
    return SceneView(nearest_first(seen), nearest_first(glimpsed),
                     tuple(unseen), tuple((world.shapes[i].color, world.shapes[i].shape)
                                          for i in world.objects),
                     int(width), int(height), min_pixels)


def describe_scene(world, width: int = IMAGE_SIZE, height: int = IMAGE_SIZE,
                   min_pixels: Optional[int] = None) -> list:
    """Per-object description of what the camera sees, nearest first: one dict per seen
    palette object with index, color, shape, position (left/center/right), distance
    ('near'/'far'), metres (camera-to-centre ground distance), pixels (area) and
    u, v (mask centroid as fractions of the image)."""
    return [{'index': o.index, 'color': o.color, 'shape': o.shape, 'position': o.position,
             'distance': o.range_word, 'metres': o.distance, 'pixels': o.pixels,
             'u': o.u, 'v': o.v}
            for o in observe(world, width, height, min_pixels).seen]


def caption_of(view: SceneView) -> str:
    """The caption of an observed frame: every seen object, nearest first."""
    if not view.seen:
        return EMPTY_CAPTION
    phrases = [f'a {o.name} {PLACES[o.position]}' for o in view.seen]
    if len(phrases) == 1:
        return phrases[0]
    return ', '.join(phrases[:-1]) + ' and ' + phrases[-1]


def scene_caption(world, view: Optional[SceneView] = None) -> str:
    """A sentence naming every palette object the camera sees with its colour, shape and
    place, nearest first: 'a red sphere on the left and a blue cube in the center'.
    EMPTY_CAPTION when none is seen. Pass `view` (from observe) to skip the render."""
    return caption_of(view if view is not None else observe(world))
