"""Tiny random Hugging Face image-text-to-text models, built offline in their real on-disk
formats (save_pretrained: config.json, model.safetensors, the processor's and tokenizer's
files), for the transformers backend's tests.

The tokenizer is vla_ros.engine.hf_random's byte-level BPE (256 byte symbols, a few
merges, the family's special tokens); image processors are the PIL variants with small
explicit sizes. Per-family quirks (shared/DESIGN.md, "Checked on these machines"):
PaliGemma's processor adds 1,153 <loc>/<seg> tokens, so the text vocabulary is sized after
the processor is built; LLaVA counts the CLS token (num_additional_image_tokens=1 with the
'default' feature strategy); Idefics3 needs image_seq_len = (image/patch)^2 / scale^2 and
its <row_i_col_j> / <global-img> tokens.
"""
import os

import torch

from vla_ros.engine.hf_random import byte_bpe_tokenizer, IDEFICS3_SPECIAL, SMOLVLM_TEMPLATE

LLAVA_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].upper() + ': ' }}"
    "{% for c in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for c in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ c['text'] + ' ' }}{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")
QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif c['type'] == 'text' %}{{ c['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _llama(vocab: int, **extra) -> dict:
    return dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                **extra)


def _vision(image: int, patch: int) -> dict:
    return dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, image_size=image, patch_size=patch)


def _save(directory, model, processor):
    os.makedirs(directory, exist_ok=True)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return str(directory)


def build_idefics3(directory, image: int = 32, patch: int = 4, scale: int = 2) -> str:
    from transformers import (Idefics3Config, Idefics3ForConditionalGeneration,
                              Idefics3ImageProcessorPil, Idefics3Processor)
    tokenizer = byte_bpe_tokenizer(IDEFICS3_SPECIAL, '<|im_start|>', '<end_of_utterance>',
                                   '<pad>')
    image_processor = Idefics3ImageProcessorPil(
        size={'longest_edge': 2 * image}, max_image_size={'longest_edge': image},
        do_image_splitting=True)
    seq_len = (image // patch) ** 2 // scale ** 2
    processor = Idefics3Processor(image_processor, tokenizer, image_seq_len=seq_len,
                                  chat_template=SMOLVLM_TEMPLATE)
    config = Idefics3Config(
        vision_config=_vision(image, patch), scale_factor=scale,
        text_config=_llama(len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                           eos_token_id=tokenizer.eos_token_id,
                           pad_token_id=tokenizer.pad_token_id,
                           architectures=['LlamaForCausalLM']),   # as SmolVLM's (GGUF
        image_token_id=tokenizer.convert_tokens_to_ids('<image>'),  # conversion reads it)
        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    return _save(directory, Idefics3ForConditionalGeneration(config).eval(), processor)


def build_paligemma(directory, image: int = 32, patch: int = 8) -> str:
    from transformers import (PaliGemmaConfig, PaliGemmaForConditionalGeneration,
                              PaliGemmaProcessor, SiglipImageProcessorPil)
    tokenizer = byte_bpe_tokenizer(['<image>'], '<bos>', '<eos>', '<pad>')
    seq_len = (image // patch) ** 2
    image_processor = SiglipImageProcessorPil(size={'height': image, 'width': image},
                                              image_seq_length=seq_len)
    image_processor.image_seq_length = seq_len
    processor = PaliGemmaProcessor(image_processor, tokenizer)   # adds <loc>/<seg> tokens
    vocab = len(processor.tokenizer)
    text = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=1, head_dim=8,
                tie_word_embeddings=False,   # tied: a random model repeats the last newline
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    config = PaliGemmaConfig(
        vision_config=dict(_vision(image, patch), projection_dim=32), text_config=text,
        image_token_index=processor.tokenizer.convert_tokens_to_ids('<image>'),
        projection_dim=32, hidden_size=32, tie_word_embeddings=False)
    config.text_config.vocab_size = vocab
    torch.manual_seed(0)
    return _save(directory, PaliGemmaForConditionalGeneration(config).eval(), processor)


def build_llava(directory, image: int = 32, patch: int = 8) -> str:
    from transformers import (CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration,
                              LlavaProcessor)
    tokenizer = byte_bpe_tokenizer(['<image>'], '<s>', '</s>', '<pad>')
    image_processor = CLIPImageProcessorPil(size={'shortest_edge': image},
                                            crop_size={'height': image, 'width': image})
    processor = LlavaProcessor(image_processor, tokenizer, patch_size=patch,
                               vision_feature_select_strategy='default',
                               num_additional_image_tokens=1, chat_template=LLAVA_TEMPLATE)
    config = LlavaConfig(
        vision_config=dict(_vision(image, patch), model_type='clip_vision_model',
                           projection_dim=32),
        text_config=dict(_llama(len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                eos_token_id=tokenizer.eos_token_id,
                                pad_token_id=tokenizer.pad_token_id), model_type='llama'),
        image_token_index=tokenizer.convert_tokens_to_ids('<image>'),
        vision_feature_select_strategy='default', vision_feature_layer=-1,
        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    return _save(directory, LlavaForConditionalGeneration(config).eval(), processor)


def build_qwen2_vl(directory, version: str = '2') -> str:
    """Qwen2-VL (version '2') or Qwen2.5-VL ('2.5'). No processor class without
    torchvision: the tokenizer (with the chat template) and the image processor are saved
    on their own, as the engine loads them."""
    import transformers
    tokenizer = byte_bpe_tokenizer(['<|vision_start|>', '<|vision_end|>', '<|image_pad|>',
                                    '<|video_pad|>', '<|im_start|>'],
                                   '<|im_start|>', '<|im_end|>', '<|endoftext|>')
    tokenizer.chat_template = QWEN_TEMPLATE
    image_processor = transformers.Qwen2VLImageProcessorPil(
        min_pixels=28 * 28, max_pixels=64 * 64, patch_size=14, merge_size=2,
        temporal_patch_size=2)
    ids = {name: tokenizer.convert_tokens_to_ids(f'<|{name}|>')
           for name in ('image_pad', 'video_pad', 'vision_start', 'vision_end')}
    vision = dict(depth=3, hidden_size=32, num_heads=4, patch_size=14, spatial_merge_size=2,
                  temporal_patch_size=2, in_chans=3)
    if version == '2':
        vision.update(embed_dim=32, mlp_ratio=2)
        config_class, model_class = 'Qwen2VLConfig', 'Qwen2VLForConditionalGeneration'
    else:
        vision.update(intermediate_size=64, out_hidden_size=32, window_size=28,
                      fullatt_block_indexes=[2])
        config_class, model_class = 'Qwen2_5_VLConfig', 'Qwen2_5_VLForConditionalGeneration'
    config = getattr(transformers, config_class)(
        vision_config=vision,
        text_config=_llama(len(tokenizer), rope_scaling={'type': 'mrope',
                                                         'mrope_section': [1, 1, 2]},
                           bos_token_id=tokenizer.bos_token_id,
                           eos_token_id=tokenizer.eos_token_id,
                           pad_token_id=tokenizer.pad_token_id),
        image_token_id=ids['image_pad'], video_token_id=ids['video_pad'],
        vision_start_token_id=ids['vision_start'], vision_end_token_id=ids['vision_end'])
    torch.manual_seed(0)
    model = getattr(transformers, model_class)(config).eval()
    os.makedirs(directory, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    image_processor.save_pretrained(directory)
    return str(directory)


BUILDERS = {'idefics3': build_idefics3, 'paligemma': build_paligemma, 'llava': build_llava,
            'qwen2_vl': build_qwen2_vl,
            'qwen2_5_vl': lambda directory: build_qwen2_vl(directory, '2.5')}
