from pathlib import Path

import pytest

from hf_transfer.cli import parse_train_arguments

RECIPES = sorted(Path(__file__).resolve().parents[1].joinpath("recipes").rglob("*.yaml"))


def test_there_are_recipes():
    assert RECIPES


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_recipe_config_parses(path):
    model, source, target, training, _ = parse_train_arguments(str(path), [])
    assert model.model_name_or_path and source.dataset and target.dataset
    assert training.method in ("dann", "source_only") and training.output_dir
