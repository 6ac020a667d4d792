"""The transformers backend: a local Hugging Face image-text-to-text model directory
(SmolVLM / Idefics3, PaliGemma and PaliGemma 2, LLaVA, Qwen2-VL and Qwen2.5-VL) run by
transformers on torch.

Nothing is fetched at run time: files load with `local_files_only` and HF_HUB_OFFLINE is
set (unless the caller set it). The directory is checked first (hf_families.py); the
model's own Python code runs only with `trust_remote_code`; weights must be safetensors.
Each family gets its own prompt: the processor's chat template (SmolVLM, LLaVA) or
PaliGemma's task prefixes ('answer en <question>', 'caption en'); Qwen2-VL's inputs are
assembled from its tokenizer and image processor (AssembledProcessor).

Cost on a CPU is dominated by the image's tokens, so the image has a budget: frames are
scaled down to `image_max_side` pixels on their longest side before the processor, and
Idefics3's tiling (`image_splitting`: tiles of the processor's size covering that side,
plus a global view) is off by default, which keeps one tile's tokens. PaliGemma and
LLaVA resize to their checkpoint's fixed resolution whatever the frame, so their token
count is the checkpoint's (choose e.g. PaliGemma 224 for a CPU). Qwen2-VL's tokens follow
the frame's size (one per 28x28 pixels, within the checkpoint's min/max_pixels).

Replies are bounded in tokens (`max_new_tokens`) and in time (`timeout_s`): a stopping
criterion ends generation once the deadline has passed, and the call then raises
GenerationTimeout. The deadline is checked after each token, so the first check comes
after the vision encoder and the prompt (bounded by the image budget).

Greedy decoding, so the same frame and question always get the same reply.

Families that say where things are (PaliGemma's `detect`, Qwen2-VL / Qwen2.5-VL boxes)
also `ground` a phrase (their reply parsed by grounding.py, boxes in the frame's pixels,
the reply's probability as every box's score) and `act`: the instruction's free-text
target is grounded and a visual servo steers towards it (control/visual_servo.py). For
SmolVLM and LLaVA both are refused (UnsupportedError): they have no box format.
"""
import os
import time

os.environ.setdefault('HF_HUB_OFFLINE', '1')   # noqa: E402 - before transformers is imported

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import (AutoImageProcessor, AutoModelForImageTextToText,  # noqa: E402
                          AutoProcessor, AutoTokenizer, BatchFeature, StoppingCriteria)

from ..errors import CheckpointError  # noqa: E402
from ..preprocess import fit_within, to_rgb  # noqa: E402
from ..control.visual_servo import parse_open_instruction  # noqa: E402
from .api import (Engine, GenerationCanceled, GenerationTimeout, GroundingResult,  # noqa: E402
                  TextResult)
from .grounding import act_by_grounding, boxes_from_reply, centre  # noqa: E402
from .hf_families import check_model_dir, processor_file  # noqa: E402

transformers.utils.logging.set_verbosity_error()     # nodes log one line per problem
transformers.utils.logging.disable_progress_bar()

# 'int8': loaded as bfloat16 (what published checkpoints store), then every nn.Linear is
# quantized to int8 with dynamic activation scales (fbgemm kernels on x86), one layer at a
# time, and the rest (embeddings, norms) made float32: see _quantize_int8.
DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16,
          'int8': torch.bfloat16}


class Deadline(StoppingCriteria):
    """Stops generation once `seconds` have passed since `start`; records when the first
    token came and whether the deadline ended the reply."""

    def __init__(self, seconds: float, start: float):
        super().__init__()
        self.end = start + seconds
        self.start = start
        self.first_token_s = None
        self.expired = False

    def __call__(self, input_ids, scores, **kwargs):
        now = time.perf_counter()
        if self.first_token_s is None:
            self.first_token_s = now - self.start
        self.expired = self.expired or now > self.end
        return torch.full((input_ids.shape[0],), self.expired, dtype=torch.bool,
                          device=input_ids.device)


