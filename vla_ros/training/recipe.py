"""One command from nothing to the shipped checkpoint: `vla-ros train --recipe shipped`.

A recipe (config/recipe_<name>.yaml) lists training stages, each a TrainConfig (see
vla_ros/train.py) whose `init_from` may name an earlier stage. Running it trains every
stage in order (each into <work>/<stage>), copies the last one to `out`, exports ONNX
next to it, evaluates it (evaluation.py: every figure the model card reports) and
writes the results to <out>/recipe_results.json and, if the recipe names one, into the
model card between its `<!-- recipe results -->` markers.

`overrides` (e.g. {'steps': 2}) apply to every stage, `caps` bound per-step sizes and
`evaluation_overrides` set the evaluation sizes: the tests run the whole recipe that way
in a tiny configuration.
"""
import json
import os
import shutil
import time
from dataclasses import dataclass, field, replace

import yaml

RECIPE_DIR = 'config'
CHECKPOINT_FILES = ('config.json', 'model.safetensors', 'tokenizer.json', 'metrics.json',
                    'training_curve.png')


@dataclass
class Recipe:
    name: str
    out: str = 'models/vla_tiny'
    work: str = 'models/recipe'          # each stage's checkpoint: <work>/<stage>
    model_card: str = ''                 # markdown file to write the results table into
    stages: dict = field(default_factory=dict)       # stage name -> TrainConfig fields
    evaluation: dict = field(default_factory=dict)   # evaluation.py sizes

    @classmethod
    def load(cls, name_or_path: str) -> 'Recipe':
        """A recipe by name (config/recipe_<name>.yaml, from the repository root) or path."""
        path = name_or_path
        if not os.path.isfile(path):
            path = os.path.join(RECIPE_DIR, f'recipe_{name_or_path}.yaml')
        if not os.path.isfile(path):
            raise FileNotFoundError(f'no recipe {name_or_path!r}: neither a file nor '
                                    f'{path} (run from the repository root)')
        with open(path) as f:
            data = yaml.safe_load(f) or {}
        base = os.path.splitext(os.path.basename(path))[0]
        data.setdefault('name', base[len('recipe_'):] if base.startswith('recipe_') else base)
        return cls(**data)

    def elsewhere(self, out: str) -> 'Recipe':
        """The same stages shipped to `out` instead (a candidate, `--out`): its stages
        train in <out>/stages and its results go to <out>/MODEL_CARD.md, so a candidate
        neither resumes from nor overwrites the shipped checkpoint's work or model card."""
        if os.path.normpath(out) == os.path.normpath(self.out):
            return self
        card = os.path.join(out, 'MODEL_CARD.md') if self.model_card else ''
        return replace(self, out=out, work=os.path.join(out, 'stages'), model_card=card)


def stage_configs(recipe: Recipe, overrides: dict = None, caps: dict = None) -> list:
    """[(stage name, TrainConfig)], init_from resolved to the earlier stages' outputs.

    `overrides` set fields of every stage; `caps` bound the numeric ones a stage sets
    (e.g. {'action_samples_per_step': 8} leaves a stage without demonstrations alone)."""
    from ..train import TrainConfig
    out, earlier = [], set()
    for name, fields in recipe.stages.items():
        fields = dict(fields or {}, **(overrides or {}))
        for key, cap in (caps or {}).items():
            if key in fields:
                fields[key] = min(fields[key], cap)
        source = fields.get('init_from')
        if source in earlier:
            fields['init_from'] = os.path.join(recipe.work, source)
        elif source:
            raise ValueError(f'stage {name}: init_from {source!r} is not an earlier stage')
        earlier.add(name)
        fields['out'] = os.path.join(recipe.work, name)
        out.append((name, TrainConfig(**fields)))
    return out


def run_recipe(recipe: Recipe, overrides: dict = None, evaluation_overrides: dict = None,
               from_stage: str = None, progress: bool = True, log=print,
               caps: dict = None) -> dict:
    """Train every stage (from `from_stage` on, if given), ship, export, evaluate."""
    from ..onnx_export import export_onnx
    from ..train import train
    from .evaluation import evaluate_checkpoint, results_markdown, write_model_card
    stages = stage_configs(recipe, overrides, caps)
    names = [n for n, _ in stages]
    if from_stage is not None and from_stage not in names:
        raise ValueError(f'no stage {from_stage!r}; stages: {", ".join(names)}')
    started = time.time()
    timings = {}
    skipping = from_stage is not None
    for name, cfg in stages:
        skipping = skipping and name != from_stage
        if skipping:
            log(f'[recipe] stage {name}: kept from an earlier run ({cfg.out})')
            continue
        log(f'[recipe] stage {name}: {cfg.steps} steps -> {cfg.out}')
        metrics = train(cfg, progress=progress)
        timings[name] = round(metrics['train_seconds'], 1)
        log(f'[recipe] stage {name}: {metrics["train_seconds"] / 60:.1f} min')
    train_seconds = time.time() - started
    last = stages[-1][1].out
    os.makedirs(recipe.out, exist_ok=True)
    for f in CHECKPOINT_FILES:
        if os.path.exists(os.path.join(last, f)):
            shutil.copy(os.path.join(last, f), os.path.join(recipe.out, f))
    export_onnx(recipe.out)
    log(f'[recipe] shipped {last} -> {recipe.out}, ONNX exported; evaluating')
    results = evaluate_checkpoint(recipe.out, **dict(recipe.evaluation,
                                                     **(evaluation_overrides or {})))
    results['recipe'] = {'name': recipe.name, 'stages': names, 'stage_seconds': timings,
                         'train_seconds': round(train_seconds, 1),
                         'from_stage': from_stage,
                         'total_seconds': round(time.time() - started, 1)}
    with open(os.path.join(recipe.out, 'recipe_results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    if recipe.model_card:
        write_model_card(recipe.model_card, results_markdown(results))
    log(f'[recipe] done in {(time.time() - started) / 60:.1f} min; '
        f'results in {recipe.out}/recipe_results.json')
    return results
