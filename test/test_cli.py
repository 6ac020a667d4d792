"""The `vla-ros` command line, run as a user runs it."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from vla_ros.data.easy_vqa import package_split_dir


def vla_ros(*args, check=True):
    result = subprocess.run([sys.executable, '-m', 'vla_ros.cli', *args], capture_output=True,
                            text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope='module')
def small_dir(tmp_path_factory):
    """Five official test images and their questions, in easy-VQA's layout."""
    src = package_split_dir('test')
    out = tmp_path_factory.mktemp('vqa')
    with open(os.path.join(src, 'questions.json')) as f:
        rows = [r for r in json.load(f) if r[2] < 5]
    (out / 'images').mkdir()
    for i in range(5):
        shutil.copy(os.path.join(src, 'images', f'{i}.png'), out / 'images' / f'{i}.png')
    (out / 'questions.json').write_text(json.dumps(rows))
    return out


def test_eval_on_a_directory_prints_json(small_dir):
    report = json.loads(vla_ros('eval', '--data', str(small_dir), '--json').stdout)
    assert report['n'] == len(json.loads((small_dir / 'questions.json').read_text()))
    assert 0.0 <= report['accuracy'] <= 1.0
    assert set(report['per_type']) <= {'color', 'shape', 'yes/no color', 'yes/no shape',
                                       'yes/no color negated', 'yes/no shape negated'}


def test_eval_on_a_broken_directory_names_the_problem(tmp_path):
    result = vla_ros('eval', '--data', str(tmp_path), check=False)
    assert result.returncode != 0 and 'questions.json' in result.stderr


def test_ask_and_caption(small_dir):
    image = str(small_dir / 'images' / '1.png')
    answer = json.loads(vla_ros('ask', '--image', image, '--question',
                                'what color is the shape?', '--json').stdout)
    assert answer['text'] == 'yellow' and answer['latency_ms'] > 0
    caption = json.loads(vla_ros('caption', '--image', image, '--json').stdout)
    assert 'yellow rectangle' in caption['text']


def test_ground_and_its_evaluation(tmp_path):
    import cv2
    from vla_ros.sim.world import World
    world = World.random(1_000_003)      # a held-out arena with three shapes in view
    image = str(tmp_path / 'arena.png')
    cv2.imwrite(image, world.render(256, 256)[:, :, ::-1])
    shape = world.shapes[0]
    g = json.loads(vla_ros('ground', '--image', image, '--phrase',
                           f'{shape.color} {shape.shape}', '--json').stdout)
    assert g['visible'] and g['frame_size'] == [256, 256] and len(g['boxes']) == 1
    x0, y0, x1, y1 = g['boxes'][0]['box']
    assert 0 <= x0 < x1 <= 256 and 0 <= y0 < y1 <= 256
    result = vla_ros('ground', '--image', image, '--phrase', 'the red unicorn', check=False)
    assert result.returncode != 0 and "'unicorn'" in result.stderr
    report = json.loads(vla_ros('eval', '--grounding', '4', '--json').stdout)
    assert report['arenas'] == 4 and report['absent']['n'] == 4
    assert report['in_view']['n'] + report['out_of_view']['n'] > 4


def test_ask_refuses_an_empty_question_and_a_missing_image(small_dir):
    result = vla_ros('ask', '--image', str(small_dir / 'images' / '1.png'), '--question', ' ',
                     check=False)
    assert result.returncode != 0 and 'empty' in result.stderr
    result = vla_ros('ask', '--image', 'nope.png', '--question', 'what?', check=False)
    assert result.returncode != 0 and 'nope.png' in result.stderr


def test_a_missing_checkpoint_is_one_clear_line(tmp_path):
    result = vla_ros('caption', '--image', 'x.png', '--checkpoint', str(tmp_path / 'none'),
                     check=False)
    assert result.returncode != 0
    assert 'checkpoint directory not found' in result.stderr
    assert 'Traceback' not in result.stderr


