"""`vla-ros train --recipe shipped`, end to end in a tiny configuration: every stage of
the real recipe file trains (2 steps, small batches), the last is shipped and exported
to ONNX, evaluated, and its results land in recipe_results.json and the model card."""
import json
import os

import pytest

from vla_ros.training.evaluation import MARK_BEGIN, MARK_END, write_model_card
from vla_ros.training.recipe import Recipe, run_recipe, stage_configs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPS = {'easy_vqa_images_per_step': 3, 'scene_images_per_step': 2,
        'scene3d_images_per_step': 2, 'action_samples_per_step': 8, 'val_images': 6,
        'val_scene3d_images': 2, 'scene3d_pool': 6}
TINY_EVALUATION = {'easy_vqa': False, 'scene3d_frames': 4, 'scene3d_held_out_style_frames': 2,
                   'sim_episodes': 1, 'held_out_style_episodes': 0, 'face_episodes': 1,
                   'expert_episodes': 1, 'bench_runs': 3, 'threads': 1}


def shipped(tmp_path):
    recipe = Recipe.load(os.path.join(REPO, 'config', 'recipe_shipped.yaml'))
    recipe.out, recipe.work = str(tmp_path / 'out'), str(tmp_path / 'work')
    recipe.model_card = str(tmp_path / 'MODEL_CARD.md')
    return recipe


def test_the_shipped_recipe_chains_its_stages(tmp_path):
    stages = stage_configs(shipped(tmp_path))
    names = [n for n, _ in stages]
    assert stages[0][1].init_from is None, 'the recipe starts from scratch'
    for (name, cfg), before in zip(stages[1:], names):
        assert cfg.init_from == os.path.join(str(tmp_path / 'work'), before), name
    assert any(cfg.world == '3d' and cfg.action_samples_per_step for _, cfg in stages)


def test_a_candidate_trains_and_reports_beside_itself_not_over_the_shipped_model():
    recipe = Recipe.load(os.path.join(REPO, 'config', 'recipe_shipped.yaml'))
    candidate = recipe.elsewhere('models/candidate')
    assert (candidate.out, candidate.work, candidate.model_card) == (
        'models/candidate', os.path.join('models/candidate', 'stages'),
        os.path.join('models/candidate', 'MODEL_CARD.md'))
    assert candidate.stages == recipe.stages
    assert (recipe.out, recipe.work, recipe.model_card) == (
        'models/vla_tiny', 'models/recipe', 'models/MODEL_CARD.md')   # untouched
    assert recipe.elsewhere('models/vla_tiny/') is recipe    # the shipped place: as written


def test_a_stage_that_starts_from_an_unknown_stage_is_refused(tmp_path):
    recipe = shipped(tmp_path)
    recipe.stages = {'a': {'steps': 1}, 'b': {'init_from': 'nope'}}
    with pytest.raises(ValueError, match="init_from 'nope'"):
        stage_configs(recipe)


def test_the_model_card_keeps_its_text_around_the_results(tmp_path):
    card = tmp_path / 'card.md'
    card.write_text(f'# card\nbefore\n{MARK_BEGIN}\nold\n{MARK_END}\nafter\n')
    write_model_card(str(card), 'new table')
    text = card.read_text()
    assert 'old' not in text and 'new table' in text
    assert text.startswith('# card\nbefore\n') and text.endswith('after\n')


def test_the_recipe_runs_end_to_end_in_a_tiny_configuration(tmp_path):
    recipe = shipped(tmp_path)
    results = run_recipe(recipe, {'steps': 1, 'eval_every': 1, 'threads': 1},
                         TINY_EVALUATION, progress=False, log=lambda *_: None, caps=CAPS)
    out = tmp_path / 'out'
    for f in ('config.json', 'model.safetensors', 'tokenizer.json', 'recipe_results.json',
              'onnx/manifest.json'):
        assert (out / f).exists(), f
    saved = json.loads((out / 'recipe_results.json').read_text())
    assert saved['recipe']['stages'] == list(recipe.stages)
    assert set(saved['recipe']['stage_seconds']) == set(recipe.stages)
    assert saved['scenes3d']['train_styles']['frames'] == 4
    loop = saved['closed_loop']
    assert loop['expert_goto']['episodes'] == 1 and loop['goto']['episodes'] == 1
    assert saved['speed']['answer_ms']['p50'] > 0
    card = (tmp_path / 'MODEL_CARD.md').read_text()
    assert MARK_BEGIN in card and 'sim-eval, 3D world' in card
    assert results['recipe']['name'] == 'shipped'
