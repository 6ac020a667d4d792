"""The vla_ros model: pure PyTorch, no ROS imports.

vision.py (conv stem + latent-attention ViT) -> qformer.py (learnable queries) ->
decoder.py (multi-modal causal attention, KV cache) and action_head.py, put together
in vla_model.py; attention.py holds the attention they all share.

`VLAModel` is imported on first use (PEP 562), so `vla_ros.model.config` and
`from vla_ros.model import ModelConfig` work without torch (the ONNX runtime needs the
config, not the torch model).
"""
from .config import ModelConfig

__all__ = ['ModelConfig', 'VLAModel']


def __getattr__(name):
    if name == 'VLAModel':
        from .vla_model import VLAModel
        return VLAModel
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
