"""`vla-ros bench-vlm`: the real architectures' shapes, and one configuration measured end
to end on a tiny model in its own process."""
import json
import subprocess
import sys

import pytest

torch = pytest.importorskip('torch')
pytest.importorskip('transformers')

from vla_ros.engine import hf_random  # noqa: E402

# Parameter counts of the published checkpoints (their model.safetensors headers), which
# the random-weight builds must match: speed and memory follow the shapes.
PUBLISHED = {'smolvlm-256m': 256_484_928, 'smolvlm-500m': 507_482_304}


@pytest.mark.parametrize('name', sorted(hf_random.REAL_SIZES))
def test_real_size_architectures_have_their_published_shapes(name):
    family, text = hf_random.REAL_SIZES[name]
    build = hf_random._idefics3 if family == 'idefics3' else hf_random._paligemma
    with torch.device('meta'):               # shapes only: no memory, no random init
        model, processor = build(text)
    count = sum(p.numel() for p in model.parameters())
    if name in PUBLISHED:
        assert count == PUBLISHED[name]
    else:
        assert 2.9e9 < count < 3.0e9         # PaliGemma-3B
    config = model.config
    if family == 'idefics3':                 # 512-px tiles of 16-px patches, pixel shuffle 4
        assert processor.image_seq_len == (512 // 16) ** 2 // 4 ** 2 == 64
        assert config.vision_config.image_size == 512 and config.scale_factor == 4
    else:
        assert processor.image_seq_length == (224 // 14) ** 2 == 256


def test_bench_vlm_measures_one_configuration_in_its_own_process(model_dirs):
    out = subprocess.run(
        [sys.executable, '-m', 'vla_ros.bench_vlm', '--one', model_dirs['idefics3'],
         '--threads', '1', '--weights', 'int8', '--side', '16', '--new-tokens', '4',
         '--runs', '2'], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row['weights'] == 'int8' and row['image_max_side'] == 16
    assert len(row['first_token_ms_runs']) == 2 and row['first_token_ms'] > 0
    assert row['ms_per_token'] > 0                 # end-of-sequence off: 4 tokens each
    assert row['peak_rss_mb'] >= row['rss_mb'] > 0


def test_bench_vlm_node_compares_vqa_with_the_engine_on_the_same_frame(model_dirs):
    pytest.importorskip('rclpy')
    from vla_ros.ros_tools.bench_vlm_node import run
    report = run(model_dirs['idefics3'], 'float32', 512, 1, 4, calls=2)
    assert report['same_answers'], report      # the node answers what the engine answers
    assert report['engine_ms_median'] > 0 and report['vqa_round_trip_ms_median'] > 0
    assert report['ratio'] == pytest.approx(   # the medians in the report are rounded
        report['vqa_round_trip_ms_median'] / report['engine_ms_median'], rel=0.01)
