"""Random-weight Hugging Face models in their real on-disk formats, built offline: the
tokenizer the tests' tiny models use, and the real architectures' sizes for
`vla-ros bench-vlm` (speed and memory need the real shapes, not the real weights).

The tokenizer is a byte-level BPE made here with `tokenizers` (256 byte symbols, a few
merges, the family's special tokens); a model's vocabulary may be larger than it (the
real sizes keep their real vocabularies: the embedding and output layers cost what they
cost). The architectures' numbers are those of the published config.json files:

- smolvlm-256m: HuggingFaceTB/SmolVLM-256M-Instruct, Idefics3 = SigLIP-B/16 at 512 px
  (12 layers, 768 wide) + pixel shuffle x4 (64 tokens a tile) + SmolLM2-135M (30 layers,
  576 wide, 9 heads / 3 KV heads, vocabulary 49,280).
- smolvlm-500m: the same vision tower + SmolLM2-360M (32 layers, 960 wide, 15 / 5 heads).
- paligemma-3b: google/paligemma-3b-pt-224, SigLIP So400m/14 at 224 px (27 layers, 1152
  wide; 256 image tokens) + Gemma-2B (18 layers, 2048 wide, 8 heads / 1 KV head of 256,
  MLP 16,384, vocabulary 257,216).
"""
import os

from tokenizers import decoders, models, pre_tokenizers, Tokenizer

WORDS = ('what', 'color', 'shape', 'is', 'the', 'red', 'circle', 'Assistant', 'User')
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")
IDEFICS3_SPECIAL = (['<image>', '<fake_token_around_image>', '<global-img>',
                     '<end_of_utterance>', '<|im_start|>']
                    + [f'<row_{i}_col_{j}>' for i in range(1, 7) for j in range(1, 7)])


def byte_bpe_tokenizer(special: list, bos: str, eos: str, pad: str):
    """Byte-level BPE: the 256 byte symbols, merges spelling a few words, `special` tokens."""
    from transformers import PreTrainedTokenizerFast
    byte_symbols = list(pre_tokenizers.ByteLevel.alphabet())
    vocab = {s: i for i, s in enumerate(sorted(byte_symbols))}
    merges = []
    for word in WORDS:
        for prefix in ('', 'Ġ'):
            pieces = list(prefix + word)
            while len(pieces) > 1:
                merged = pieces[0] + pieces[1]
                if merged not in vocab:
                    vocab[merged] = len(vocab)
                    merges.append((pieces[0], pieces[1]))
                pieces = [merged] + pieces[2:]
    vocab['ĊĊ'] = len(vocab)          # "\n\n" as one token: llama.cpp's Idefics3
    merges.append(('Ċ', 'Ċ'))         # image layout looks it up (mtmd.cpp)
    core = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    names = [bos, eos, pad] + [s for s in special if s not in (bos, eos, pad)]
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token=bos, eos_token=eos,
                                        pad_token=pad)
    tokenizer.add_special_tokens({'additional_special_tokens':
                                  [s for s in names if s not in (bos, eos, pad)]})
    return tokenizer


def _smolvlm_text(hidden: int, mlp: int, layers: int, heads: int, kv_heads: int) -> dict:
    return dict(vocab_size=49280, hidden_size=hidden, intermediate_size=mlp,
                num_hidden_layers=layers, num_attention_heads=heads,
                num_key_value_heads=kv_heads, max_position_embeddings=8192,
                rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=False)


SIGLIP_B16_512 = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                      num_attention_heads=12, image_size=512, patch_size=16)
REAL_SIZES = {
    'smolvlm-256m': ('idefics3', _smolvlm_text(576, 1536, 30, 9, 3)),
    'smolvlm-500m': ('idefics3', _smolvlm_text(960, 2560, 32, 15, 5)),
    'paligemma-3b': ('paligemma', dict(
        vocab_size=257216, hidden_size=2048, intermediate_size=16384, num_hidden_layers=18,
        num_attention_heads=8, num_key_value_heads=1, head_dim=256)),
}


def build_real_size(name: str, directory: str) -> str:
    """A random-weight model of architecture `name` (REAL_SIZES) saved in `directory`."""
    import torch
    if name not in REAL_SIZES:
        raise ValueError(f"unknown architecture {name!r}: one of {', '.join(REAL_SIZES)}")
    family, text = REAL_SIZES[name]
    torch.manual_seed(0)
    model, processor = (_idefics3 if family == 'idefics3' else _paligemma)(text)
    os.makedirs(directory, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(directory)   # as the published files are
    processor.save_pretrained(directory)
    return directory


def _idefics3(text: dict):
    from transformers import (Idefics3Config, Idefics3ForConditionalGeneration,
                              Idefics3ImageProcessorPil, Idefics3Processor)
    tokenizer = byte_bpe_tokenizer(IDEFICS3_SPECIAL, '<|im_start|>', '<end_of_utterance>',
                                   '<pad>')
    image_processor = Idefics3ImageProcessorPil(size={'longest_edge': 2048},
                                                max_image_size={'longest_edge': 512},
                                                do_image_splitting=True)
    processor = Idefics3Processor(image_processor, tokenizer, image_seq_len=64,
                                  chat_template=SMOLVLM_TEMPLATE)
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id,
               architectures=['LlamaForCausalLM'])     # as the published config.json's
    config = Idefics3Config(vision_config=SIGLIP_B16_512, scale_factor=4,
                            text_config=dict(text, **ids),
                            image_token_id=tokenizer.convert_tokens_to_ids('<image>'),
                            pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    return Idefics3ForConditionalGeneration(config).eval(), processor


def _paligemma(text: dict):
    from transformers import (PaliGemmaConfig, PaliGemmaForConditionalGeneration,
                              PaliGemmaProcessor, SiglipImageProcessorPil)
    tokenizer = byte_bpe_tokenizer(['<image>'], '<bos>', '<eos>', '<pad>')
    image_processor = SiglipImageProcessorPil(size={'height': 224, 'width': 224},
                                              image_seq_length=256)
    image_processor.image_seq_length = 256
    processor = PaliGemmaProcessor(image_processor, tokenizer)   # adds <loc>/<seg> tokens
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    config = PaliGemmaConfig(
        vision_config=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                           num_attention_heads=16, image_size=224, patch_size=14,
                           projection_dim=2048),
        text_config=dict(text, **ids),
        image_token_index=processor.tokenizer.convert_tokens_to_ids('<image>'),
        projection_dim=2048, hidden_size=2048)
    return PaliGemmaForConditionalGeneration(config).eval(), processor
