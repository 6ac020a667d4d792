"""Questions and answers about what the robot's camera sees in the 3D arena.

The 3D counterpart of data/questions.py: every family has a *train* and a *held-out*
list of wordings (same slot words in both; held-out means new sentence structures), and
answers are text from a small closed set (ANSWER_WORDS). Ground truth is captions.py's
SceneView: one segmentation render, so hidden and out-of-view objects never count.

A question is only asked when its answer is certain:
- a referent ('the red ball', 'the cube', 'the blue object') matches exactly one object
  with any visible pixel, and that object is *seen* (>= min_pixels);
- counts, existence and relations give the same answer whether or not *glimpsed*
  objects (a few pixels) are counted;
- left / center / right is asked only when the mask centroid is POSITION_MARGIN clear of
  the thirds' borders, near / far only DISTANCE_MARGIN clear of NEAR_DISTANCE, and
  relations only when the runner-up is RELATION_MARGIN / EXTREME_MARGIN behind.
Yes/no questions are asked only where both answers are possible (no "is there ...?"
in a frame showing nothing) and take turns towards the minority answer, so they come out
balanced in every frame.
"""
import re
from typing import Optional

from ..data.questions import IMAGE_WORDS, PREFIXES, SUFFIXES
from ..data.vocabulary import COLOR_NAMES, COLUMNS
from .captions import (color_words, describe_scene, EMPTY_CAPTION,  # noqa: F401 (re-exported)
                       NEAR_DISTANCE, NUMBER_WORDS_3D, observe, PLACES, plural,
                       scene_caption, SceneView, SHAPE_WORDS_3D)
from .scene import SHAPES_3D

POSITION_MARGIN = 0.04   # image widths between a centroid and a third's border
DISTANCE_MARGIN = 0.4    # m between an object's distance and NEAR_DISTANCE
RELATION_MARGIN = 0.05   # image widths between objects compared left / right
EXTREME_MARGIN = 0.5     # m between the nearest (farthest) object and the runner-up
TRIES_PER_TYPE = 30      # draws of a question type before it counts as not askable

TYPES = ('color', 'shape', 'count', 'exists', 'position', 'distance', 'relation', 'absent')
ANSWER_WORDS = frozenset(('yes', 'no', 'nothing', 'there', 'is', 'object', 'near', 'far')
                         + COLUMNS + NUMBER_WORDS_3D + COLOR_NAMES + SHAPES_3D)
OBJECT_WORDS_3D = ('object', 'thing', 'item', 'shape')
PLACE_WORDS = {'left': ('on the left',), 'center': ('in the center', 'in the middle'),
               'right': ('on the right',)}
RANGE_WORDS = {'near': ('near', 'close', 'nearby', 'close to you'),
               'far': ('far', 'far away', 'far from you')}
EXTREME_WORDS = {'nearest': ('nearest', 'closest'), 'farthest': ('farthest', 'furthest')}

