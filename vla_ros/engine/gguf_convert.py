"""A Hugging Face model directory -> a GGUF model + its mmproj, with llama.cpp's own
converter (convert_hf_to_gguf.py), for the llamacpp backend.

The converter is not on PyPI: `scripts/setup.sh --with llamacpp` unpacks it, with its
`conversion/` package and its matching `gguf-py`, from the llama-cpp-python source
distribution it builds, into <venv>/share/vla_ros/llama.cpp (or set
VLA_ROS_LLAMA_CPP_DIR). Published models already come as GGUF (e.g.
ggml-org/SmolVLM-256M-Instruct-GGUF); this is for models that do not, and for the tests
and `bench-vlm`, which convert the random-weight models they build.

The converter names a model's BPE pre-tokenizer by hashing how its tokenizer splits a
test text, and refuses tokenizers it does not know. The package's own test tokenizer
(engine/hf_random.py) is a byte-level BPE with GPT-2's split, so `gpt2_pretokenizer=True`
tells the converter so when, and only when, it does not recognise the hash.
"""
import os
import subprocess
import sys

from ..errors import CheckpointError

# Runs the converter as its own __main__, with the pre-tokenizer fallback when asked.
_BOOT = r'''
import os, runpy, sys
converter, gpt2 = sys.argv[1], sys.argv[2] == '1'
sys.argv = [converter] + sys.argv[3:]
sys.path.insert(0, os.path.dirname(converter))
if gpt2:
    from conversion import base
    known = base.TextModel.get_vocab_base_pre
    def get_vocab_base_pre(self, tokenizer):
        try:
            return known(self, tokenizer)
        except NotImplementedError:
            return 'gpt-2'
    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
runpy.run_path(converter, run_name='__main__')
'''


def converter_path() -> str:
    """convert_hf_to_gguf.py, or CheckpointError saying how to get it."""
    root = os.environ.get('VLA_ROS_LLAMA_CPP_DIR') or os.path.join(
        sys.prefix, 'share', 'vla_ros', 'llama.cpp')
    path = os.path.join(root, 'convert_hf_to_gguf.py')
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: llama.cpp\'s converter is not installed; run '
                              '`scripts/setup.sh --with llamacpp`')
    return path


def convert_to_gguf(hf_dir: str, out_dir: str, outtype: str = 'f16',
                    gpt2_pretokenizer: bool = False) -> tuple:
    """(model .gguf, mmproj .gguf) written into `out_dir` from the model in `hf_dir`
    (`outtype`: f32, f16, bf16 or q8_0, the converter's choices). Raises CheckpointError
    with the converter's last lines when it fails."""
    converter = converter_path()
    os.makedirs(out_dir, exist_ok=True)
    model = os.path.join(out_dir, f'model-{outtype}.gguf')
    projector = os.path.join(out_dir, f'mmproj-model-{outtype}.gguf')
    for outfile, extra in ((model, []), (projector, ['--mmproj'])):
        command = [sys.executable, '-c', _BOOT, converter, '1' if gpt2_pretokenizer else '0',
                   hf_dir, '--outfile', outfile, '--outtype', outtype, *extra]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            tail = '\n'.join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise CheckpointError(f'{hf_dir}: convert_hf_to_gguf.py {" ".join(extra)} failed:'
                                  f'\n{tail}')
    for path in (model, projector):
        if not os.path.isfile(path):
            raise CheckpointError(f'{path}: the converter did not write it')
    return model, projector
