"""`BundledEngine`: what the bundled model's two backends (torch_backend.py,
onnxruntime_backend.py) share: its prompts, one lock, batching, the encodings of recent
frames, grounding with the pointer head and the latency accounting; the backends only
say how pixels and token ids become tokens, velocities and pointer logits. No torch.
"""
import re
import time
from collections import defaultdict

import numpy as np

from .. import tokenizer as tok
from ..control.instructions import InstructionRefused, parse_instruction, words
from ..preprocess import ImageError, to_model_input
from .api import (ActionResult, Engine, finite_or_zero, GenerationCanceled, GroundingResult,
                  QuestionError, TextResult)
from .grounding import pointer_boxes

REPLY_ROOM = 12   # tokens kept free after a prompt for the reply
ENCODED_FRAMES = 4   # read-only frames whose encodings an engine remembers


def parse_named_target(text: str):
    """parse_instruction, with targets named through another object ("the cube left of the
    green ball") refused: the bundled model's demonstrations name every target by its
    colour and shape, so it was never taught to resolve one."""
    goal = parse_instruction(text)
    if goal.side is not None:
        raise InstructionRefused(f"'{goal.target}': this model was not trained on targets "
                                 "named through another object; name the target by its "
                                 "colour and shape, e.g. 'go to the green ball'")
    return goal