# family -> (question type, train wordings, held-out wordings)
TEMPLATES_3D = {
    'color_of_shape': ('color', [
        'what color is the {shape}?', 'what colour is the {shape}?',
        'what is the color of the {shape}?', 'which colour is the {shape}?',
        'tell me the color of the {shape}.', 'the {shape} is what colour?',
        'color of the {shape}?', 'what color is the {shape} in the {img}?'], [
        'what color does the {shape} have?', 'can you tell me the colour of the {shape}?',
        'the {shape} is which color?']),
    'shape_of_color': ('shape', [
        'what shape is the {color} {obj}?', 'what is the {color} {obj}?',
        'which shape is the {color} {obj}?', 'what is the {color} one?',
        'what kind of {obj} is the {color} one?', 'name the shape of the {color} {obj}.'], [
        'the {color} {obj} is what shape?', 'what shape does the {color} {obj} have?',
        'tell me the shape of the {color} {obj}.']),
    'count': ('count', [
        'how many {things} are there?', 'how many {things} do you see?', 'count the {things}.',
        'how many {things} are in the {img}?', 'number of {things}?',
        'how many {things} can you see?'], [
        'what is the number of {things} in the {img}?', 'can you count the {things}?',
        'how many {things} are visible?']),
    'exists': ('exists', [
        'is there a {thing}?', 'is there a {thing} in the {img}?', 'do you see a {thing}?',
        'can you see a {thing}?', 'is a {thing} visible?', 'are there any {things}?',
        'do you spot a {thing}?', 'is there a {thing} in front of you?'], [
        'is any {thing} present in the {img}?', 'does the {img} show a {thing}?',
        'could you see a {thing}?', 'are there {things} in the {img}?']),
    'where': ('position', [
        'where is the {ref}?', 'where is the {ref} in the {img}?', 'where do you see the {ref}?',
        'in which part of the {img} is the {ref}?', 'where is the {ref} located?',
        'what is the position of the {ref}?'], [
        'where can i find the {ref}?', 'which part of the {img} has the {ref}?',
        'what is the location of the {ref}?']),
    'is_place': ('position', [
        'is the {ref} {place}?', 'is the {ref} {place} of the {img}?',
        'do you see the {ref} {place}?'], [
        'would you say the {ref} is {place}?', 'is it true that the {ref} is {place}?']),
    'near_far': ('distance', [
        'is the {ref} near or far?', 'is the {ref} near or far away?',
        'is the {ref} close or far?', 'how far is the {ref}, near or far?'], [
        'would you say the {ref} is near or far?', 'is the {ref} far or near?']),
    'is_near': ('distance', [
        'is the {ref} {range}?', 'do you think the {ref} is {range}?',
        'is the {ref} {range} in the {img}?'], [
        'would you say the {ref} is {range}?', 'is it true that the {ref} is {range}?']),
    'side_of': ('relation', [
        'what is {side} of the {ref}?', 'what is to the {side} of the {ref}?',
        'which {obj} is {side} of the {ref}?', 'what do you see {side} of the {ref}?'], [
        'what is next to the {ref} on its {side}?', 'name the {obj} to the {side} of the {ref}.']),
    'extreme': ('relation', [
        'which {obj} is {extreme}?', 'what is the {extreme} {obj}?', 'name the {extreme} {obj}.',
        'which is the {extreme} {obj} in the {img}?'], [
        'what {obj} is the {extreme} one?', 'tell me which {obj} is {extreme}.',
        'can you name the {extreme} {obj}?']),
}
FAMILIES = {t: [f for f, (ft, _, _) in TEMPLATES_3D.items() if ft == t] for t in TYPES}
SIDED = ('where', 'is_place', 'side_of')   # families whose answer or wording is left/right
# An absent referent ("what colour is the ball?" with no ball in view) is answered
# "there is no ball": these families can ask about one.
FAMILIES['absent'] = ['color_of_shape', 'shape_of_color', 'where', 'near_far']


def _pick(rng, items):
    return items[int(rng.integers(len(items)))]


def _matches(o, desc) -> bool:
    color, shape = desc
    return (color is None or o.color == color) and (shape is None or o.shape == shape)


def _canonical(desc) -> str:
    """'red sphere', 'sphere' or 'red object': how answers name a description."""
    color, shape = desc
    return f'{color} {shape}' if color and shape else (shape or f'{color} object')


def _phrase(rng, desc) -> str:
    """A question's words for a description, synonyms drawn: 'grey ball', 'red item'."""
    color, shape = desc
    shape_word = _pick(rng, SHAPE_WORDS_3D[shape]) if shape else None
    color_word = _pick(rng, color_words(color)) if color else None
    if color and shape:
        return f'{color_word} {shape_word}'
    return shape_word or f'{color_word} {_pick(rng, OBJECT_WORDS_3D)}'


