"""The whole model on a tiny config: shapes, MMCA, KV cache, checkpoints, learning."""
import json
import os

import pytest
import torch

from vla_ros.model import ModelConfig, VLAModel
from vla_ros.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from vla_ros.model.decoder import DecoderLayer, MultiModalCausalAttention
from vla_ros.tokenizer import Tokenizer

TINY = dict(vocab_size=300, dim=32, heads=4, kv_heads=2, kv_rank=8, stem_channels=8,
            vision_layers=1, qformer_layers=1, decoder_layers=1, num_queries=4,
            max_text_len=24, mlp_ratio=2, action_hidden=16)


def tiny_model(**overrides):
    torch.manual_seed(0)
    return VLAModel(ModelConfig(**{**TINY, **overrides})).eval()


def test_shapes():
    m = tiny_model()
    pixels = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    visual = m.encode_image(pixels)
    assert visual.shape == (3, 4, 32)
    ids = torch.randint(0, 300, (3, 9))
    assert m(visual, ids).shape == (3, 9, 300)
    velocity, done = m.act(visual, ids)
    assert velocity.shape == (3, 2) and done.shape == (3,)
    assert velocity.abs().max() <= 1


@pytest.mark.parametrize('window, after_text', [(None, False), (4, False), (None, True)])
def test_greedy_decoding_identical_with_and_without_kv_cache(window, after_text):
    m = tiny_model(decoder_window=window, decoder_lookup_after_text=after_text,
                   decoder_layers=2)
    with torch.no_grad():   # sharpen the random model so decoding is not a tie-break lottery
        m.decoder.embed.weight.mul_(20)
    visual = m.encode_image(torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8))
    prompt = torch.randint(10, 300, (2, 5))
    cached, p1 = m.generate(visual, prompt, eos=1, max_new_tokens=15, use_cache=True)
    uncached, p2 = m.generate(visual, prompt, eos=1, max_new_tokens=15, use_cache=False)
    assert cached.shape[1] >= 2
    assert torch.equal(cached, uncached)
    assert torch.allclose(p1, p2, atol=1e-5)


def test_mmca_normalises_text_and_image_separately():
    # Duplicating every visual token leaves a separately-normalised image softmax unchanged
    # (same weighted mean); one joint softmax over text+image would shift weight to the image.
    torch.manual_seed(0)
    mmca = MultiModalCausalAttention(ModelConfig(**TINY))
    x, visual = torch.randn(2, 6, 32), torch.randn(2, 4, 32)
    y, _ = mmca(x, visual)
    y_dup, _ = mmca(x, torch.cat([visual, visual], 1))
    assert torch.allclose(y, y_dup, atol=1e-5)
    text_only, _ = mmca.text(x)
    image_only, _ = mmca.visual(x, context=visual)
    assert torch.allclose(y, text_only + image_only, atol=1e-6)


@pytest.mark.parametrize('after_text', [False, True])
def test_only_a_lookup_after_text_attention_knows_the_question(after_text):
    # One decoder layer, the last position's image attention: side by side (MMCA) it reads
    # the same input as the text attention, so what it looks up cannot depend on the
    # earlier tokens; after the text attention it does. Recorded from the image attention.
    torch.manual_seed(0)
    layer = DecoderLayer(ModelConfig(**{**TINY, 'decoder_lookup_after_text': after_text}))
    queries = []
    hook = layer.attn.visual.register_forward_hook(lambda m, args, out: queries.append(
        args[0][:, -1].clone()))
    visual = torch.randn(1, 4, 32)
    x = torch.randn(1, 5, 32)
    y = x.clone()
    y[:, 0] += 1.0                                      # another first word, same last one
    with torch.no_grad():
        layer(x, visual)
        layer(y, visual)
    hook.remove()
    assert torch.equal(queries[0], queries[1]) != after_text


def test_mmca_batches_do_not_mix():
    torch.manual_seed(0)
    mmca = MultiModalCausalAttention(ModelConfig(**TINY))
    x, visual = torch.randn(3, 5, 32), torch.randn(3, 4, 32)
    batched, _ = mmca(x, visual)
    single, _ = mmca(x[1:2], visual[1:2])
    assert torch.allclose(batched[1:2], single, atol=1e-6)


def test_config_round_trips_through_json():
    cfg = ModelConfig(**{**TINY, 'kv_rank': None, 'decoder_window': 7})
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match='unknown config keys'):
        ModelConfig.from_json(json.dumps({'dim': 32, 'colour': 1}))


def _saved(tmp_path):
    m = tiny_model()
    tokenizer = Tokenizer(['w%d' % i for i in range(300 - 262)])
    assert len(tokenizer) == 300
    save_checkpoint(m, tokenizer, str(tmp_path))
    return m


