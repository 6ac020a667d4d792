"""The ONNX export's manifest: which graphs there are, their inputs and outputs, and the
checkpoint files they were exported from. No torch, no onnxruntime.

`vla-ros export` writes `<checkpoint>/onnx/manifest.json` next to the .onnx files. The
ONNX engine reads it before loading anything and refuses, naming the file:
  - a missing manifest or graph file;
  - a graph whose bytes differ from the sha256 recorded at export (corrupt, truncated or
    replaced);
  - a stale export: the checkpoint's config.json, tokenizer.json or model.safetensors
    changed since the export (a retrained model must be exported again).
"""
import json
import os

from .engine.api import file_sha256
from .model.files import CONFIG, TOKENIZER, WEIGHTS
from .errors import CheckpointError

MANIFEST = 'manifest.json'
ONNX_DIR = 'onnx'              # default export directory, inside the checkpoint directory
FORMAT_VERSION = 1
CHECKPOINT_FILES = (CONFIG, TOKENIZER, WEIGHTS)

# graph name -> (file, input names, output names)
GRAPHS = {
    'image_encoder': ('image_encoder.onnx', ('pixels',), ('visual', 'patches')),
    'decoder_step': ('decoder_step.onnx', ('ids', 'visual', 'past'),
                     ('logits', 'last_hidden', 'present')),
    # `patches` and `pointer` only for a head that has a pointer (config action_pointer)
    'action_head': ('action_head.onnx', ('last_hidden', 'patches'),
                    ('velocity', 'done_logit', 'pointer')),
}


def default_onnx_dir(checkpoint: str) -> str:
    return os.path.join(checkpoint, ONNX_DIR)


def checkpoint_hashes(checkpoint: str) -> dict:
    """sha256 of each checkpoint file that exists ({name: hex})."""
    return {name: file_sha256(os.path.join(checkpoint, name)) for name in CHECKPOINT_FILES
            if os.path.isfile(os.path.join(checkpoint, name))}


def write_manifest(onnx_dir: str, checkpoint: str, opset: int, extra: dict,
                   io_as_exported: dict) -> dict:
    """Record every graph's file, sha256 and I/O names ({graph: (inputs, outputs)} as
    exported), and the checkpoint's hashes."""
    manifest = {
        'format': FORMAT_VERSION,
        'opset': opset,
        'checkpoint_sha256': checkpoint_hashes(checkpoint),
        'graphs': {name: {'file': file, 'inputs': list(io_as_exported[name][0]),
                          'outputs': list(io_as_exported[name][1]),
                          'sha256': file_sha256(os.path.join(onnx_dir, file))}
                   for name, (file, _inputs, _outputs) in GRAPHS.items()},
        **extra,
    }
    with open(os.path.join(onnx_dir, MANIFEST), 'w') as f:
        json.dump(manifest, f, indent=1)
        f.write('\n')
    return manifest


def _fix(checkpoint: str) -> str:
    return f're-export with `vla-ros export --checkpoint {checkpoint}`'


def read_manifest(onnx_dir: str, checkpoint: str) -> dict:
    """The manifest, after checking it against the checkpoint and the graph files.

    Returns the manifest with each graph's absolute `path` filled in. Raises
    CheckpointError naming the file at fault.
    """
    path = os.path.join(onnx_dir, MANIFEST)
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: file not found (no ONNX export; {_fix(checkpoint)})')
    try:
        with open(path) as f:
            manifest = json.load(f)
        graphs, recorded = manifest['graphs'], manifest['checkpoint_sha256']
        if manifest.get('format') != FORMAT_VERSION or set(graphs) != set(GRAPHS):
            raise ValueError(f'format {manifest.get("format")} with graphs {sorted(graphs)}')
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f'{path}: invalid manifest ({e}); {_fix(checkpoint)}') from e
    for name, expected in recorded.items():
        file = os.path.join(checkpoint, name)
        if name == WEIGHTS and not os.path.isfile(file):
            continue   # a checkpoint shipped only as its ONNX export
        if not os.path.isfile(file):
            raise CheckpointError(f'{file}: file not found')
        if file_sha256(file) != expected:
            raise CheckpointError(f'{path}: stale export: {file} changed since it was '
                                  f'exported; {_fix(checkpoint)}')
    for name, graph in graphs.items():
        graph['path'] = os.path.join(onnx_dir, graph['file'])
        if not os.path.isfile(graph['path']):
            raise CheckpointError(f"{graph['path']}: file not found; {_fix(checkpoint)}")
        if file_sha256(graph['path']) != graph['sha256']:
            raise CheckpointError(f"{graph['path']}: corrupt or modified (sha256 differs from "
                                  f'{path}); {_fix(checkpoint)}')
    return manifest
