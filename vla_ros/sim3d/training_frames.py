"""Labelled robot-camera frames of the 3D arena: what the language side trains and is
evaluated on.

    for frame in labelled_frames(np.random.default_rng(0), 100):
        frame.image       (S, S, 3) uint8 RGB, the robot camera with its sensor noise
        frame.questions   [(question, answer, type)] about what the camera sees
        frame.caption     the sentence naming every seen palette object (captions.py)
        frame.seen        ('red sphere', ...) the seen objects' names, nearest first

Worlds are World3D.random(seed) episodes: training draws seeds below EVAL_SEED_START
and training styles only; evaluation takes consecutive seeds from EVAL_SEED_START, in
training or held-out styles. A world gives `frames_per_world` frames from different
viewpoints (making a world costs about as much as a frame): most look at one of its
objects from 0.4-3 m with the heading jittered, so frames show one to several objects at
every distance and position; the rest are random poses, some showing nothing at all.
Training can ask for busier views (`busy_tries` > 1: of that many drawn viewpoints, the
one with the most palette objects in the camera's field of view): frames with several
objects are where the model is weakest, and the plain draw gives few (of 600: 0-5 objects
seen 86 / 201 / 186 / 98 / 24 / 5). Evaluation frames always use one draw.
"""
import math
from dataclasses import dataclass

import numpy as np

from ..data.vocabulary import COLOR_NAMES
from ..sim.evaluate import EVAL_SEED_START   # seeds from here on: evaluation only
from ..sim.world import Pose
from .captions import caption_of, observe, SceneView
from .language import scene_questions, TYPES
from .scene import SHAPES_3D
from .world3d import World3D

AIMED_FRACTION = 0.75           # viewpoints looking at an object (the rest: random poses)
AIM_DISTANCE = (0.4, 3.0)       # m from the aimed-at object
AIM_JITTER = 0.45               # rad, std of the heading around the aimed-at object
NONE = 0        # pixel class: floor, walls, sky, clutter, the robot
N_COLOURS, N_SHAPES = len(COLOR_NAMES), len(SHAPES_3D)


@dataclass
class LabelledFrame:
    image: np.ndarray
    questions: list
    caption: str
    seen: tuple
    seed: int
    view: SceneView = None      # the ground truth the questions came from
    pixel_classes: np.ndarray = None   # (S, S) uint8 (pixel_classes below), if asked for


def palette_class(color: str, shape: str) -> int:
    """The pixel class of a palette colour + 3D shape (pixel_classes below)."""
    return 1 + COLOR_NAMES.index(color) * N_SHAPES + SHAPES_3D.index(shape)


def pixel_classes(segmentation: np.ndarray, shapes) -> np.ndarray:
    """(H, W) object index or -1 -> (H, W) uint8: NONE, or palette_class(colour, shape)
    for a pixel of a palette object (clutter counts as NONE); training/patch_labels.py
    turns these into per-patch targets."""
    lookup = np.zeros(len(shapes) + 1, np.uint8)        # index -1 -> slot 0 -> NONE
    for i, s in enumerate(shapes):
        if not s.clutter:
            lookup[i + 1] = palette_class(s.color, s.shape)
    return lookup[segmentation + 1]


def not_visible_pairs(view: SceneView) -> list:
    """Every (colour, shape) of the palette that no visible object of the view has: what
    "not in view" means for grounding (training rows and evaluate_grounding3d)."""
    visible = {(o.color, o.shape) for o in view.visible}
    return [(c, s) for c in COLOR_NAMES for s in SHAPES_3D if (c, s) not in visible]


def viewpoint(world: World3D, rng: np.random.Generator, busy_tries: int = 1) -> Pose:
    """A free pose: usually looking at a random palette object, else anywhere; with
    busy_tries > 1, of that many such poses the one with the most palette objects in the
    field of view (World3D.in_view: geometry only, nothing rendered)."""
    if busy_tries > 1:
        poses = [viewpoint(world, rng) for _ in range(busy_tries)]
        return max(poses, key=lambda p: _objects_in_view(world, p))
    objects = world.objects
    if objects and rng.random() < AIMED_FRACTION:
        j = int(objects[rng.integers(len(objects))])
        o = world.shapes[j]
        for _ in range(20):
            d = rng.uniform(*AIM_DISTANCE) + o.radius
            a = rng.uniform(-math.pi, math.pi)
            p = Pose(o.x + d * math.cos(a), o.y + d * math.sin(a), 0.0)
            if _free(world, p):
                p.theta = math.atan2(o.y - p.y, o.x - p.x) + rng.normal(0.0, AIM_JITTER)
                return p
    return world.random_free_pose(rng, clearance=0.05)