class BundledEngine(Engine):
    """The bundled model's answer / caption / act on top of a backend's `_encode`,
    `_decode` and `_act`.

    Subclasses set `config` (ModelConfig), `tokenizer` and `image_size` and implement
    `prepare_image`, `_encode(pixels) -> visual tokens`, `_decode(visual, rows, prompts)
    -> [(token ids, probabilities)]` and `_act(pixels, prompt_ids) -> (linear, angular,
    done probability)`.
    """

    parse_instruction = staticmethod(parse_named_target)   # colours and shapes it knows

    def __init__(self, checkpoint: str = None, threads: int = 1, max_question_chars: int = 500):
        super().__init__(checkpoint, threads, max_question_chars)
        self._encoded = []   # [(frozen frame, bgr, its visual tokens)], newest last

    @property
    def known_words(self) -> set:
        """The tokenizer's words: an instruction with any other word is refused."""
        return set(self.tokenizer.index)

    @property
    def capabilities(self) -> frozenset:
        return frozenset({'answer', 'caption', 'act'} | ({'ground'} if self.has_pointer
                                                         else set()))

    # -- inputs ---------------------------------------------------------------------------
    def pixels(self, image: np.ndarray, bgr: bool = False) -> np.ndarray:
        """Any-size uint8 frame -> (1, S, S, 3) uint8 RGB array. Raises preprocess.ImageError."""
        return to_model_input(image, self.image_size, bgr)[None]

    def prepare_image(self, image: np.ndarray, bgr: bool = False):
        """Any-size uint8 frame -> the backend's (1, S, S, 3) input. Raises ImageError."""
        return self.pixels(image, bgr)

    def prompt_ids(self, lead: int, text: str, what: str, tail=()) -> list:
        """`lead text tail` as token ids; QuestionError when the text is unusable."""
        stripped = self.check_text(text, what)
        ids = [lead] + self.tokenizer.encode(stripped) + list(tail)
        room = self.config.max_text_len - REPLY_ROOM
        if len(ids) > room:
            raise QuestionError(f'{what} is {len(ids)} tokens long; the model reads at most '
                                f'{room} (fewer, longer words are fine)')
        return ids

    # -- the three things the model does -----------------------------------------------------
    def answer(self, image: np.ndarray, question: str, bgr: bool = False,
               on_text=None) -> TextResult:
        """Answer a question about an image; `on_text` gets the whole reply once. Raises
        ImageError / QuestionError / GenerationCanceled."""
        prompt = self.prompt_ids(tok.QUESTION, question, 'question', (tok.ANSWER,))
        result = self._text(image, prompt, bgr)
        if on_text is not None and not on_text(result.text, result.tokens):
            raise GenerationCanceled('canceled')
        return result

    def caption(self, image: np.ndarray, bgr: bool = False) -> TextResult:
        """Describe an image in one sentence. Raises ImageError."""
        return self._text(image, [tok.CAPTION], bgr)

    def act(self, image: np.ndarray, instruction: str, bgr: bool = False) -> ActionResult:
        """Velocity command for following an instruction, and where the pointer head saw
        its target (if the model has one). Raises ImageError / QuestionError."""
        start = time.perf_counter()
        pixels = self.prepare_image(image, bgr)
        prompt = self.prompt_ids(tok.ACTION, instruction, 'instruction')
        with self._lock:
            linear, angular, done, pointer = self._act(pixels, prompt)
        ms = (time.perf_counter() - start) * 1000
        grounding = None if pointer is None else \
            self._pointer_grounding(pointer, instruction, image.shape[:2], ms)
        return ActionResult(finite_or_zero(linear), finite_or_zero(angular),
                            finite_or_zero(done), ms, grounding)

    @property
    def has_pointer(self) -> bool:
        return bool(self.config.action_pointer)

    def ground(self, image: np.ndarray, phrase: str, bgr: bool = False) -> GroundingResult:
        """Where the pointer head looks for `phrase` ("red ball", "the blue cube"): it was
        trained on instructions, so it reads the phrase as "go to the <phrase>". Raises
        ImageError / QuestionError (also for words the model does not know) /
        UnsupportedError (no pointer head)."""
        if not self.has_pointer:
            self.unsupported('ground phrases', self.no_pointer_reason)
        phrase = self.check_text(phrase, 'phrase')
        unknown = [w for w in words(phrase) if w not in self.known_words]
        if unknown:
            raise QuestionError('the model does not know the word(s) '
                                + ', '.join(repr(w) for w in unknown))
        target = re.sub(r'^(the|a|an)\s+', '', phrase, flags=re.I)
        result = self.act(image, f'go to the {target}', bgr)
        grounding = result.grounding
        grounding.phrase = phrase
        return grounding

    no_pointer_reason = 'its action head has no pointer (config action_pointer: false)'

    def _pointer_grounding(self, logits, phrase: str, frame_hw, ms: float) -> GroundingResult:
        logits = np.asarray(logits, dtype=np.float64).reshape(-1)
        probs = np.exp(logits - logits.max())
        side = self.config.grid_side
        boxes, points, scores = pointer_boxes(probs / probs.sum(), side, self.image_size,
                                              frame_hw)
        return GroundingResult(phrase, boxes, points, scores, ms, tuple(frame_hw))

    def answer_batch(self, requests) -> list:
        """[(image, question)] -> per request, in order, its TextResult or the exception
        that refuses it (ImageError, QuestionError), from one batched model call: each
        distinct image object is encoded once, equal-length prompts are decoded together.
        The answers are answer()'s; latency_ms is the whole batch's."""
        prompts = []
        for image, question in requests:
            try:
                prompts.append(self.prompt_ids(tok.QUESTION, question, 'question',
                                               (tok.ANSWER,)))
            except QuestionError as e:
                prompts.append(e)
        return self._text_batch([image for image, _q in requests], prompts)

    def caption_batch(self, images) -> list:
        """[image] -> per image its caption() TextResult or ImageError, from one batched
        model call (the captions of several cameras at once)."""
        return self._text_batch(list(images), [[tok.CAPTION]] * len(images))

    def _text_batch(self, images: list, prompts: list) -> list:
        """Replies to prompt i (token ids, or the exception refusing it) about images[i]."""
        start = time.perf_counter()
        results = [None] * len(images)
        distinct, image_rows, asked = [], {}, {}
        for n, (image, prompt) in enumerate(zip(images, prompts)):
            if isinstance(prompt, Exception):
                results[n] = prompt
                continue
            if id(image) not in image_rows:
                image_rows[id(image)] = len(distinct)
                distinct.append(image)
            asked[n] = (prompt, image_rows[id(image)])
        by_length = defaultdict(list)
        for n, (prompt, _row) in asked.items():
            by_length[len(prompt)].append(n)
        with self._lock:
            visual, failed = self._visual(distinct)
            for members in by_length.values():
                members = [n for n in members if asked[n][1] not in failed]
                if not members:
                    continue
                decoded = self._decode(visual, [asked[n][1] for n in members],
                                       [asked[n][0] for n in members])
                for n, reply in zip(members, decoded):
                    results[n] = reply
        ms = (time.perf_counter() - start) * 1000
        for n, (_prompt, row) in asked.items():
            results[n] = failed[row] if row in failed else self._result(*results[n], ms)
        return results

    def _visual(self, images: list, bgr: bool = False):
        """(visual tokens, one row per image (a failed image's row is a placeholder),
        {row: ImageError}). Frames frozen read-only (as the nodes' camera frames are) are
        remembered with their encoding, so asking about the same frame again, in the next
        batch or for a caption, does not encode it again. Lock held."""
        rows, new, failed = [None] * len(images), [], {}
        for i, image in enumerate(images):
            rows[i] = next((v for frame, was_bgr, v in self._encoded
                            if frame is image and was_bgr == bgr), None)
            if rows[i] is None:
                try:
                    new.append((i, self.pixels(image, bgr)))
                except ImageError as e:
                    failed[i] = e
        if new:
            visual = self._encode(np.concatenate([p for _i, p in new]))
            for k, (i, _p) in enumerate(new):
                rows[i] = visual[k:k + 1]
                if isinstance(images[i], np.ndarray) and not images[i].flags.writeable:
                    self._encoded = (self._encoded + [(images[i], bgr, rows[i])])[-ENCODED_FRAMES:]
        present = [r for r in rows if r is not None]
        if not present:
            return None, failed
        rows = [r if r is not None else present[0] for r in rows]   # failed: never read
        return self._join(rows), failed

    def _text(self, image, prompt: list, bgr: bool = False) -> TextResult:
        start = time.perf_counter()
        with self._lock:
            visual, failed = self._visual([image], bgr)
            if failed:
                raise failed[0]
            tokens, probs = self._decode(visual, [0], [prompt])[0]
        return self._result(tokens, probs, (time.perf_counter() - start) * 1000)

    def _result(self, tokens, probs, ms: float) -> TextResult:
        confidence = float(np.prod(np.asarray(probs, dtype=np.float32)))
        return TextResult(self.tokenizer.decode(tokens), confidence, ms, tokens=len(tokens))

    def max_new_tokens(self, prompt_len: int, limit: int = 24) -> int:
        """Reply length cap: as model.generate, the text never outgrows max_text_len."""
        return min(limit, self.config.max_text_len - prompt_len + 1)

    # -- what a backend provides ------------------------------------------------------------
    def _encode(self, pixels):
        """uint8 (B, S, S, 3) -> the visual tokens (B, Q, dim) the decoder reads."""
        raise NotImplementedError

    def _join(self, parts: list):
        """Visual tokens of several images (each (1, Q, dim)) as one batch."""
        raise NotImplementedError

    def _decode(self, visual, rows: list, prompts: list) -> list:
        """Greedy replies to equal-length `prompts`, prompt i about visual[rows[i]]:
        [(token ids up to and including EOS, their probabilities)]."""
        raise NotImplementedError

    def _act(self, pixels, prompt: list):
        """(linear, angular, done probability, pointer logits (N + 1,) or None)."""
        raise NotImplementedError