def test_train_writes_checkpoint_metrics_and_curve(tmp_path):
    config = tmp_path / 'tiny.yaml'
    config.write_text(
        'steps: 4\neasy_vqa_images_per_step: 4\nscene_images_per_step: 2\nval_images: 10\n'
        'action_samples_per_step: 4\n'
        'eval_every: 4\nmodel: {dim: 32, heads: 2, kv_heads: 1, kv_rank: 8, vision_layers: 1,'
        ' decoder_layers: 1}\n')
    vla_ros('train', '--config', str(config), '--out', str(tmp_path / 'ck'))
    files = sorted(os.listdir(tmp_path / 'ck'))
    assert files == ['config.json', 'metrics.json', 'model.safetensors', 'tokenizer.json',
                     'training_curve.png']
    metrics = json.loads((tmp_path / 'ck' / 'metrics.json').read_text())
    assert metrics['steps_done'] == 4 and len(metrics['history']['loss']) == 4
    assert len(metrics['history']['action_loss']) == 4

    # a second stage starts from that checkpoint (same tokenizer and architecture)
    stage2 = tmp_path / 'stage2.yaml'
    stage2.write_text(f"init_from: {tmp_path / 'ck'}\nsteps: 2\neasy_vqa_images_per_step: 2\n"
                      'scene_images_per_step: 1\nval_images: 10\naction_samples_per_step: 4\n')
    vla_ros('train', '--config', str(stage2), '--out', str(tmp_path / 'ck2'))
    first = json.loads((tmp_path / 'ck' / 'config.json').read_text())
    assert json.loads((tmp_path / 'ck2' / 'config.json').read_text()) == first


def test_explain_writes_attention_maps_of_the_documented_size(small_dir, tmp_path):
    import cv2
    image = os.path.join(small_dir, 'images', sorted(os.listdir(
        os.path.join(small_dir, 'images')))[0])
    out = tmp_path / 'map.png'
    printed = vla_ros('explain', '--image', image, '--question', 'what color is the shape?',
                      '--out', str(out)).stdout
    figure = cv2.imread(str(out))
    assert figure.shape == (256 + 56, 3 * 256, 3) and 'wrote' in printed
    pointer = tmp_path / 'pointer.png'
    vla_ros('explain', '--image', image, '--instruction', 'go to the red circle',
            '--out', str(pointer))
    assert cv2.imread(str(pointer)).shape == (256 + 56, 2 * 256, 3)
    failed = vla_ros('explain', '--image', str(tmp_path / 'none.png'), '--question', 'x',
                     '--out', str(out), check=False)
    assert failed.returncode != 0 and 'cannot read an image' in failed.stderr


def test_bench_compares_checkpoints_on_onnxruntime_and_refuses_a_missing_export(tmp_path):
    """--compare on ONNX Runtime (e.g. a 3D candidate against the shipped model): one
    report per checkpoint, timed in one run; a checkpoint without an export is refused."""
    from vla_ros.engine.api import default_checkpoint
    shipped = default_checkpoint()
    report = json.loads(vla_ros('bench', '--backend', 'onnxruntime', '--runs', '3',
                                '--compare', shipped, '--json').stdout)
    assert [e['backend'] for e in report['engines']] == ['onnxruntime'] * 2
    assert all(e['act_ms']['p50'] > 0 and e['answer_ms']['p50'] > 0
               for e in report['engines'])
    shutil.copytree(shipped, tmp_path / 'no_export',
                    ignore=shutil.ignore_patterns('onnx'))
    refused = vla_ros('bench', '--backend', 'onnxruntime', '--runs', '3', '--compare',
                      str(tmp_path / 'no_export'), check=False)
    assert refused.returncode != 0 and 'onnx' in refused.stderr.lower()
    assert 'Traceback' not in refused.stderr
    wrong = vla_ros('bench', '--backend', 'both', '--compare', shipped, check=False)
    assert wrong.returncode != 0 and '--compare' in wrong.stderr
