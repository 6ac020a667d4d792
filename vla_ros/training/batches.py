"""Text batches: images and every question (and a caption) about each of them.

Three sources, mixed per step (TrainConfig): easy-VQA train images with all their
questions plus generated paraphrases, procedural 2D scenes, and robot-camera frames of
the 3D arena (sim3d/training_frames.py) with questions and a caption about what the
camera really sees. Every image is brought to the model's input size.

The 3D frames can also carry grounding rows (`grounding_per_image`): an instruction
naming an object the camera sees, with where its mask is, or one it does not see, for
the pointer action head's "not in view" (grounding_rows below).
"""
import itertools

import numpy as np
import torch

from .. import tokenizer as tok
from ..control.instructions import Goal, instruction_text
from ..data.camera import camera_frame, objects_after_letterbox
from ..data.questions import caption, generate_qa
from ..data.scenes import random_scene, render
from ..preprocess import to_model_input
from .actions import action_prompts

# Rows are padded per length group (questions of up to 10, 14 and 20 tokens, longer
# captions): one group of every question padded to 20 tokens was 42% padding, which every
# layer of the decoder processes.
LENGTH_GROUPS = (10, 14, 20)
NOT_IN_VIEW_SHARE = 0.25   # grounding rows naming an object the frame does not show


def grounding_rows(rng, view, n: int) -> list:
    """n (instruction, (u, v) or None) for one 3D frame's SceneView: "go to / face the
    <colour> <shape>" naming a seen object, with its mask centroid as fractions of the
    image, or (NOT_IN_VIEW_SHARE of them, and all when nothing is seen) a colour and
    shape that no visible object has, with None: the target is not in view."""
    from ..sim3d.training_frames import not_visible_pairs   # (only when 3D frames are drawn)
    rows, missing = [], None
    for _ in range(n):
        kind = ('goto', 'face')[int(rng.integers(2))]
        if view.seen and rng.random() >= NOT_IN_VIEW_SHARE:
            o = view.seen[int(rng.integers(len(view.seen)))]
            rows.append((instruction_text(rng, Goal(kind, o.color, o.shape)), (o.u, o.v)))
            continue
        missing = missing or not_visible_pairs(view)
        pair = missing[int(rng.integers(len(missing)))]
        rows.append((instruction_text(rng, Goal(kind, *pair)), None))
    return rows


def encode_example(tokenizer, prompt_token: int, prompt: str, target: str):
    """-> (input ids, labels): labels are -100 on the prompt, the target + <eos> after it."""
    tail = [tok.ANSWER] if prompt_token == tok.QUESTION else []
    p = [prompt_token] + tokenizer.encode(prompt) + tail
    t = tokenizer.encode(target) + [tok.EOS]
    full = p + t
    labels = [-100] * (len(p) - 1) + t
    return full[:-1], labels


def length_groups(encoded: list, bounds: tuple) -> list:
    """[(image index, (ids, labels))] -> the non-empty lists of rows of up to bounds[0]
    tokens, up to bounds[1], ..., and longer than bounds[-1], in their original order."""
    groups = [[] for _ in range(len(bounds) + 1)]
    for e in encoded:
        groups[int(np.searchsorted(bounds, len(e[1][0])))].append(e)
    return [g for g in groups if g]