class _Asker:
    """Draws questions about one SceneView; each family returns (slots, answer) or None."""

    def __init__(self, view: SceneView, rng):
        self.view, self.rng = view, rng
        self.seen, self.visible = list(view.seen), list(view.visible)
        self.asked = {}   # family of a two-answer question -> {answer: times given}

    def _want(self, family: str, first: str, second: str) -> str:
        """Draw the answer of a two-answer question (yes/no, near/far) before the question:
        the rarer one in this frame so far, else a coin."""
        asked = self.asked.setdefault(family, {first: 0, second: 0})
        if asked[first] != asked[second]:
            return first if asked[first] < asked[second] else second
        return first if self.rng.random() < 0.5 else second

    def _unique(self, desc):
        """The object a description names, or None if none or several are visible or it is
        only glimpsed."""
        loose = [o for o in self.visible if _matches(o, desc)]
        return loose[0] if len(loose) == 1 and loose[0] in self.seen else None

    def _referent(self, kinds=('full', 'shape', 'color'), where=None):
        """(object, description) for a random seen object (one for which where(object) is
        true, if given) named unambiguously, or None."""
        candidates = [o for o in self.seen if where is None or where(o)]
        if not candidates:
            return None
        o = _pick(self.rng, candidates)
        options = {'full': (o.color, o.shape), 'shape': (None, o.shape),
                   'color': (o.color, None)}
        valid = [options[k] for k in kinds if self._unique(options[k]) is o]
        return (o, _pick(self.rng, valid)) if valid else None

    def _absent(self, kind: Optional[str] = None, tries: int = 20):
        """A description matching no visible object (None if tries draws find none); full
        names favour objects that are in the arena but not in view (hidden, behind)."""
        rng = self.rng
        for _ in range(tries):   # retried here, so a 'no' is as easy to draw as a 'yes'
            k = kind or _pick(rng, ('full', 'full', 'shape', 'color'))
            color, shape = _pick(rng, COLOR_NAMES), _pick(rng, SHAPES_3D)
            if k == 'full' and rng.random() < 0.5 and self.view.world_objects:
                color, shape = _pick(rng, self.view.world_objects)
            desc = {'full': (color, shape), 'shape': (None, shape), 'color': (color, None)}[k]
            if not any(_matches(o, desc) for o in self.visible):
                return desc
        return None

    def _count_answer(self, desc):
        strict = sum(_matches(o, desc) for o in self.seen)
        loose = sum(_matches(o, desc) for o in self.visible)
        return NUMBER_WORDS_3D[strict] if strict == loose else None

    # -- families -------------------------------------------------------------------------
    def color_of_shape(self, absent=False):
        if absent:
            desc = self._absent('shape')
            return desc and ({'shape': _phrase(self.rng, desc)}, f'there is no {desc[1]}')
        ref = self._referent(('shape',))
        return ref and ({'shape': _phrase(self.rng, ref[1])}, ref[0].color)

    def shape_of_color(self, absent=False):
        if absent:
            desc = self._absent('color')
            return desc and ({'color': _pick(self.rng, color_words(desc[0]))},
                             f'there is no {desc[0]} object')
        ref = self._referent(('color',))
        return ref and ({'color': _pick(self.rng, color_words(ref[0].color))}, ref[0].shape)

    def count(self):
        rng = self.rng
        shared = [d for o in self.seen for d in ((o.color, None), (None, o.shape))
                  if sum(_matches(p, d) for p in self.seen) >= 2]
        if shared and rng.random() < 0.7:   # else 'zero' and 'one' are most of the answers
            desc = _pick(rng, shared)
        elif rng.random() < 0.15:
            desc = (None, None)
        else:
            o = _pick(rng, self.seen) if self.seen and rng.random() < 0.85 else None
            color = o.color if o else _pick(rng, COLOR_NAMES)
            shape = o.shape if o else _pick(rng, SHAPES_3D)
            desc = _pick(rng, ((color, None), (None, shape), (color, shape)))
        answer = self._count_answer(desc)
        words = _phrase(rng, desc) if desc != (None, None) else _pick(rng, OBJECT_WORDS_3D)
        return answer and ({'things': plural(words)}, answer)

    def exists(self):
        if not self.seen:   # only 'no' is possible: asking would unbalance yes/no
            return None
        if self._want('exists', 'yes', 'no') == 'yes':
            o = _pick(self.rng, self.seen)
            desc = _pick(self.rng, ((o.color, o.shape), (None, o.shape), (o.color, None)))
        else:
            desc = self._absent()
        if desc is None:
            return None
        answer = 'yes' if any(_matches(o, desc) for o in self.seen) else 'no'
        phrase = _phrase(self.rng, desc)
        return {'thing': phrase, 'things': plural(phrase)}, answer

    def _placed(self):
        """A referent whose centroid is POSITION_MARGIN clear of the thirds' borders."""
        ref = self._referent()
        if ref and min(abs(ref[0].u - b) for b in (1 / 3, 2 / 3)) >= POSITION_MARGIN:
            return ref
        return None

    def where(self, absent=False):
        if absent:
            desc = self._absent()
            return desc and ({'ref': _phrase(self.rng, desc)}, f'there is no {_canonical(desc)}')
        ref = self._placed()
        return ref and ({'ref': _phrase(self.rng, ref[1])}, ref[0].position)

    def is_place(self):
        ref = self._placed()
        if ref is None:
            return None
        yes = self._want('is_place', 'yes', 'no') == 'yes'
        place = ref[0].position if yes else _pick(
            self.rng, [c for c in COLUMNS if c != ref[0].position])
        return ({'ref': _phrase(self.rng, ref[1]), 'place': _pick(self.rng, PLACE_WORDS[place])},
                'yes' if yes else 'no')

    def _ranged(self, near: bool):
        """A near (far) referent DISTANCE_MARGIN clear of NEAR_DISTANCE."""
        return self._referent(where=lambda o: o.near == near and
                              abs(o.distance - NEAR_DISTANCE) >= DISTANCE_MARGIN)

    def near_far(self, absent=False):
        if absent:
            return self.where(absent=True)
        # near / far drawn first: most seen objects are far, answers should not be
        ref = self._ranged(self._want('near_far', 'near', 'far') == 'near')
        return ref and ({'ref': _phrase(self.rng, ref[1])}, ref[0].range_word)

    def is_near(self):
        ref = self._ranged(bool(self.rng.random() < 0.5))
        if ref is None:
            return None
        yes = self._want('is_near', 'yes', 'no') == 'yes'
        word = ref[0].range_word if yes else ('far' if ref[0].near else 'near')
        return ({'ref': _phrase(self.rng, ref[1]), 'range': _pick(self.rng, RANGE_WORDS[word])},
                'yes' if yes else 'no')

    def side_of(self):
        """The object immediately left (right) of a referent in the image, or 'nothing';
        the side is chosen so an object and 'nothing' are answered about equally often."""
        ref = self._referent()
        if ref is None:
            return None
        o = ref[0]
        others = [p for p in self.visible if p is not o]
        if any(abs(p.u - o.u) < RELATION_MARGIN for p in others):
            return None   # beside it, in front of or behind it: neither left nor right
        nearest = {}
        for side, sign in (('left', -1), ('right', 1)):
            nearest[side] = sorted((p for p in others if sign * (p.u - o.u) > 0),
                                   key=lambda p: abs(p.u - o.u))
        want = self._want('side_of', 'object', 'nothing')
        sides = [s for s in ('left', 'right') if bool(nearest[s]) == (want == 'object')]
        side = _pick(self.rng, sides or ['left', 'right'])
        candidates = nearest[side]
        slots = {'ref': _phrase(self.rng, ref[1]), 'side': side}
        if not candidates:
            return slots, 'nothing'
        best = candidates[0]
        if best not in self.seen or (len(candidates) > 1 and
                                     abs(candidates[1].u - best.u) < RELATION_MARGIN):
            return None
        self.asked['side_of']['object'] += 1
        return slots, best.name

    def extreme(self):
        """The nearest (farthest) of two or more visible objects."""
        which = _pick(self.rng, tuple(EXTREME_WORDS))
        order = self.visible if which == 'nearest' else self.visible[::-1]
        if len(order) < 2 or order[0] not in self.seen or \
                abs(order[1].distance - order[0].distance) < EXTREME_MARGIN:
            return None
        return {'extreme': _pick(self.rng, EXTREME_WORDS[which])}, order[0].name

    def ask(self, family: str, held_out: bool, absent: bool = False):
        """One (question, answer) of this family, or None when it cannot be asked here."""
        made = getattr(self, family)(absent=True) if absent else getattr(self, family)()
        if not made:
            return None
        slots, answer = made
        if answer in self.asked.get(family, ()):
            self.asked[family][answer] += 1
        rng = self.rng
        q = _pick(rng, TEMPLATES_3D[family][2 if held_out else 1])
        # not "what shape is the red shape?"
        objs = OBJECT_WORDS_3D[:-1] if family == 'shape_of_color' else OBJECT_WORDS_3D
        slots = dict(slots, img=_pick(rng, IMAGE_WORDS), obj=_pick(rng, objs))
        q = re.sub(r'\{(\w+)\}', lambda m: slots[m.group(1)], q)
        q = _pick(rng, PREFIXES) + q
        # not "is the ball on the left right now?" where left and right matter
        suffixes = [x for x in SUFFIXES if 'right' not in x] if family in SIDED else SUFFIXES
        return q[:-1] + _pick(rng, suffixes) + q[-1], answer


