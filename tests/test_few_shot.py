"""Few-shot targets: the stratified, seeded K-per-class draw, and no other target label ever reaching the loss."""

from collections import Counter

import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value

from hf_transfer.data import DomainBatchCollator
from hf_transfer.data.few_shot import dataset_labels, stratified_indices
from hf_transfer.data.pairing import SourceTargetDataset
from hf_transfer.trainer import DomainAdaptationTrainer
from tests.conftest import build_model, make_domain, train_args

LABELS = [i % 3 for i in range(30)]


def test_the_draw_takes_exactly_k_per_class_and_is_seeded():
    drawn = stratified_indices(LABELS, 4, seed=7)
    assert Counter(LABELS[i] for i in drawn) == {0: 4, 1: 4, 2: 4}
    assert drawn == sorted(drawn) and len(set(drawn)) == 12
    assert stratified_indices(LABELS, 4, seed=7) == drawn
    assert stratified_indices(LABELS, 4, seed=8) != drawn
    # K = 1 of a larger K's seed need not be a subset, but is one example per class
    assert sorted(LABELS[i] for i in stratified_indices(LABELS, 1, seed=7)) == [0, 1, 2]


def test_unlabelled_rows_are_never_drawn_a_short_class_gives_all_it_has_and_an_absent_one_is_an_error(caplog):
    labels = [0, -100, 1, -1, 0, 1, 1, 1]
    assert set(stratified_indices(labels, 2, seed=0)) <= {0, 2, 4, 5, 6, 7}
    assert Counter(labels[i] for i in stratified_indices(labels, 2, seed=0)) == {0: 2, 1: 2}
    drawn = stratified_indices(labels, 3, seed=0)
    assert Counter(labels[i] for i in drawn) == {0: 2, 1: 3}
    assert "fewer than 3 labelled examples in class(es) 0 (2)" in caplog.text
    with pytest.raises(ValueError, match=r"no labelled example of class\(es\) \[2\]"):
        stratified_indices(labels, 1, seed=0, num_classes=3)
    with pytest.raises(ValueError, match=">= 1"):
        stratified_indices(labels, 0, seed=0)


def test_labels_are_read_without_running_the_datasets_transform():
    dataset = Dataset.from_dict({"x": [0.0] * 6, "label": LABELS[:6]},
                                features=Features({"x": Value("float32"), "label": ClassLabel(names=["a", "b", "c"])}))

    def transform(batch):
        raise AssertionError("the transform decodes inputs; a label read must not run it")

    assert dataset_labels(dataset.with_transform(transform)) == LABELS[:6]
    assert dataset_labels([{"labels": 2}, {"label": 1}, {"x": 0}]) == [2, 1, -100]


def _target(n=12):
    examples = make_domain(n, shift=1.0, seed=3)
    for i, example in enumerate(examples):
        example["row"] = i
    return examples


def test_every_item_holds_one_labelled_shot_and_no_other_target_label_survives():
    source, target = make_domain(10, seed=1), _target(12)
    shots = stratified_indices([e["labels"] for e in target], 1, seed=0)
    pairs = SourceTargetDataset(source, target, target_ratio=2, seed=0, labelled_target_indices=shots)
    seen = set()
    for epoch in range(4):
        pairs.set_epoch(epoch)
        for item in pairs.__getitems__(list(range(len(pairs)))):
            assert len(item["target"]) == 3  # target_ratio unlabelled + 1 shot
            *unlabelled, shot = item["target"]
            assert all(e["labels"] == -100 for e in unlabelled)
            assert shot["row"] in shots and shot["labels"] == target[shot["row"]]["labels"]
            seen.add(shot["row"])
    assert seen == set(shots)  # the shots cycle: each is seen