def test_checkpoint_round_trip(tmp_path):
    m = _saved(tmp_path)
    loaded, tokenizer = load_checkpoint(str(tmp_path))
    for k, v in m.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    assert sorted(os.listdir(tmp_path)) == ['config.json', 'model.safetensors', 'tokenizer.json']


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(CheckpointError, match='not found'):
        load_checkpoint(str(tmp_path / 'nowhere'))
    _saved(tmp_path)
    os.remove(tmp_path / 'model.safetensors')
    with pytest.raises(CheckpointError, match=r'model\.safetensors: file not found'):
        load_checkpoint(str(tmp_path))


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    _saved(tmp_path)
    path = tmp_path / 'model.safetensors'
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])               # truncated
    with pytest.raises(CheckpointError, match=r'model\.safetensors: corrupt'):
        load_checkpoint(str(tmp_path))
    path.write_bytes(b'\x80\x04pickle' * 10)               # not safetensors at all
    with pytest.raises(CheckpointError, match='corrupt'):
        load_checkpoint(str(tmp_path))


def test_mismatched_checkpoint_is_a_clear_error(tmp_path):
    _saved(tmp_path)
    cfg = json.loads((tmp_path / 'config.json').read_text())
    cfg['dim'] = 64
    (tmp_path / 'config.json').write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match='do not match config.json.*wrong shape'):
        load_checkpoint(str(tmp_path))
    (tmp_path / 'config.json').write_text('{not json')
    with pytest.raises(CheckpointError, match=r'config\.json: invalid'):
        load_checkpoint(str(tmp_path))


def test_a_short_training_run_lowers_the_loss():
    import torch.nn.functional as F
    m = tiny_model().train()
    pixels = torch.randint(0, 256, (4, 64, 64, 3), dtype=torch.uint8)
    ids = torch.randint(10, 300, (4, 8))
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        logits = m(m.encode_image(pixels), ids[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_decoder_patches_puts_every_patch_after_the_queries():
    m = tiny_model(decoder_patches=True)
    pixels = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    visual, patches = m.encode(pixels)
    assert patches.shape == (2, 64, 32) and visual.shape == (2, 4 + 64, 32)
    assert m.cfg.visual_tokens == 4 + 64 and tiny_model().cfg.visual_tokens == 4
    assert torch.equal(m.encode_image(pixels), visual)
    tokens, _probs = m.generate(visual, torch.randint(10, 300, (2, 5)), eos=1, max_new_tokens=4)
    assert tokens.shape[0] == 2
    from vla_ros.evaluate import encode_images    # what training validation calls
    frames = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8).numpy()
    assert encode_images(m, frames, batch=2).shape == (3, 68, 32)


def test_rows_sharing_an_image_by_index_equal_rows_with_copies_of_it():
    """Training passes each image once and the image of every question (visual_index):
    same logits and gradients as repeating the image's tokens for every question."""
    m = tiny_model(decoder_patches=True).train()
    visual = torch.randn(3, m.cfg.visual_tokens, 32, requires_grad=True)
    ids = torch.randint(0, 300, (7, 6))
    index = torch.tensor([0, 0, 1, 2, 2, 2, 0])
    copied, indexed = m(visual[index], ids), m(visual, ids, index)
    assert torch.allclose(copied, indexed, atol=1e-6)
    g_copied = torch.autograd.grad(copied.square().mean(), visual)[0]
    g_indexed = torch.autograd.grad(indexed.square().mean(), visual)[0]
    assert torch.allclose(g_copied, g_indexed, atol=1e-6)


def test_an_image_without_rows_and_scored_positions_only():
    """visual_index may skip an image (it then gets no gradient), and `where` gives the
    logits of the scored positions alone, equal to those of the full (B, T, vocab)."""
    m = tiny_model(decoder_patches=True).train()
    visual = torch.randn(3, m.cfg.visual_tokens, 32, requires_grad=True)
    ids = torch.randint(0, 300, (5, 6))
    index = torch.tensor([2, 0, 2, 2, 0])
    where = torch.zeros(5, 6, dtype=torch.bool)
    where[:, 3:] = True
    where[1, 0] = True
    full, scored = m(visual, ids, index), m(visual, ids, index, where=where)
    assert scored.shape == (int(where.sum()), full.shape[-1])
    assert torch.allclose(full[where], scored, atol=1e-6)
    assert torch.allclose(full, m(visual[index], ids), atol=1e-6)
    grad = torch.autograd.grad(scored.square().mean(), visual)[0]
    assert torch.count_nonzero(grad[1]) == 0 and torch.count_nonzero(grad[0]) > 0


@pytest.mark.parametrize('depth,sees_column_14', [(1, False), (2, True)])
def test_a_deeper_stem_widens_what_each_patch_sees(depth, sees_column_14):
    """patch_size 3 on a 96 px frame: patch (0, 0) covers pixels 0-11; a depth-1 stem
    lets it see up to column 11 (15 px receptive field), a depth-2 stem up to column 17."""
    m = tiny_model(image_size=96, patch_size=3, stem_depth=depth)
    assert m.cfg.num_patches == 64
    vision = m.vision
    x = torch.zeros(1, 3, 96, 96)
    changed = x.clone()
    changed[0, :, 0, 14] = 1.0

    def patch00(pixels):
        return vision.patch(vision.stem(pixels))[0, :, 0, 0]

    with torch.no_grad():
        assert vision.stem(x).shape == (1, 16, 24, 24)
        assert (not torch.equal(patch00(x), patch00(changed))) == sees_column_14
        changed_near = x.clone()
        changed_near[0, :, 0, 11] = 1.0                  # inside the patch: always seen
        assert not torch.equal(patch00(x), patch00(changed_near))