def scene_questions(world, rng, n: int, held_out: bool = False, view: Optional[SceneView] = None,
                    types=TYPES) -> list:
    """n (question, answer, type) triples about what the world's camera sees now.

    Types are drawn uniformly from `types` (default TYPES), then a family of that type;
    a draw that cannot be asked unambiguously is redrawn, up to TRIES_PER_TYPE times,
    after which the type is dropped for this frame. `held_out`
    selects the held-out wordings. Pass `view` (captions.observe) to reuse a render.
    """
    view = view if view is not None else observe(world)
    asker = _Asker(view, rng)
    out, kinds = [], list(types)
    while len(out) < n:
        assert kinds, f'no question of types {tuple(types)} can be asked about this frame'
        kind = _pick(rng, kinds)
        for _ in range(TRIES_PER_TYPE):   # retried here, so feasible types stay uniform
            qa = asker.ask(_pick(rng, FAMILIES[kind]), held_out, absent=kind == 'absent')
            if qa:
                out.append(qa + (kind,))
                break
        else:
            kinds.remove(kind)   # not askable in this frame (e.g. 'color' with no object)
    return out


def language_words() -> list:
    """Every word the train wordings, slot words, answers and captions can produce (the
    tokenizer's vocabulary must hold them; held-out wordings may add words of their own,
    as in data/questions.py)."""
    texts = [t for _type, train, _held in TEMPLATES_3D.values() for t in train]
    texts += list(IMAGE_WORDS + PREFIXES + SUFFIXES + OBJECT_WORDS_3D) + [EMPTY_CAPTION]
    texts += [plural(w) for w in OBJECT_WORDS_3D] + list(ANSWER_WORDS)
    texts += [w for words in SHAPE_WORDS_3D.values() for w in words]
    texts += [plural(w) for words in SHAPE_WORDS_3D.values() for w in words]
    texts += [w for c in COLOR_NAMES for w in color_words(c)] + list(PLACES.values())
    for table in (PLACE_WORDS, RANGE_WORDS, EXTREME_WORDS):
        texts += [w for words in table.values() for w in words]
    return sorted({w for t in texts for w in re.findall(r'[a-z]+', re.sub(r'\{\w+\}', ' ', t))})
