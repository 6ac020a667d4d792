"""Every text the model is trained on, for building the tokenizer's vocabulary."""
import json
import os

from .easy_vqa import package_split_dir
from .questions import template_words
from .vocabulary import COLOR_NAMES, COLUMNS, NUMBER_WORDS, ROWS, SHAPES

# Words of the instructions the action head follows (kept here so the vocabulary,
# and with it the checkpoint layout, does not change when actions are trained).
INSTRUCTION_WORDS = ('go to drive move turn towards toward approach find reach face head '
                     'navigate stop halt please the a an and then left right forward back '
                     'backward slowly quickly around spin wait look grey turquoise disc box '
                     'oblong round triangular now ok hey robot '
                     'sphere ball cube block cylinder drum pyramid')
CAPTION_WORDS = 'a small large in on at the center left right top bottom middle and nothing'


def vocabulary_texts():
    """Train-side templates filled with every name, easy-VQA train questions, answers, and
    every word of the 3D world's captions, questions and answers (counts up to eight)."""
    # Imported here: sim3d imports mujoco, which only training (and the 3D sims) need.
    from ..sim3d.captions import NUMBER_WORDS_3D
    from ..sim3d.language import language_words
    texts = [CAPTION_WORDS, INSTRUCTION_WORDS, ' '.join(NUMBER_WORDS), ' '.join(ROWS + COLUMNS),
             ' '.join(SHAPES), ' '.join(s + 's' for s in SHAPES), ' '.join(COLOR_NAMES),
             ' '.join(NUMBER_WORDS_3D), ' '.join(language_words())]
    texts.extend(template_words())
    with open(os.path.join(package_split_dir('train'), 'questions.json')) as f:
        texts.extend(q for q, _a, _i in json.load(f))
    return texts