def _objects_in_view(world: World3D, p: Pose) -> int:
    world.pose = p
    return sum(world.in_view(j) for j in world.objects)


def _free(world: World3D, p: Pose) -> bool:
    margin = 0.2
    if not (margin <= p.x <= world.arena - margin and margin <= p.y <= world.arena - margin):
        return False
    return all(world.gap(i, p) > 0.05 for i in range(len(world.shapes)))


def labelled_frames(rng: np.random.Generator, count: int, image_size: int = 96,
                    questions_per_frame: int = 8, frames_per_world: int = 4,
                    seed_start: int = None, held_out_wordings: bool = False,
                    held_out_style: bool = False, types=TYPES, pixel_labels: bool = False,
                    busy_tries: int = 1):
    """Yield `count` LabelledFrames. With seed_start None, world seeds are drawn from the
    training range; otherwise they are seed_start, seed_start + 1, ... (evaluation).
    pixel_labels: also each pixel's palette class (one more segmentation render).
    busy_tries: see viewpoint (training only)."""
    if seed_start is not None and busy_tries != 1:
        raise ValueError('evaluation frames draw one viewpoint each (busy_tries=1)')
    made, k = 0, 0
    while made < count:
        seed = int(rng.integers(EVAL_SEED_START)) if seed_start is None else seed_start + k
        k += 1
        world = World3D.random(seed, held_out_style=held_out_style)
        try:
            for _ in range(min(frames_per_world, count - made)):
                world.pose = viewpoint(world, rng, busy_tries)
                view = observe(world)
                image = world.render(image_size, image_size)
                qa = scene_questions(world, rng, questions_per_frame, held_out_wordings,
                                     view=view, types=types) if questions_per_frame else []
                classes = pixel_classes(world.segmentation(image_size, image_size),
                                        world.shapes) if pixel_labels else None
                yield LabelledFrame(image, qa, caption_of(view),
                                    tuple(o.name for o in view.seen), seed, view, classes)
                made += 1
        finally:
            world.close()


CHUNK = 250     # frames per pool chunk: each chunk has its own random stream


def _render_chunk(seed: int, count: int, image_size: int, pixel_labels: bool,
                  busy_tries: int = 1) -> list:
    """One pool chunk: `count` LabelledFrames (no questions) from the stream `seed`."""
    return list(labelled_frames(np.random.default_rng(seed), count, image_size, 0,
                                pixel_labels=pixel_labels, busy_tries=busy_tries))


class FramePool:
    """`size` rendered training frames, asked fresh questions every time one is drawn.

    Rendering is most of a 3D frame's cost; a pool renders each frame once (on the first
    draw) and training draws from it, every draw with newly sampled questions about the
    frame's SceneView, so the model sees new questions but not new pixels. The pool is
    rendered in chunks of CHUNK frames, each from its own seed drawn from `rng`, by
    `workers` processes: the frames are the same whatever the number of workers.
    """

    def __init__(self, rng: np.random.Generator, size: int, image_size: int = 96,
                 questions_per_frame: int = 8, pixel_labels: bool = False, workers: int = 1,
                 busy_tries: int = 1):
        self.rng, self.size, self.image_size = rng, size, image_size
        self.busy_tries = busy_tries
        self.questions_per_frame, self.pixel_labels = questions_per_frame, pixel_labels
        self.workers = max(1, int(workers))
        self.frames = []

    def render(self) -> list:
        """Every frame of the pool, rendered now (draw() calls it the first time)."""
        counts = [min(CHUNK, self.size - k) for k in range(0, self.size, CHUNK)]
        seeds = [int(s) for s in self.rng.integers(1 << 62, size=len(counts))]
        jobs = [(seed, n, self.image_size, self.pixel_labels, self.busy_tries)
                for seed, n in zip(seeds, counts)]
        if self.workers == 1 or len(jobs) == 1:
            chunks = [_render_chunk(*job) for job in jobs]
        else:   # spawned, not forked: each worker opens its own EGL context
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor
            with ProcessPoolExecutor(min(self.workers, len(jobs)),
                                     mp_context=multiprocessing.get_context('spawn')) as pool:
                chunks = list(pool.map(_render_chunk, *zip(*jobs)))
        self.frames = [f for chunk in chunks for f in chunk]
        return self.frames

    def draw(self, n: int) -> list:
        """n LabelledFrames drawn with replacement, each with fresh questions."""
        if not self.frames:
            self.render()
        out = []
        for k in self.rng.integers(len(self.frames), size=n):
            f = self.frames[k]
            qa = scene_questions(None, self.rng, self.questions_per_frame, view=f.view)
            out.append(LabelledFrame(f.image, qa, f.caption, f.seen, f.seed, f.view,
                                     f.pixel_classes))
        return out
