"""Question/answer pairs and captions generated from a scene's ground truth.

Every template family has a *train* list and a *held-out* list. Training only ever
sees the train lists; `vla-ros eval --paraphrases` measures the held-out ones, so the
paraphrase figure is about wordings the model never saw.
"""
import re

import numpy as np

from .vocabulary import COLOR_NAMES, NUMBER_WORDS, SHAPES, position_phrase, size_word

TEMPLATES = {
    'color_single': (
        ['what color is the {obj}?', 'what is the color of the {obj}?',
         'which colour is the {obj}?', 'what colour is it?', 'what color is that?',
         'what color is the {obj} in the {img}?', 'tell me the color of the {obj}.',
         'the {obj} is what color?', 'what color do you see?', 'name the colour of the {obj}.',
         "what is the {obj}'s color?", 'color of the {obj}?', 'what colour is shown?',
         'give me the colour of the {obj}.', 'say the color of the {obj}.'],
        ['which color is the {obj}?', 'can you tell me what colour the {obj} is?',
         'what is the colour of the {obj} in the {img}?', 'what color would you say it is?',
         'identify the color of the {obj}.']),
    'color_of_shape': (
        ['what color is the {shape}?', 'what is the color of the {shape}?',
         'which colour is the {shape}?', 'what colour is the {shape} in the {img}?',
         'tell me the color of the {shape}.', 'the {shape} is what colour?',
         'color of the {shape}?'],
        ['the {shape} is which colour?', 'what color does the {shape} have?',
         'can you tell me the colour of the {shape}?']),
    'shape_single': (
        ['what shape is in the {img}?', 'what shape is this?', 'which shape do you see?',
         'what kind of shape is it?', 'what is the {obj}?', 'what shape is shown?',
         'identify the shape.', 'what type of {obj} is it?', 'name the shape.',
         'what form does the {obj} have?', 'which shape is it?',
         'give me the shape of the {obj}.', 'say the shape of the {obj}.'],
        ['what is the shape in the {img}?', 'which shape is in the {img}?',
         'what type of shape can you see?', 'tell me the shape of the {obj}.',
         'what shape does the {obj} have?']),
    'shape_of_color': (
        ['what is the {color} {obj}?', 'what shape is the {color} {obj}?',
         'which shape is {color}?', 'what kind of shape is the {color} one?',
         'what is the {color} one?', 'give me the shape of the {color} {obj}.'],
        ['the {color} {obj} is what shape?', 'what shape does the {color} {obj} have?',
         'tell me the shape of the {color} {obj}.']),
    'exists': (
        ['is there a {thing}?', 'is there a {thing} in the {img}?', 'do you see a {thing}?',
         'can you see a {thing}?', 'does the {img} contain a {thing}?', 'is a {thing} visible?',
         'are there any {things}?', 'does the {img} have a {thing}?', 'is a {thing} present?',
         'do you spot a {thing}?', 'any {things} in the {img}?',
         'is there a {thing} in front of you?'],
        ['is any {thing} present in the {img}?', 'can i see a {thing} here?',
         'does the {img} show a {thing}?', 'do you see any {things}?',
         'could you see a {thing}?', 'are there {things} in the {img}?']),
    'exists_negated': (
        ['is there no {thing}?', 'is there not a {thing}?',
         'does the {img} not contain a {thing}?',
         'is the {thing} absent?', 'is there no {thing} in the {img}?', 'is no {thing} present?',
         'does the {img} lack a {thing}?', 'is the {img} without a {thing}?',
         'is the {thing} missing?', 'are there no {things}?'],
        ['is it true that there is no {thing}?', 'does the {img} not show a {thing}?',
         'is a {thing} missing from the {img}?', 'are no {things} visible?']),
    'count': (
        ['how many {obj}s are there?', 'how many {obj}s do you see?', 'count the {obj}s.',
         'how many {obj}s are in the {img}?', 'number of {obj}s?'],
        ['what is the number of {obj}s in the {img}?', 'can you count the {obj}s?']),
    'where': (
        ['where is the {ref}?', 'where is the {ref} in the {img}?', 'where is the {ref} located?',
         'in which part of the {img} is the {ref}?', 'what is the position of the {ref}?',
         'where do you see the {ref}?', 'which part of the {img} shows the {ref}?',
         'where can you see the {ref}?'],
        ['where can i find the {ref}?', 'which part of the {img} has the {ref}?',
         'what is the location of the {ref}?']),
    'describe': (
        ['what do you see?', 'describe the {img}.', 'tell me what you see.',
         'what is in the {img}?', 'what is in front of you?', 'describe what you see.',
         'give me a description of the {img}.', 'what can you see?'],
        ['what does the camera see?', 'can you describe the {img}?',
         'what is visible in the {img}?', 'describe the scene for me.']),
}
# Slot fillers and polite wrappers, shared by both lists: held-out means new sentence
# structures, not new words.
IMAGE_WORDS = ('image', 'picture', 'photo', 'scene', 'view', 'frame')
OBJECT_WORDS = ('shape', 'object', 'thing', 'figure', 'item')
PREFIXES = ('', '', '', '', 'please, ', 'hey, ', 'robot, ', 'ok, ', 'quick question: ')
SUFFIXES = ('', '', '', '', ' please', ' right now')


