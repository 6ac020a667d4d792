"""Model hyper-parameters; serialised as config.json next to the weights."""
import json
from dataclasses import asdict, dataclass, fields
from typing import Optional


@dataclass
class ModelConfig:
    vocab_size: int = 512            # set from the tokenizer
    image_size: int = 64             # frames are letterboxed to this square
    stem_channels: int = 32          # conv stem: 64x64 -> 32x32 -> 16x16
    stem_depth: int = 1              # convs per stem stage (the first of each has stride 2)
    patch_size: int = 2              # patch embedding on the stem output: 16x16 -> 8x8 tokens
    dim: int = 96                    # width of every transformer
    heads: int = 4
    kv_heads: int = 2                # grouped-query attention: heads share kv_heads K/V heads
    kv_rank: Optional[int] = 32      # latent attention rank; None = ordinary multi-head attention
    q_rank: Optional[int] = None     # queries' own latent rank; None = full-rank queries
    vision_layers: int = 2
    vision_window: Optional[int] = None   # sliding window over the flattened patch grid
    num_queries: int = 8             # Q-Former query tokens: all the decoder sees of an image
    qformer_layers: int = 1
    decoder_layers: int = 2
    decoder_window: Optional[int] = None  # sliding window over text tokens
    max_text_len: int = 48           # prompt + generated tokens
    mlp_ratio: int = 3
    action_hidden: int = 64
    # Action head: False = an MLP on the decoder's last hidden state (it must find the
    # target through the Q-Former's few tokens); True = the grounded pointer head, which
    # attends from the instruction straight into the image patches (action_head.py).
    action_pointer: bool = False
    # Pointer head only: also read a coarse map of the whole view (what is in the way).
    action_map: bool = False
    # The decoder's visual context: False = the Q-Former's queries only; True = the
    # queries followed by every patch feature, so the text side can look up any object
    # itself (several small objects do not fit through a few question-blind queries).
    decoder_patches: bool = False
    # The order of each decoder layer's two attentions: False = side by side (MMCA as
    # seed 003 has it: only the last layer's image lookup knows the question); True = the
    # image attention reads the text attention's output (decoder.py, DecoderLayer).
    decoder_lookup_after_text: bool = False
    # A frozen pretrained vision tower (SigLIP / CLIP directory) instead of the bundled
    # encoder (model/pretrained_vision.py); then image_size is the tower's, and its patch
    # size and width are recorded to check the tower found at load time.
    vision_encoder: Optional[str] = None
    vision_encoder_patch: int = 0
    vision_encoder_width: int = 0

    def __post_init__(self):
        assert self.dim % self.heads == 0, 'dim must divide into heads'
        assert self.heads % self.kv_heads == 0, 'heads must be a multiple of kv_heads'
        assert self.image_size % self.patch_pixels == 0, \
            f'image_size must divide by the patch size in pixels ({self.patch_pixels})'
        assert self.action_pointer or not self.action_map, 'action_map needs action_pointer'

    @property
    def patch_pixels(self) -> int:
        """Side of one patch in input pixels: 4 (the conv stem) x patch_size, or the
        pretrained tower's patch size."""
        return self.vision_encoder_patch if self.vision_encoder else 4 * self.patch_size

    @property
    def grid_side(self) -> int:
        """Patches per side of the square patch grid."""
        return self.image_size // self.patch_pixels

    @property
    def num_patches(self) -> int:
        return self.grid_side ** 2

    @property
    def visual_tokens(self) -> int:
        """Tokens in the decoder's visual context (VLAModel.encode_image's second axis)."""
        return self.num_queries + (self.num_patches if self.decoder_patches else 0)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> 'ModelConfig':
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f'unknown config keys: {sorted(unknown)}')
        return cls(**data)