class BatchMaker:
    """Assembles (images, token ids, labels, image index per sequence) for one step."""

    def __init__(self, cfg, tokenizer, split, train_rows, rng, image_size: int = 64):
        self.cfg, self.tokenizer, self.split, self.rng = cfg, tokenizer, split, rng
        self.train_rows, self.image_size = train_rows, image_size
        self._draw3d = None     # n -> n labelled 3D arena frames, made on first use
        self.questions_by_image = [[] for _ in range(len(split.images))]
        for q, a, i in split.questions:
            self.questions_by_image[i].append((q, a))
        self.order, self.cursor = [], 0

    def _next_easy_vqa(self):
        if self.cursor >= len(self.order):
            self.order, self.cursor = self.rng.permutation(self.train_rows), 0
        i = self.order[self.cursor]
        self.cursor += 1
        return i

    def _questions(self, objects, n, families=None):
        """n generated questions; a few get a made-up word the model must learn to ignore."""
        out = []
        for q, a, _family in generate_qa(objects, self.rng, n, families=families):
            if self.rng.random() < self.cfg.unknown_word_prob:
                words = q.split(' ')
                junk = ''.join(self.rng.choice(list('bcdfghklmnprstvz'), self.rng.integers(3, 8)))
                words.insert(int(self.rng.integers(len(words) + 1)), junk + 'o')
                q = ' '.join(words)
            out.append((tok.QUESTION, q, a))
        return out

    def _augment(self, img, objects):
        """Sometimes turn the image into a small camera-like frame, letterboxed back to a
        square; the objects move and shrink with it, so captions and positions stay true."""
        if self.rng.random() >= self.cfg.camera_augment_prob:
            return img, objects
        width = int(self.rng.integers(64, 112))
        left = int(self.rng.integers(0, width - 64 + 1))
        frame = camera_frame(img, self.rng, width=width, height=64, left=left)
        return to_model_input(frame), objects_after_letterbox(objects, width, 64, left)

    def make(self):
        """-> (images (B, S, S, 3) uint8, [(ids, labels, image index)] per length group,
        pixel classes: (image indices, (n, S, S) uint8) of the 3D frames, or None,
        grounding rows: a dict of image index (G,), ids (G, T), lengths (G,), target_uv
        (G, 2) and target_seen (G,) as training/actions.py's action_loss reads, or None)."""
        images, seqs, labelled, classes, grounding = [], [], [], [], []
        for _ in range(self.cfg.easy_vqa_images_per_step):
            i = self._next_easy_vqa()
            img, objects = self._augment(self.split.images[i], self.split.objects[i])
            pairs = [(tok.QUESTION, q, a) for q, a in self.questions_by_image[i]]
            pairs += self._questions(objects, self.cfg.paraphrases_per_image)
            # position is learnt late from captions alone: ask where the shape is, too
            pairs += self._questions(objects, self.cfg.where_per_image, families=['where'])
            pairs.append((tok.CAPTION, '', caption(objects)))
            seqs += [(len(images), p) for p in pairs]
            images.append(img)
        for k in range(self.cfg.scene_images_per_step):
            many = k % 2 == 1   # half easy-VQA-like single shapes, half richer scenes
            scene = random_scene(self.rng, self.cfg.max_scene_objects if many else 1,
                                 varied_background=many)
            img, objects = self._augment(render(scene), scene.objects)
            pairs = self._questions(objects, self.cfg.scene_questions_per_image)
            pairs.append((tok.CAPTION, '', caption(objects)))
            seqs += [(len(images), p) for p in pairs]
            images.append(img)
        for frame in self._frames_3d(self.cfg.scene3d_images_per_step):
            pairs = [(tok.QUESTION, q, a) for q, a, _type in frame.questions]
            pairs.append((tok.CAPTION, '', frame.caption))
            seqs += [(len(images), p) for p in pairs]
            if frame.pixel_classes is not None:
                labelled.append(len(images))
                classes.append(frame.pixel_classes)
            grounding += [(len(images), text, uv) for text, uv in
                          grounding_rows(self.rng, frame.view, self.cfg.grounding_per_image)]
            images.append(frame.image)
        images = [to_model_input(img, self.image_size) for img in images]
        encoded = [(i, encode_example(self.tokenizer, t, q, a)) for i, (t, q, a) in seqs]
        groups = [self._pad(g) for g in length_groups(encoded, LENGTH_GROUPS)]
        pixels = (torch.tensor(labelled), np.stack(classes)) if labelled else None
        return (torch.from_numpy(np.stack(images)), groups, pixels,
                self._grounding(grounding) if grounding else None)

    def _grounding(self, rows):
        """[(image index, instruction, (u, v) or None)] -> make()'s grounding dict."""
        ids, lengths = action_prompts(self.tokenizer, [text for _, text, _ in rows])
        return {'index': torch.tensor([i for i, _, _ in rows]), 'ids': ids,
                'lengths': lengths,
                'target_uv': torch.tensor([uv or (0.0, 0.0) for _, _, uv in rows]),
                'target_seen': torch.tensor([float(uv is not None) for _, _, uv in rows])}

    def _frames_3d(self, n: int):
        """n labelled frames of the 3D arena (training seeds and styles)."""
        if n <= 0:
            return []
        if self._draw3d is None:   # a pool of renders, or every frame rendered anew
            from ..sim3d.training_frames import FramePool, labelled_frames
            size, questions = self.image_size, self.cfg.scene3d_questions_per_image
            pixel_labels = self.cfg.patch_label_weight > 0
            busy = self.cfg.scene3d_busy_tries
            if self.cfg.scene3d_pool:
                self._draw3d = FramePool(self.rng, self.cfg.scene3d_pool, size, questions,
                                         pixel_labels, workers=self.cfg.threads,
                                         busy_tries=busy).draw
            else:
                endless = labelled_frames(self.rng, 1 << 62, size, questions,
                                          pixel_labels=pixel_labels, busy_tries=busy)
                self._draw3d = lambda k: list(itertools.islice(endless, k))
        return self._draw3d(n)

    @staticmethod
    def _pad(encoded):
        """[(image index, (ids, labels))] -> (ids, labels, image index) tensors."""
        length = max(len(x) for _, (x, _) in encoded)
        ids = torch.full((len(encoded), length), tok.PAD, dtype=torch.long)
        labels = torch.full((len(encoded), length), -100, dtype=torch.long)
        for row, (_, (x, y)) in enumerate(encoded):
            ids[row, :len(x)] = torch.tensor(x)
            labels[row, :len(y)] = torch.tensor(y)
        return ids, labels, torch.tensor([i for i, _ in encoded])
