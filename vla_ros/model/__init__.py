"""The vla_ros model: pure PyTorch, no ROS imports.

vision.py (conv stem + latent-attention ViT) -> qformer.py (learnable queries) ->
decoder.py (multi-modal causal attention, KV cache) and action_head.py, put together
in vla_model.py; attention.py holds the attention they all share.
"""
from .config import ModelConfig
from .vla_model import VLAModel

__all__ = ['ModelConfig', 'VLAModel']