class TextStream(StoppingCriteria):
    """Calls `on_text(reply so far, tokens)` after every generated token; stops generation
    when it returns False."""

    def __init__(self, on_text, decode, prompt_len: int):
        super().__init__()
        self.on_text, self.decode, self.prompt_len = on_text, decode, prompt_len
        self.canceled = False

    def __call__(self, input_ids, scores, **kwargs):
        tokens = input_ids[0, self.prompt_len:]
        if len(tokens) and not self.canceled:
            text = self.decode(tokens, skip_special_tokens=True).strip()
            self.canceled = not self.on_text(text, len(tokens))
        return torch.full((input_ids.shape[0],), self.canceled, dtype=torch.bool,
                          device=input_ids.device)


class AssembledProcessor:
    """Qwen2-VL / Qwen2.5-VL inputs from the model's tokenizer and image processor, as
    their processor class makes them (which cannot be built without torchvision, for its
    video half): the chat template's one <|image_pad|> becomes grid_thw.prod() / merge^2
    of them, and mm_token_type_ids marks those (1) for the model's 3D rotary positions."""
    image_token = '<|image_pad|>'

    def __init__(self, tokenizer, image_processor):
        self.tokenizer, self.image_processor = tokenizer, image_processor
        self.chat_template = tokenizer.chat_template
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)

    @classmethod
    def from_pretrained(cls, directory: str, **options):
        image_processor = AutoImageProcessor.from_pretrained(directory, **options)
        if not type(image_processor).__name__.startswith('Qwen2VLImageProcessor'):
            raise ValueError(f'its image processor is a {type(image_processor).__name__}, '
                             'not a Qwen2VLImageProcessor')
        return cls(AutoTokenizer.from_pretrained(directory, **options), image_processor)

    def apply_chat_template(self, messages, add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=add_generation_prompt)

    def __call__(self, text: str, images, return_tensors: str = 'pt') -> BatchFeature:
        pixels = self.image_processor(images=images, return_tensors=return_tensors)
        merge = self.image_processor.merge_size ** 2
        for grid in pixels['image_grid_thw']:   # one placeholder per image, in order
            text = text.replace(self.image_token, '\0' * int(grid.prod() // merge), 1)
        ids = self.tokenizer(text.replace('\0', self.image_token), return_tensors=return_tensors)
        ids['mm_token_type_ids'] = (ids['input_ids'] == self.image_token_id).to(torch.int)
        return BatchFeature({**ids, **pixels})

    def decode(self, *args, **kwargs) -> str:
        return self.tokenizer.decode(*args, **kwargs)


def _load(what: str, directory: str, load):
    try:
        return load()
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f'{directory}: transformers cannot load its {what} ({first})') from e


class TransformersEngine(Engine):
    """Load a Hugging Face image-text-to-text model once; answer and caption with it."""
    backend = 'transformers'
    # any target text is the model's to ground (act refuses for families that cannot)
    parse_instruction = staticmethod(parse_open_instruction)

    def __init__(self, model: str, threads: int = 1, max_question_chars: int = 500,
                 max_new_tokens: int = 32, image_max_side: int = 512,
                 image_splitting: bool = False, timeout_s: float = 30.0,
                 trust_remote_code: bool = False, dtype: str = 'float32'):
        if max_new_tokens < 1:
            raise ValueError(f'max_new_tokens must be >= 1, got {max_new_tokens}')
        if timeout_s <= 0:
            raise ValueError(f'timeout_s must be > 0, got {timeout_s}')
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if image_max_side < 0:
            raise ValueError(f'image_max_side must be >= 0 (0: no limit), got {image_max_side}')
        self.config, self.family = check_model_dir(model, trust_remote_code)
        super().__init__(os.path.realpath(model), threads, max_question_chars)
        self.capabilities = frozenset({'answer', 'caption'} | (
            {'ground', 'act'} if self.family.grounding else set()))
        self.max_new_tokens, self.timeout_s = max_new_tokens, timeout_s
        self.image_max_side, self.image_splitting = image_max_side, image_splitting
        torch.set_num_threads(threads)
        directory, family = self.checkpoint, self.family
        options = dict(local_files_only=True, trust_remote_code=trust_remote_code)
        if family.assembled:
            self.processor = _load('tokenizer and image processor', directory, lambda:
                                   AssembledProcessor.from_pretrained(directory, **options))
        else:
            self.processor = _load('processor', directory,
                                   lambda: AutoProcessor.from_pretrained(directory, **options))
        if type(self.processor).__name__ != family.processor:
            raise CheckpointError(
                f'{os.path.join(directory, processor_file(directory))}: makes a '
                f'{type(self.processor).__name__}, but model_type '
                f'{self.config["model_type"]!r} needs a {family.processor}')
        self.tokenizer = self.processor.tokenizer
        family.shrink_tile(self.processor, self.config, image_max_side, image_splitting)
        self.model, info = _load('model', directory, lambda: AutoModelForImageTextToText
                                 .from_pretrained(directory, dtype=DTYPES[dtype],
                                                  use_safetensors=True,
                                                  output_loading_info=True, **options))
        if type(self.model).__name__ not in family.architectures:
            raise CheckpointError(f'{directory}: loaded a {type(self.model).__name__}, expected '
                                  f"{' or '.join(family.architectures)}")
        bad = {k: v for k, v in info.items() if k in ('missing_keys', 'mismatched_keys') and v}
        if bad:
            raise CheckpointError(f'{os.path.join(directory, "model.safetensors")}: weights do '
                                  f'not fit config.json ({_summary(bad)})')
        self.model.eval()
        if dtype == 'int8':
            _quantize_int8(self.model)

    # -- inputs -------------------------------------------------------------------------------
    def prepare_image(self, image: np.ndarray, bgr: bool = False) -> Image.Image:
        """Any-size uint8 frame -> RGB PIL image within the budget. Raises ImageError."""
        return Image.fromarray(fit_within(to_rgb(image, bgr), self.image_max_side))

    def model_inputs(self, image: Image.Image, prompt: str) -> dict:
        """The processor's tensors for one prompt (with its image placeholder) and image."""
        kwargs = self.family.processor_kwargs(self.processor, self.image_max_side,
                                              self.image_splitting)
        return self.processor(text=prompt, images=[image], return_tensors='pt', **kwargs)

    def question_prompt(self, question: str) -> str:
        return self.family.question_prompt(self.processor, question)

    def caption_prompt(self) -> str:
        return self.family.caption_prompt(self.processor)

    # -- the API --------------------------------------------------------------------------------
    def answer(self, image: np.ndarray, question: str, bgr: bool = False,
               on_text=None) -> TextResult:
        """Answer a question about an image; `on_text` streams the reply (api.py). Raises
        ImageError / QuestionError / GenerationTimeout / GenerationCanceled."""
        start = time.perf_counter()
        question = self.check_text(question, 'question')
        return self._reply(self.prepare_image(image, bgr), self.question_prompt(question),
                           start, on_text)

    def caption(self, image: np.ndarray, bgr: bool = False) -> TextResult:
        """Describe an image (the family's caption prompt). Raises ImageError /
        GenerationTimeout."""
        start = time.perf_counter()
        return self._reply(self.prepare_image(image, bgr), self.caption_prompt(), start)

    def ground(self, image: np.ndarray, phrase: str, bgr: bool = False) -> GroundingResult:
        """Boxes around what `phrase` names, from the family's grounding prompt. Raises
        ImageError / QuestionError / GenerationTimeout / UnsupportedError (SmolVLM, LLaVA)."""
        if not self.family.grounding:
            self.unsupported('ground phrases', f'{self.family.name} models have no box format')
        start = time.perf_counter()
        phrase = self.check_text(phrase, 'phrase')
        frame = self.prepare_image(image, bgr)
        result, inputs = self._generate(frame, self.family.ground_prompt(self.processor, phrase),
                                        start, skip_special_tokens=False)
        grid = inputs.get('image_grid_thw')
        patch = getattr(self.processor.image_processor, 'patch_size', 14)
        seen = None if grid is None else (int(grid[0][1]) * patch, int(grid[0][2]) * patch)
        # boxes are in the pixels of the frame the model was given (after the budget)
        boxes = boxes_from_reply(self.family.grounding, result.text,
                                 (frame.height, frame.width), seen)
        sy, sx = image.shape[0] / frame.height, image.shape[1] / frame.width
        boxes = [(x0 * sx, y0 * sy, x1 * sx, y1 * sy) for x0, y0, x1, y1 in boxes]
        return GroundingResult(phrase, boxes, [centre(b) for b in boxes],
                               [result.confidence] * len(boxes), result.latency_ms,
                               tuple(image.shape[:2]))

    def act(self, image: np.ndarray, instruction: str, bgr: bool = False):
        """Ground the instruction's target and steer towards it (grounding.act_by_grounding).
        Raises InstructionRefused / ImageError / QuestionError / GenerationTimeout."""
        if not self.family.grounding:
            self.unsupported('follow instructions', f'{self.family.name} models give no '
                             'velocities and no boxes to steer by')
        return act_by_grounding(self, image, instruction, bgr)

    def _reply(self, image: Image.Image, prompt: str, start: float,
               on_text=None) -> TextResult:
        return self._generate(image, prompt, start, on_text)[0]

    def _generate(self, image: Image.Image, prompt: str, start: float, on_text=None,
                  skip_special_tokens: bool = True):
        """(TextResult, the processor's inputs) of greedy generation within the budgets."""
        with self._lock:
            deadline = Deadline(self.timeout_s, start)
            inputs = self.model_inputs(image, prompt)
            prompt_len = inputs['input_ids'].shape[1]
            criteria = [deadline]
            if on_text is not None:
                criteria.append(TextStream(on_text, self.processor.decode, prompt_len))
            with torch.inference_mode():
                out = self.model.generate(
                    **inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                    num_beams=1, stopping_criteria=criteria, return_dict_in_generate=True,
                    output_scores=True)
        tokens = out.sequences[0, prompt_len:]
        if on_text is not None and criteria[1].canceled:
            raise GenerationCanceled(f'canceled after {len(tokens)} tokens')
        if deadline.expired:
            raise GenerationTimeout(
                f'generation passed its {self.timeout_s:g} s deadline after '
                f'{time.perf_counter() - start:.2f} s and {len(tokens)} tokens '
                f'(first token after {deadline.first_token_s:.2f} s)')
        probs = [float(torch.softmax(s[0].float(), -1)[t]) for s, t in zip(out.scores, tokens)]
        text = self.processor.decode(tokens, skip_special_tokens=skip_special_tokens).strip()
        first = deadline.first_token_s
        return TextResult(text, float(np.prod(probs)) if probs else 0.0,
                          (time.perf_counter() - start) * 1000,
                          first_token_ms=None if first is None else first * 1000,
                          tokens=len(tokens)), inputs


def _quantize_int8(model) -> None:
    """Every nn.Linear of `model` -> a dynamically quantized int8 Linear (per-tensor
    symmetric weights, torch's default dynamic qconfig), one at a time so that only one
    layer's float32 copy exists at once; then the remaining weights -> float32 (but big
    embedding tables), and the freed heap handed back to the OS. Peak memory stays near
    the bfloat16 model's size (torch.ao.quantization.quantize_dynamic on a float32 model
    needs both copies)."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear
    from torch.ao.quantization import default_dynamic_qconfig
    # (parent, name) pairs only: a list holding the Linear modules themselves would keep
    # every float32 copy alive until the end
    slots = [(parent, name) for parent in model.modules()
             for name, child in parent.named_children() if type(child) is torch.nn.Linear]
    for parent, name in slots:
        layer = getattr(parent, name).float()
        layer.qconfig = default_dynamic_qconfig
        setattr(parent, name, DynamicInt8Linear.from_float(layer))
        del layer
    model.float()
    # Big embedding tables (the vocabulary's: 49,280 x 576 in SmolVLM-256M) stay bfloat16,
    # their rows made float32 as they are looked up: half their memory, the same values.
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding) and module.weight.numel() > 1_000_000:
            module.to(torch.bfloat16)
            module.register_forward_hook(lambda _m, _inputs, out: out.float())
    import gc
    gc.collect()
    try:   # glibc keeps freed blocks in its arenas; give them back (RSS is what robots pay)
        import ctypes
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _summary(bad: dict) -> str:
    parts = []
    for kind, keys in bad.items():
        keys = list(keys)
        parts.append(f"{kind.replace('_', ' ')}: {', '.join(map(str, keys[:3]))}"
                     + (f' and {len(keys) - 3} more' if len(keys) > 3 else ''))
    return '; '.join(parts)
