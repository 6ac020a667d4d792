"""Question/answer pairs and captions generated from a scene's ground truth.

Every template family has a *train* list and a *held-out* list. Training only ever
sees the train lists; `vla-ros eval --paraphrases` measures the held-out ones, so the
paraphrase figure is about wordings the model never saw.
"""
import numpy as np

from .vocabulary import COLOR_NAMES, NUMBER_WORDS, SHAPES, position_phrase, size_word

TEMPLATES = {
    'color_single': (
        ['what color is the shape?', 'what is the color of the shape?',
         'which colour is the object?', 'what colour is it?',
         'what color is the object in the picture?', 'tell me the color of the shape.',
         'the shape is what color?', 'what color do you see?'],
        ['which color is the figure?', 'can you tell me what colour the shape is?',
         'what is the colour of the object in the image?', 'name the color of the shape.']),
    'color_of_shape': (
        ['what color is the {shape}?', 'what is the color of the {shape}?',
         'which colour is the {shape}?', 'what colour is the {shape} in the image?',
         'tell me the color of the {shape}.'],
        ['the {shape} is which colour?', 'what color does the {shape} have?']),
    'shape_single': (
        ['what shape is in the image?', 'what shape is this?', 'which shape do you see?',
         'what kind of shape is it?', 'what is the object?', 'what shape is shown?',
         'identify the shape.'],
        ['what is the shape in the picture?', 'which shape is in the photo?',
         'what type of shape can you see?']),
    'shape_of_color': (
        ['what is the {color} shape?', 'what shape is the {color} object?',
         'which shape is {color}?', 'what kind of shape is the {color} one?'],
        ['what is the {color} object?', 'the {color} thing is what shape?']),
    'exists': (
        ['is there a {thing}?', 'is there a {thing} in the image?', 'do you see a {thing}?',
         'can you see a {thing}?', 'does the picture contain a {thing}?',
         'is a {thing} visible?', 'are there any {things}?'],
        ['is any {thing} present in the picture?', 'can i see a {thing} here?',
         'does the image show a {thing}?', 'do you see any {things}?']),
    'exists_negated': (
        ['is there no {thing}?', 'is there not a {thing}?', 'does the image not contain a {thing}?',
         'is the {thing} absent?', 'is there no {thing} in the picture?'],
        ['is it true that there is no {thing}?', 'does the picture not show a {thing}?']),
    'count': (
        ['how many shapes are there?', 'how many objects do you see?',
         'how many shapes are in the image?', 'count the shapes.'],
        ['what is the number of shapes?', 'how many things are in the picture?']),
    'where': (
        ['where is the {ref}?', 'where is the {ref} in the image?',
         'in which part of the image is the {ref}?'],
        ['where can i find the {ref}?', 'which part of the picture has the {ref}?']),
    'describe': (
        ['what do you see?', 'describe the image.', 'describe the scene.',
         'tell me what you see.'],
        ['what does the camera see?', 'can you describe the picture?']),
}


def _pick(rng, items):
    return items[rng.integers(len(items))]


def _preposition(pos: str) -> str:
    if pos == 'center':
        return 'in the center'
    if pos in ('left', 'right'):
        return f'on the {pos}'
    return f'at the {pos}'


def object_phrase(obj) -> str:
    size = size_word(obj.size)
    words = ['a', size, obj.color, obj.shape] if size else ['a', obj.color, obj.shape]
    return ' '.join(words) + ' ' + _preposition(position_phrase(obj.cx, obj.cy))


def caption(objects) -> str:
    """One deterministic sentence naming every object, left to right."""
    if not objects:
        return 'nothing'
    phrases = [object_phrase(o) for o in sorted(objects, key=lambda o: (o.cx, o.cy))]
    if len(phrases) == 1:
        return phrases[0]
    return ', '.join(phrases[:-1]) + ' and ' + phrases[-1]


def _thing(rng, objects):
    """A (singular, plural, present) description of something that may be in the scene."""
    shape = _pick(rng, SHAPES)
    color = _pick(rng, COLOR_NAMES)
    if rng.random() < 0.5 and objects:  # bias towards things that are there
        o = _pick(rng, objects)
        shape, color = o.shape, o.color
    kind = rng.integers(3)
    if kind == 0:
        present = any(o.color == color for o in objects)
        return f'{color} shape', f'{color} shapes', present
    if kind == 1:
        present = any(o.shape == shape for o in objects)
        return shape, f'{shape}s', present
    present = any(o.shape == shape and o.color == color for o in objects)
    return f'{color} {shape}', f'{color} {shape}s', present


def generate_qa(objects, rng: np.random.Generator, n: int, held_out: bool = False):
    """Return n (question, answer, family) triples about the given scene objects."""
    which = 1 if held_out else 0
    single = len(objects) == 1
    out = []
    while len(out) < n:
        family = _pick(rng, list(TEMPLATES))
        t = _pick(rng, TEMPLATES[family][which])
        o = _pick(rng, objects)
        same_shape = [p for p in objects if p.shape == o.shape]
        same_color = [p for p in objects if p.color == o.color]
        if family == 'color_single' and single:
            out.append((t, o.color, 'color'))
        elif family == 'color_of_shape' and len(same_shape) == 1:
            out.append((t.format(shape=o.shape), o.color, 'color'))
        elif family == 'shape_single' and single:
            out.append((t, o.shape, 'shape'))
        elif family == 'shape_of_color' and len(same_color) == 1:
            out.append((t.format(color=o.color), o.shape, 'shape'))
        elif family in ('exists', 'exists_negated'):
            thing, things, present = _thing(rng, objects)
            negated = family == 'exists_negated'
            answer = 'yes' if present != negated else 'no'
            out.append((t.format(thing=thing, things=things), answer, 'yes/no'))
        elif family == 'count':
            out.append((t, NUMBER_WORDS[len(objects)], 'count'))
        elif family == 'where' and len(same_shape) == 1:
            ref = o.shape if rng.random() < 0.5 else f'{o.color} {o.shape}'
            out.append((t.format(ref=ref), position_phrase(o.cx, o.cy), 'where'))
        elif family == 'describe':
            out.append((t, caption(objects), 'describe'))
    return out


def question_type(question: str) -> str:
    """easy-VQA question type, from the wording: color, shape, yes/no color, yes/no shape."""
    words = question.lower().replace('?', ' ').split()
    if words and words[0] in ('what', 'which'):
        return 'color' if ('color' in words or 'colour' in words) else 'shape'
    kind = 'color' if any(w in COLOR_NAMES for w in words) else 'shape'
    negated = 'not' in words or 'no' in words
    return f"yes/no {kind}{' negated' if negated else ''}"