def test_no_target_label_but_the_shots_reaches_the_loss_in_training(tmp_path, monkeypatch):
    source, target = make_domain(12, seed=1), _target(12)
    model = build_model()
    trainer = DomainAdaptationTrainer(
        model=model, args=train_args(tmp_path, max_steps=6, target_labels_per_class=2, seed=5),
        source_dataset=source, target_dataset=target,
    )
    shots = trainer.train_dataset.few_shot
    assert sorted(shots) == stratified_indices([e["labels"] for e in target], 2, seed=5)
    shot_pixels = torch.stack([target[i]["pixel_values"] for i in shots])
    reached = []
    forward = type(model).forward

    def spy(self, labels=None, domain_labels=None, **kwargs):
        if domain_labels is not None:
            rows = (domain_labels == 1) & (labels != -100)
            reached.extend(kwargs["pixel_values"][rows].detach())
        return forward(self, labels=labels, domain_labels=domain_labels, **kwargs)

    monkeypatch.setattr(type(model), "forward", spy)
    trainer.train()
    assert len(reached) == 6 * 4  # one shot per source row, every step
    for pixels in reached:
        assert any(torch.equal(pixels, shot) for shot in shot_pixels)
    info = model.run_info.training
    assert info["target_labels_per_class"] == 2 and info["labelled_target_indices"] == sorted(shots)


def test_the_collated_batch_keeps_the_shot_labels_as_target_rows():
    source, target = make_domain(4, seed=1), _target(6)
    pairs = SourceTargetDataset(source, target, labelled_target_indices=[0, 1, 2], seed=0)
    batch = DomainBatchCollator()(pairs.__getitems__([0, 1]))
    assert batch["domain_labels"].tolist() == [0, 0, 1, 1, 1, 1]
    target_labels = batch["labels"][2:].tolist()
    assert target_labels[0] == -100 and target_labels[2] == -100  # the unlabelled ones
    assert target_labels[1] != -100 and target_labels[3] != -100  # the shots


def test_few_shot_and_a_random_label_budget_are_exclusive(tmp_path):
    with pytest.raises(ValueError, match="cannot be combined with num_target_labels"):
        train_args(tmp_path, target_labels_per_class=2, num_target_labels=3)
    with pytest.raises(ValueError, match="either num_target_labels or labelled_target_indices"):
        SourceTargetDataset(make_domain(2), make_domain(2), num_target_labels=1, labelled_target_indices=[0])


def test_the_same_rows_are_drawn_whatever_the_classes_are_called():
    renamed = [{0: 2, 1: 0, 2: 1}[label] for label in LABELS]  # the same split, its classes numbered differently
    assert stratified_indices(renamed, 3, seed=4) == stratified_indices(LABELS, 3, seed=4)


def test_the_fine_tune_baseline_trains_on_the_rows_the_few_shot_run_labels(tmp_path):
    import csv

    from hf_transfer.data import DomainDataArguments, align_labels, load_domain
    from hf_transfer.pipeline import _training_split

    def write(path, rows):
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([("text", "label"), *rows])

    # the target's classes are ids 0/1/2 in their own order; aligned to this source, ids follow its names
    write(tmp_path / "source.csv", [(f"s{i}", i % 3) for i in range(6)])  # ids 0, 1, 2 = zeta, alpha, mid
    write(tmp_path / "target.csv", [(f"t{i}", ["alpha", "mid", "zeta"][i % 3]) for i in range(21)])
    target_args = DomainDataArguments(dataset=str(tmp_path / "target.csv"), input_column="text")
    source = load_domain(DomainDataArguments(dataset=str(tmp_path / "source.csv"), input_column="text",
                                             label_names=["zeta", "alpha", "mid"]))
    _, target, _ = align_labels(source, load_domain(target_args))
    assert dataset_labels(target)[:3] == [1, 2, 0]  # alpha, mid, zeta in the source's ids
    assert dataset_labels(load_domain(target_args))[:3] == [0, 1, 2]  # and in the target's own
    shots = stratified_indices(dataset_labels(target), 3, seed=11)  # what target_labels_per_class=3 labels
    labelled = sorted(target[i]["input"] for i in shots)
    baseline = _training_split(DomainDataArguments(dataset=str(tmp_path / "target.csv"), input_column="text",
                                                   examples_per_class=3), seed=11)
    assert sorted(baseline["input"]) == labelled and len(labelled) == 9
