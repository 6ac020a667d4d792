"""The Hugging Face model families the transformers backend runs, and the checks a model
directory passes before any of its files is handed to transformers. No torch, no
transformers: the checks only read JSON and list files.

A family says which `model_type` and architectures it covers, which processor class
must come with them, how a question and a caption are put to the model, and how the
image budget (longest side in pixels, and tiling for Idefics3) reaches its processor.
"""
import json
import os
from dataclasses import dataclass
from typing import Optional

from ..errors import CheckpointError

CONFIG = 'config.json'
PROCESSOR_FILES = ('processor_config.json', 'preprocessor_config.json')
TOKENIZER_FILES = ('tokenizer.json', 'tokenizer.model', 'vocab.json')
WEIGHT_FILES = ('model.safetensors', 'model.safetensors.index.json')
CAPTION = 'Describe this image in one sentence.'


@dataclass(frozen=True)
class Family:
    name: str                   # for messages and diagnostics
    architectures: tuple        # config.json `architectures` accepted (the first is loaded)
    processor: str              # the processor class AutoProcessor must return
    style: str                  # 'chat': the processor's chat template; 'paligemma': prefixes
    fallback_prompt: str = ''   # chat style without a chat template: str.format(text=...)
    tiles: bool = False         # Idefics3: the image may be split into tiles + a global view
    # Qwen2-VL: no processor class (it needs torchvision): AssembledProcessor stands in
    assembled: bool = False
    # how the family says where things are (engine/grounding.py): 'paligemma' (<loc> tokens),
    # 'qwen25' (JSON bbox_2d), 'qwen2' ((x0,y0),(x1,y1) in 1000ths); '' = it cannot
    grounding: str = ''

    def question_prompt(self, processor, question: str) -> str:
        if self.style == 'paligemma':   # PaliGemma's task prefixes; the processor adds BOS
            return f'<image>answer en {question}'   # and the newline that ends the prefix
        return self._chat(processor, question)

    def caption_prompt(self, processor) -> str:
        if self.style == 'paligemma':
            return '<image>caption en'
        return self._chat(processor, CAPTION)

    def ground_prompt(self, processor, phrase: str) -> str:
        if self.grounding == 'paligemma':
            return f'<image>detect {phrase}'
        if self.grounding == 'qwen25':
            return self._chat(processor, f'Locate {phrase} in the image and output its bbox '
                                         'coordinates in JSON format.')
        return self._chat(processor, 'Output the bounding box of '
                                     f'<|object_ref_start|>{phrase}<|object_ref_end|>')

    def _chat(self, processor, text: str) -> str:
        if getattr(processor, 'chat_template', None):
            messages = [{'role': 'user', 'content': [{'type': 'image'},
                                                     {'type': 'text', 'text': text}]}]
            return processor.apply_chat_template(messages, add_generation_prompt=True)
        return self.fallback_prompt.format(text=text)

    def processor_kwargs(self, processor, image_max_side: int, image_splitting: bool) -> dict:
        """Keyword arguments of the processor call that enforce the image budget."""
        if not self.tiles:
            return {}
        kwargs = {'do_image_splitting': bool(image_splitting)}
        if image_splitting:   # tiles of the processor's own size cover the longest side
            tile = processor.image_processor.max_image_size['longest_edge']
            side = image_max_side or processor.image_processor.size['longest_edge']
            kwargs['size'] = {'longest_edge': max(tile, -(-side // tile) * tile)}
        return kwargs

    def shrink_tile(self, processor, config: dict, image_max_side: int,
                    image_splitting: bool) -> None:
        """Idefics3 with one tile and a budget below the processor's tile: the tile itself
        becomes smaller, a multiple of patch x pixel-shuffle pixels (64 for SmolVLM), so
        256 px gives 16 image tokens instead of 512 px's 64. Changes `processor` (its
        image processor's sizes and image_seq_len: the call's own image_seq_len argument
        is ignored by transformers 5's Idefics3Processor). The vision tower takes any
        size up to its own (position embeddings looked up by fractional position, as in
        NaViT); how well a real checkpoint answers from fewer pixels is not checked here."""
        tile = processor.image_processor.max_image_size['longest_edge'] if self.tiles else 0
        if image_splitting or not 0 < image_max_side < tile:
            return
        unit = config['vision_config']['patch_size'] * config['scale_factor']
        side = max(unit, image_max_side // unit * unit)
        processor.image_processor.max_image_size = {'longest_edge': side}
        processor.image_processor.size = {'longest_edge': side}
        processor.image_seq_len = (side // unit) ** 2


FAMILIES = {
    'idefics3': Family('SmolVLM (Idefics3)', ('Idefics3ForConditionalGeneration',),
                       'Idefics3Processor', 'chat',
                       '<|im_start|>User:<image>{text}<end_of_utterance>\nAssistant:',
                       tiles=True),
    'paligemma': Family('PaliGemma', ('PaliGemmaForConditionalGeneration',),
                        'PaliGemmaProcessor', 'paligemma', grounding='paligemma'),
    'llava': Family('LLaVA', ('LlavaForConditionalGeneration',), 'LlavaProcessor', 'chat',
                    'USER: <image>\n{text} ASSISTANT:'),
}
QWEN_PROMPT = ('<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{text}<|im_end|>\n'
               '<|im_start|>assistant\n')
for _model_type, _name, _arch, _grounding in (
        ('qwen2_vl', 'Qwen2-VL', 'Qwen2VLForConditionalGeneration', 'qwen2'),
        ('qwen2_5_vl', 'Qwen2.5-VL', 'Qwen2_5_VLForConditionalGeneration', 'qwen25')):
    FAMILIES[_model_type] = Family(_name, (_arch,), 'AssembledProcessor', 'chat', QWEN_PROMPT,
                                   assembled=True, grounding=_grounding)


def read_config(path: str) -> dict:
    """A config.json as a dict; CheckpointError naming the file if it is not one."""
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckpointError(f'{path}: unreadable ({e})') from e
    if not isinstance(config, dict):
        raise CheckpointError(f'{path}: not a JSON object')
    return config


def hf_model_type(directory: str) -> Optional[str]:
    """The `model_type` of a Hugging Face model directory's config.json; None when the
    directory is not one (no config.json, or the bundled format's, which has none).
    Raises CheckpointError for a config.json that is not a JSON object."""
    path = os.path.join(directory, CONFIG)
    if not os.path.isfile(path):
        return None
    model_type = read_config(path).get('model_type')
    return str(model_type) if model_type else None


def _first(directory: str, names) -> str:
    return next((n for n in names if os.path.isfile(os.path.join(directory, n))), '')


def processor_file(directory: str) -> str:
    """The processor's configuration file in `directory` ('' when there is none)."""
    return _first(directory, PROCESSOR_FILES)


def check_model_dir(directory: str, trust_remote_code: bool = False):
    """(config dict, Family) of a Hugging Face model directory the backend can run.

    Raises CheckpointError naming the directory or file and the problem: no directory,
    no or unreadable config.json, a model_type or architecture no family covers, code
    the model would bring along (auto_map) while trust_remote_code is off, no processor
    or tokenizer files, no safetensors weights (pickled .bin weights can run code).
    """
    if not directory:
        raise CheckpointError('the transformers backend needs a model directory (parameter '
                              '`model`, or --model)')
    if not os.path.isdir(directory):
        raise CheckpointError(f'{directory}: model directory not found')
    path = os.path.join(directory, CONFIG)
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: file not found (not a Hugging Face model directory)')
    config = read_config(path)
    model_type = config.get('model_type')
    if not model_type:
        raise CheckpointError(f'{path}: no model_type: not a Hugging Face model (the bundled '
                              'format runs on the torch and onnxruntime backends)')
    if config.get('auto_map') and not trust_remote_code:
        raise CheckpointError(
            f"{path}: the model brings its own Python code (auto_map: "
            f"{', '.join(sorted(config['auto_map']))}); refused because trust_remote_code "
            'is off (turn it on only for a directory you trust)')
    family = FAMILIES.get(model_type)
    if family is None:
        raise CheckpointError(f"{path}: model_type {model_type!r} is not supported (supported: "
                              f"{', '.join(sorted(FAMILIES))})")
    architectures = config.get('architectures') or [family.architectures[0]]
    if not set(architectures) & set(family.architectures):
        raise CheckpointError(f'{path}: architectures {architectures} are not an '
                              f'image-text-to-text {family.name} model (expected '
                              f"{' or '.join(family.architectures)})")
    if not processor_file(directory):
        raise CheckpointError(f'{directory}: no {" or ".join(PROCESSOR_FILES)} (the image '
                              'processor)')
    if not _first(directory, TOKENIZER_FILES):
        raise CheckpointError(f'{directory}: no tokenizer ({", ".join(TOKENIZER_FILES)})')
    if not _first(directory, WEIGHT_FILES):
        found = [n for n in os.listdir(directory) if n.endswith(('.bin', '.pt', '.pth'))]
        raise CheckpointError(f'{os.path.join(directory, WEIGHT_FILES[0])}: file not found'
                              + (f' ({", ".join(found)} are pickles, which can run code: '
                                 'convert them to safetensors)' if found else ''))
    return config, family
