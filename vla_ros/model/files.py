"""A checkpoint directory's files, and reading its config and tokenizer, without torch.

Both backends start here: model/checkpoint.py adds the weights (torch), the ONNX
Runtime engine only needs these two small JSON files.
"""
import os

from ..errors import CheckpointError
from ..tokenizer import Tokenizer
from .config import ModelConfig

CONFIG, WEIGHTS, TOKENIZER = 'config.json', 'model.safetensors', 'tokenizer.json'


def _read(path: str, parse):
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: file not found')
    try:
        with open(path) as f:
            return parse(f.read())
    except (ValueError, TypeError, KeyError, AssertionError) as e:   # JSONDecodeError too
        raise CheckpointError(f'{path}: invalid ({e})') from e


def read_config_and_tokenizer(directory: str):
    """(ModelConfig, Tokenizer) of a checkpoint directory.

    Raises CheckpointError naming the directory or file that is missing or invalid.
    """
    if not os.path.isdir(directory):
        raise CheckpointError(f'{directory}: checkpoint directory not found')
    cfg = _read(os.path.join(directory, CONFIG), ModelConfig.from_json)
    tokenizer = _read(os.path.join(directory, TOKENIZER), Tokenizer.from_json)
    if len(tokenizer) != cfg.vocab_size:
        raise CheckpointError(f'{os.path.join(directory, TOKENIZER)}: {len(tokenizer)} tokens '
                              f'but {CONFIG} says vocab_size={cfg.vocab_size}')
    return cfg, tokenizer