def template_words():
    """Every word the training templates can produce (for the tokenizer vocabulary)."""
    texts = [t for train, _held_out in TEMPLATES.values() for t in train]
    texts += list(IMAGE_WORDS + OBJECT_WORDS + PREFIXES + SUFFIXES)
    texts += [w + 's' for w in OBJECT_WORDS] + ['there is no']
    return [re.sub(r'\{\w+\}', ' ', t) for t in texts]


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


def generate_qa(objects, rng: np.random.Generator, n: int, held_out: bool = False,
                families=None):
    """Return n (question, answer, family) triples about the given scene objects.

    `families` restricts the template families (default: all of TEMPLATES).
    """
    which = 1 if held_out else 0
    single = len(objects) == 1
    families = list(families or TEMPLATES)
    out = []
    while len(out) < n:
        family = _pick(rng, families)
        t = _pick(rng, TEMPLATES[family][which])
        o = _pick(rng, objects)
        shape, color = _pick(rng, SHAPES), _pick(rng, COLOR_NAMES)
        same_shape = [p for p in objects if p.shape == o.shape]
        same_color = [p for p in objects if p.color == o.color]
        qa = None
        if family == 'color_single' and single:
            qa = (t, o.color, 'color')
        elif family == 'color_of_shape':
            if not any(p.shape == shape for p in objects):   # asked about what is not there
                qa = (t.replace('{shape}', shape), f'there is no {shape}', 'absent')
            elif len(same_shape) == 1:
                qa = (t.replace('{shape}', o.shape), o.color, 'color')
        elif family == 'shape_single' and single:
            qa = (t, o.shape, 'shape')
        elif family == 'shape_of_color':
            if not any(p.color == color for p in objects):
                qa = (t.replace('{color}', color), f'there is no {color} shape', 'absent')
            elif len(same_color) == 1:
                qa = (t.replace('{color}', o.color), o.shape, 'shape')
        elif family in ('exists', 'exists_negated'):
            thing, things, present = _thing(rng, objects)
            negated = family == 'exists_negated'
            answer = 'yes' if present != negated else 'no'
            qa = (t.replace('{thing}', thing).replace('{things}', things), answer, 'yes/no')
        elif family == 'count':
            qa = (t, NUMBER_WORDS[len(objects)], 'count')
        elif family == 'where' and len(same_shape) == 1:
            ref = o.shape if rng.random() < 0.5 else f'{o.color} {o.shape}'
            qa = (t.replace('{ref}', ref), position_phrase(o.cx, o.cy), 'where')
        elif family == 'describe':
            qa = (t, caption(objects), 'describe')
        if qa:
            q = qa[0].replace('{img}', _pick(rng, IMAGE_WORDS))
            q = q.replace('{obj}', _pick(rng, OBJECT_WORDS))
            q = _pick(rng, PREFIXES) + q
            if q.endswith('?') or q.endswith('.'):
                q = q[:-1] + _pick(rng, SUFFIXES) + q[-1]
            out.append((q,) + qa[1:])
    return out


def question_type(question: str) -> str:
    """easy-VQA question type, from the wording: color, shape, yes/no color, yes/no shape."""
    words = question.lower().replace('?', ' ').split()
    if words and words[0] in ('what', 'which'):
        return 'color' if ('color' in words or 'colour' in words) else 'shape'
    kind = 'color' if any(w in COLOR_NAMES for w in words) else 'shape'
    negated = 'not' in words or 'no' in words
    return f"yes/no {kind}{' negated' if negated else ''}"
