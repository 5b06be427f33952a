import pytest
import torch

from hf_transfer.data.collator import DomainBatchCollator
from hf_transfer.data.pairing import SourceTargetDataset
from tests.conftest import make_domain


def _batches(dataset, batch_size, collator):
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collator)
    return list(loader)


def test_every_batch_holds_both_domains_in_the_fixed_ratio():
    source, target = make_domain(10), make_domain(7, shift=1.0)
    for ratio in (1, 2, 3):
        pairs = SourceTargetDataset(source, target, target_ratio=ratio)
        for batch in _batches(pairs, 4, DomainBatchCollator()):
            domains = batch["domain_labels"]
            n_source = int((domains == 0).sum())
            assert n_source > 0 and int((domains == 1).sum()) == ratio * n_source
            # source rows first, then target: one concatenated forward pass
            assert domains.tolist() == sorted(domains.tolist())
            assert batch["pixel_values"].shape[0] == domains.shape[0]


def test_target_labels_are_masked_unless_allowed():
    source, target = make_domain(6), make_domain(6, shift=1.0)  # target carries real labels
    pairs = SourceTargetDataset(source, target)
    batch = DomainBatchCollator()([pairs[i] for i in range(len(pairs))])
    target_labels = batch["labels"][batch["domain_labels"] == 1]
    assert (target_labels == -100).all()
    assert (batch["labels"][batch["domain_labels"] == 0] >= 0).all()

    semi = SourceTargetDataset(source, target, num_target_labels=2)
    kept = {j for i in range(len(semi)) for j in semi.target_indices(i)} & semi.labelled_target_indices
    assert len(semi.labelled_target_indices) == 2 and kept
    labelled = [t for i in range(len(semi)) for t in semi[i]["target"] if t["labels"] != -100]
    assert len(labelled) == len([j for i in range(len(semi)) for j in semi.target_indices(i) if j in kept])


def test_epochs_run_over_source_and_target_cycles():
    source, target = make_domain(3), make_domain(10, shift=1.0)
    pairs = SourceTargetDataset(source, target, target_ratio=1)
    assert len(pairs) == 3
    seen = set()
    for epoch in range(4):
        pairs.set_epoch(epoch)
        seen |= {j for i in range(len(pairs)) for j in pairs.target_indices(i)}
    assert seen == set(range(10))  # 4 epochs × 3 = 12 draws cover all 10 target examples


def test_empty_domains_are_refused():
    import pytest

    with pytest.raises(ValueError, match="source dataset is empty"):
        SourceTargetDataset([], make_domain(2))
    with pytest.raises(ValueError, match="target dataset is empty"):
        SourceTargetDataset(make_domain(2), [])


def test_collator_passes_plain_examples_through_for_evaluation():
    batch = DomainBatchCollator()(make_domain(3))
    assert "domain_labels" not in batch and batch["pixel_values"].shape == (3, 3, 16, 16)


def test_a_batch_is_fetched_with_one_transform_call_per_domain_and_equals_item_by_item():
    from datasets import Dataset

    calls = []

    def transform(batch):
        calls.append(len(batch["x"]))
        return {"pixel_values": [torch.full((2,), float(x)) for x in batch["x"]], "labels": list(batch["label"])}

    source = Dataset.from_dict({"x": list(range(6)), "label": [0, 1, 2] * 2}).with_transform(transform)
    target = Dataset.from_dict({"x": list(range(100, 109)), "label": [1] * 9}).with_transform(transform)
    pairs = SourceTargetDataset(source, target, target_ratio=2, num_target_labels=3, seed=1)
    pairs.set_epoch(1)
    calls.clear()
    batch = pairs.__getitems__([4, 0, 5])
    assert calls == [3, 6]  # the source rows, then the target rows: two calls instead of nine
    one_by_one = [pairs[i] for i in (4, 0, 5)]
    for fetched, single in zip(batch, one_by_one):
        assert torch.equal(fetched["source"]["pixel_values"], single["source"]["pixel_values"])
        assert fetched["source"]["labels"] == single["source"]["labels"]
        assert [t["labels"] for t in fetched["target"]] == [t["labels"] for t in single["target"]]
        assert [t["pixel_values"][0].item() for t in fetched["target"]] == [
            t["pixel_values"][0].item() for t in single["target"]
        ]
    assert [t["pixel_values"][0].item() - 100 for t in batch[1]["target"]] == [
        pairs._target_order[j % 9] for j in (1 * 6 * 2 + 0, 1 * 6 * 2 + 1)
    ]  # item 0 of epoch 1 takes target positions e·n_s·r + i·r + k of the permutation


def test_several_sources_are_balanced_in_every_batch_and_labelled_by_domain():
    from hf_transfer.data.pairing import MultiSource

    sources = MultiSource([make_domain(6, seed=1), make_domain(3, seed=2), make_domain(4, seed=3)])
    target = make_domain(5, shift=2.0, seed=4, labelled=False)
    pairs = SourceTargetDataset(sources, target, target_ratio=2, seed=0)
    assert len(pairs) == 6 and pairs.num_sources == 3  # one epoch = one pass over the largest source
    collator = DomainBatchCollator()
    seen = {k: [] for k in range(3)}
    for epoch in range(2):
        pairs.set_epoch(epoch)
        for batch in _batches(pairs, 2, collator):
            # 2 items × (3 sources + 2 targets): source k rows, then the target rows
            assert batch["domain_ids"].tolist() == [0, 1, 2, 0, 1, 2, 3, 3, 3, 3]
            assert batch["domain_labels"].tolist() == [0] * 6 + [1] * 4
            assert (batch["labels"][6:] == -100).all()
    for epoch in range(2):
        pairs.set_epoch(epoch)
        for i in range(len(pairs)):
            for k in range(3):
                seen[k].append(pairs.source_index(k, i))
    assert seen[0] == list(range(6)) * 2  # the largest source is read in order
    for k, n in ((1, 3), (2, 4)):  # smaller sources cycle through all their examples
        assert set(seen[k]) == set(range(n)) and len(seen[k]) == 12
    single = DomainBatchCollator()(SourceTargetDataset(make_domain(4), target).__getitems__([0, 1]))
    assert "domain_ids" not in single  # one source: the binary batch of before


def test_an_empty_source_among_several_is_refused():
    from hf_transfer.data.pairing import MultiSource

    with pytest.raises(ValueError, match="source dataset is empty"):
        SourceTargetDataset(MultiSource([make_domain(2), []]), make_domain(2))
