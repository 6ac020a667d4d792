"""Latent / grouped-query / sliding-window attention: the properties the design relies on."""
import pytest
import torch

from vla_ros.model.attention import LatentAttention, attention_mask


def test_causal_mask_hides_the_future():
    torch.manual_seed(0)
    attn = LatentAttention(32, 4, kv_rank=8, causal=True)
    x = torch.randn(1, 6, 32)
    y = attn(x)[0]
    x2 = x.clone()
    x2[:, 4:] = torch.randn(1, 2, 32)     # change the last two tokens
    y2 = attn(x2)[0]
    assert torch.allclose(y[:, :4], y2[:, :4], atol=1e-6)
    assert not torch.allclose(y[:, 4:], y2[:, 4:])


@pytest.mark.parametrize('causal', [True, False])
def test_sliding_window_excludes_out_of_window_tokens(causal):
    torch.manual_seed(0)
    window = 3
    attn = LatentAttention(32, 4, kv_heads=2, kv_rank=8, causal=causal, window=window)
    x = torch.randn(1, 10, 32)
    y = attn(x)[0]
    x2 = x.clone()
    x2[:, 0] += 5.0                         # only tokens within the window of 0 may change
    y2 = attn(x2)[0]
    changed = (y - y2).abs().amax(-1)[0] > 1e-6
    reach = range(0, window) if causal else range(0, window)
    assert changed.tolist() == [i in reach for i in range(10)]


def test_window_mask_shape_and_band():
    m = attention_mask(torch.arange(5), torch.arange(5), causal=True, window=2)
    expected = torch.tensor([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 0, 0],
                             [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(m, expected)


def test_latent_attention_at_full_rank_equals_ordinary_attention():
    torch.manual_seed(0)
    dim = 32
    ordinary = LatentAttention(dim, 4, kv_rank=None, causal=True)
    latent = LatentAttention(dim, 4, kv_rank=dim, causal=True)
    with torch.no_grad():
        latent.compress.weight.copy_(torch.eye(dim))          # latent = the tokens themselves
        latent.expand.weight.copy_(ordinary.compress.weight)  # K, V expanded as MHA computes them
        latent.query.weight.copy_(ordinary.query.weight)
        latent.out.weight.copy_(ordinary.out.weight)
    x = torch.randn(2, 7, dim)
    assert torch.allclose(latent(x)[0], ordinary(x)[0], atol=1e-5)


def test_latent_cache_is_smaller_than_kv_cache():
    assert LatentAttention(96, 4, kv_heads=4, kv_rank=32).cache_width == 32
    assert LatentAttention(96, 4, kv_heads=4, kv_rank=None).cache_width == 2 * 96


def test_grouped_query_heads_share_keys_and_values():
    torch.manual_seed(0)
    gqa = LatentAttention(32, 4, kv_heads=1, kv_rank=8)
    latent = gqa.compress(torch.randn(1, 5, 32))
    k, v = gqa.keys_values(latent)
    assert k.shape == (1, 4, 5, 8)
    for h in range(1, 4):                 # one K/V head serves all four query heads
        assert torch.equal(k[:, h], k[:, 0]) and torch.equal(v[:, h], v[:, 0])


@pytest.mark.parametrize('window', [None, 3])
def test_incremental_decoding_matches_full_sequence(window):
    torch.manual_seed(0)
    attn = LatentAttention(32, 4, kv_heads=2, kv_rank=8, causal=True, window=window)
    x = torch.randn(1, 8, 32)
    full = attn(x)[0]
    out, cache = attn(x[:, :3])
    steps = [out]
    for t in range(3, 8):
        y, cache = attn(x[:, t:t + 1], cache=cache)
        steps.append(y)
    assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
    if window:
        assert cache[0].shape[1] == window - 1   # the cache never grows past the window
