"""Auxiliary tasks on the shared features: extra label heads and rotation prediction (Sun et al. 2019)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import build_model, make_domain, tiny_vit_config, train_args

try:
    from hub_fixtures import hub, hub_server, unique_repo  # noqa: F401
except ImportError:  # pragma: no cover - run from the repository root as a package
    from tests.hub_fixtures import hub, hub_server, unique_repo  # noqa: F401
from hf_transfer.auxiliary import (
    TaskSpec,
    check_tasks_fit,
    masked_cross_entropy,
    parse_task_weights,
    rotate_images,
    rotation_batch,
    source_only_labels,
    tasks_for,
)

SHAPES = ["round", "square"]


def test_rotation_labels_say_how_far_each_image_was_turned():
    image = torch.zeros(1, 1, 2, 2)
    image[0, 0, 0, 1] = 1.0  # top right
    corners = {0: (0, 1), 1: (0, 0), 2: (1, 0), 3: (1, 1)}  # counter-clockwise: top right -> top left -> ...
    for k, (row, col) in corners.items():
        turned = rotate_images(image, torch.tensor([k]))
        assert turned[0, 0, row, col] == 1.0 and turned.sum() == 1.0
    batch = torch.randn(8, 3, 4, 4)
    rotated, labels = rotation_batch(batch, generator=torch.Generator().manual_seed(0))
    again, same = rotation_batch(batch, generator=torch.Generator().manual_seed(0))
    assert torch.equal(labels, same) and torch.equal(rotated, again)  # the draw is seeded
    assert set(labels.tolist()) <= {0, 1, 2, 3} and len(set(labels.tolist())) > 1
    for i, k in enumerate(labels.tolist()):  # turning back by (4 - k) quarter turns gives the original image
        assert torch.equal(torch.rot90(rotated[i], 4 - k, dims=(-2, -1)), batch[i])
    with pytest.raises(ValueError, match="square"):
        rotate_images(torch.zeros(2, 3, 4, 5), torch.tensor([0, 1]))


def test_label_task_losses_mask_unlabelled_and_target_rows():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, -1.0]])
    labels = torch.tensor([0, 1, -100, 1])
    domains = torch.tensor([0, 0, 0, 1])
    kept = source_only_labels(labels, domains)
    assert kept.tolist() == [0, 1, -100, -100]
    expected = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(-1.0))) / 2
    assert masked_cross_entropy(logits, kept).item() == pytest.approx(expected, rel=1e-6)
    none = masked_cross_entropy(logits, torch.full((4,), -100))
    assert none.item() == 0.0


def test_task_weights_and_specs_are_checked():
    assert parse_task_weights("rotation=0.1, shape=2") == {"rotation": 0.1, "shape": 2.0}
    with pytest.raises(ValueError, match="name=weight"):
        parse_task_weights("rotation")
    with pytest.raises(ValueError, match="class names are not known"):
        tasks_for({"shape": 1.0})
    specs = tasks_for({"rotation": 0.1, "shape": 1.0}, {"shape": SHAPES})
    assert specs["rotation"].num_classes == 4 and specs["shape"].labels == SHAPES
    with pytest.raises(ValueError, match="No self-supervised task fits audio or text"):
        check_tasks_fit({"rotation": TaskSpec("rotation")}, "text")


def _with_shapes(examples):
    for i, example in enumerate(examples):
        example["labels__shape"] = i % 2
    return examples


def _model():
    return build_model(tasks=tasks_for({"rotation": 1.0, "shape": 1.0}, {"shape": SHAPES}))


def test_forward_adds_each_weighted_task_loss_to_the_classification_loss():
    model = _model().train()
    source, target = _with_shapes(make_domain(4, seed=1)), _with_shapes(make_domain(4, shift=1.0, seed=2, labelled=False))
    batch = {key: torch.stack([torch.as_tensor(e[key]) for e in source + target]) for key in source[0]}
    batch["domain_labels"] = torch.tensor([0] * 4 + [1] * 4)
    torch.manual_seed(5)
    out = model(**batch, task_weights={"shape": 0.5, "rotation": 0.25})
    torch.manual_seed(5)  # the same rotation draw, by hand
    rotated, turns = rotation_batch(batch["pixel_values"])
    model.eval()  # dropout-free tiny ViT: eval and train forward agree
    features = model.extract_features(pixel_values=batch["pixel_values"])
    shape_labels = torch.tensor([0, 1, 0, 1, -100, -100, -100, -100])  # the target's shape labels are never trained on
    shape = F.cross_entropy(model.task_heads["shape"](features), shape_labels, ignore_index=-100)
    rotation = F.cross_entropy(model.task_heads["rotation"](model.extract_features(pixel_values=rotated)), turns)
    assert out.task_logs["shape_loss"].item() == pytest.approx(shape.item(), rel=1e-4)
    assert out.task_logs["rotation_loss"].item() == pytest.approx(rotation.item(), rel=1e-4)
    expected = out.classification_loss + out.alignment_loss + 0.5 * shape + 0.25 * rotation
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-4)
    plain = model(**batch)
    assert plain.task_logs is None and plain.loss.item() == pytest.approx((plain.classification_loss + plain.alignment_loss).item())
    with pytest.raises(ValueError, match="no head"):
        model(**batch, task_weights={"colour": 1.0})


def test_trainer_trains_and_evaluates_each_task_per_domain_and_the_heads_reload(tmp_path):
    from hf_transfer.cards import build_model_card
    from hf_transfer.modeling import DomainAdaptationModel
    from hf_transfer.trainer import DomainAdaptationTrainer

    model = _model()
    source, target = _with_shapes(make_domain(12, seed=1)), _with_shapes(make_domain(8, shift=1.0, seed=2))
    args = train_args(tmp_path, task_loss_weights="rotation=0.5,shape=1.0", max_steps=3)
    trainer = DomainAdaptationTrainer(model=model, args=args, source_dataset=source, target_dataset=target,
                                      eval_datasets={"source": source, "target": target})
    before = model.task_heads["rotation"].weight.detach().clone()
    trainer.train()
    assert not torch.equal(before, model.task_heads["rotation"].weight)  # the head trained
    logged = [log for log in trainer.state.log_history if "rotation_loss" in log]
    assert logged and "shape_accuracy" in logged[0]
    metrics = trainer.evaluate()
    model.eval()
    for domain, data in (("source", source), ("target", target)):
        # rotation is scored on every image turned by each of the four angles, the target included
        pixels = torch.stack([e["pixel_values"] for e in data])
        hits = [model.task_logits("rotation", pixel_values=rotate_images(pixels, torch.full((len(data),), k))).argmax(-1)
                == k for k in range(4)]
        assert metrics[f"eval_{domain}_rotation_accuracy"] == pytest.approx(torch.cat(hits).float().mean().item())
        assert f"eval_{domain}_shape_accuracy" in metrics
    features = model.extract_features(pixel_values=torch.stack([e["pixel_values"] for e in source]))
    predicted = model.task_heads["shape"](features).argmax(-1)
    assert metrics["eval_source_shape_accuracy"] == pytest.approx(
        (predicted == torch.tensor([e["labels__shape"] for e in source])).float().mean().item())
    trainer.save_model(str(tmp_path / "saved"))
    info = json.loads((tmp_path / "saved" / "domain_adaptation.json").read_text())
    assert info["tasks"]["shape"] == {"kind": "labels", "labels": SHAPES}
    assert info["training"]["task_loss_weights"] == {"rotation": 0.5, "shape": 1.0}
    from transformers import ViTForImageClassification

    base = ViTForImageClassification(tiny_vit_config())
    reloaded = DomainAdaptationModel.from_pretrained(tmp_path / "saved", base_model=base)
    for name in ("rotation", "shape"):
        assert torch.equal(reloaded.task_heads[name].weight, model.task_heads[name].weight)
    card = build_model_card(tmp_path / "saved", repo_id="user/tasks")
    names = [r.metric_name for r in card.data.eval_results]
    assert "Target rotation accuracy" in names and "Source shape accuracy" in names
    assert "rotation (weight 0.5" in card.text


def _saved_domain(path, shift: int, n: int = 9) -> None:
    """A saved image dataset with a class label and a second label column, ``shape``."""
    import datasets
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(shift)
    images, labels, shapes = [], [], []
    for i in range(n):
        pixels = rng.integers(0, 60, size=(16, 16, 3))
        pixels[:, :, i % 3] += 150
        images.append(Image.fromarray(np.clip(pixels + shift, 0, 255).astype("uint8")))
        labels.append(i % 3)
        shapes.append(SHAPES[(i // 3) % 2])
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b", "c"]),
                                  "shape": datasets.Value("string")})
    datasets.Dataset.from_dict({"image": images, "label": labels, "shape": shapes}, features=features).save_to_disk(path)


def test_label_columns_and_rotation_from_a_config(tiny_setup, capsys):
    """`hf-transfer train` with training.task_loss_weights: the shape column gets a head, rotation runs on both."""
    from hf_transfer.cli import main
    from hf_transfer.data import DomainDataArguments, load_domain

    tmp_path, config = tiny_setup
    _saved_domain(tmp_path / "src", 0)
    _saved_domain(tmp_path / "tgt", 60)
    loaded = load_domain(DomainDataArguments(dataset=str(tmp_path / "src")), task_columns=["shape"])
    assert loaded["task__shape"][:4] == ["round", "round", "round", "square"]
    with pytest.raises(ValueError, match="has no column 'colour'"):
        load_domain(DomainDataArguments(dataset=str(tmp_path / "src")), task_columns=["colour"], require_task_columns=True)
    code = main(["train", str(config), "--source.dataset", str(tmp_path / "src"), "--target.dataset", str(tmp_path / "tgt"),
                 "--target.eval_split", "train", "--training.task_loss_weights", "rotation=0.5,shape=1.0",
                 "--training.shift_report", "none", "--training.max_steps", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    metrics = json.loads(printed[: printed.rindex("}") + 1])
    # each task on the evaluated split (the target; the values are checked by hand in the test above)
    assert {"eval_target_rotation_accuracy", "eval_target_shape_accuracy"} <= set(metrics)
    info = json.loads((tmp_path / "out" / "domain_adaptation.json").read_text())
    assert info["tasks"] == {"rotation": {"kind": "rotation", "labels": ["0°", "90°", "180°", "270°"]},
                             "shape": {"kind": "labels", "labels": SHAPES}}
    assert (tmp_path / "out" / "task_heads.safetensors").is_file()


def test_task_heads_round_trip_through_the_hub(hub, tmp_path):
    from transformers import ViTForImageClassification, ViTImageProcessor

    from hf_transfer.hub import load_for_continued_adaptation, push_base_model, push_to_hub

    torch.manual_seed(0)
    ViTForImageClassification(tiny_vit_config()).save_pretrained(tmp_path / "vit")
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(tmp_path / "vit")
    model = build_model(ViTForImageClassification.from_pretrained(tmp_path / "vit"),
                        tasks=tasks_for({"rotation": 1.0, "shape": 1.0}, {"shape": SHAPES}))
    model.save_pretrained(tmp_path / "adapted")
    ViTImageProcessor.from_pretrained(tmp_path / "vit").save_pretrained(tmp_path / "adapted")
    base_repo, repo = unique_repo("tiny-vit-base"), unique_repo("tiny-vit-tasks")
    push_base_model(tmp_path / "vit", base_repo)
    push_to_hub(tmp_path / "adapted", repo, base_model_repo_id=base_repo)
    assert "task_heads.safetensors" in hub.double.files(repo)
    loaded = load_for_continued_adaptation(repo).model
    assert loaded.task_specs["shape"].labels == SHAPES
    for name in ("rotation", "shape"):
        assert torch.equal(loaded.task_heads[name].weight, model.task_heads[name].weight)
        assert loaded.task_heads[name].weight.requires_grad
