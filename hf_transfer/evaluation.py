"""Evaluate a saved adapted model on any dataset (the ``hf-transfer evaluate`` command)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


@torch.no_grad()
def predict(model: Any, dataset: Any, collator: Any, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of ``dataset`` (already transformed to model inputs)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=collator)
    logits, labels = [], []
    model.eval()
    for batch in loader:
        labels.append(batch.pop("labels").numpy())
        logits.append(model(**batch).logits.float().numpy())
    return np.concatenate(logits), np.concatenate(labels)


def evaluate_saved_model(
    model_dir: str,
    dataset: str,
    *,
    split: str = "train",
    input_column: str | None = None,
    label_column: str | None = "label",
    batch_size: int = 32,
    center_crop: float | None = None,
    trust_remote_code: bool = False,
    config: str | None = None,
    revision: str | None = None,
    data_dir: str | None = None,
    filter_column: str | None = None,
    filter_values: list[str] | None = None,
    label_names: list[str] | None = None,
) -> dict[str, float]:
    """Accuracy and macro-F1 of the adapted model in ``model_dir`` on a labelled dataset.

    ``center_crop`` (images) should be the one the dataset's domain was trained with
    (``domain_adaptation.json`` records it under ``source_domain``/``target_domain``), and so
    should the row filter (``filter_column``/``filter_values``) that picked the domain's rows.
    """
    from transformers import AutoProcessor

    from .artifacts import RunInfo
    from .modeling import DomainAdaptationModel

    run_info = RunInfo.read(model_dir)  # before any model is loaded: a wrong folder or wrong data fails at once
    data_args = dict(
        dataset=dataset, config=config, revision=revision, data_dir=data_dir, split=split, input_column=input_column,
        label_column=label_column, filter_column=filter_column, filter_values=filter_values, label_names=label_names,
    )
    raw = load_eval_domain(run_info, model_dir, **data_args)
    model = DomainAdaptationModel.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    processor = AutoProcessor.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    return evaluate_model(model, raw, processor, run_info, batch_size=batch_size, center_crop=center_crop)


def load_eval_domain(run_info: Any, model_dir: str, **data_args: Any) -> Any:
    """A labelled evaluation domain (``DomainDataArguments`` fields), checked against the model's modality."""
    from .data import DomainDataArguments, infer_modality, load_domain
    from .modalities import ModalityMismatchError

    data = load_domain(DomainDataArguments(**data_args))
    data_modality = infer_modality(data)
    if run_info.modality and data_modality != run_info.modality:  # the modality first: then labels mean something
        raise ModalityMismatchError(
            f"{model_dir} is {_article(run_info.modality)} {run_info.modality} model ({run_info.task}), but "
            f"{data_args.get('dataset')!r} holds {data_modality} data: evaluate it on {run_info.modality} data "
            f"({_where(run_info.modality)})."
        )
    return data


def prepare_eval_data(data: Any, processor: Any, run_info: Any, *, center_crop: float | None = None) -> Any:
    """``data`` with its labels renumbered to the model's ids (by name) and the model's transform attached."""
    from datasets import Value

    from .data import build_transform, infer_modality
    from .data.labels import label_names as class_names_of

    names = class_names_of(data)
    id2label = {int(k): v for k, v in run_info.id2label.items()}
    model_names = [id2label[i] for i in sorted(id2label)]
    if names and set(names) - set(model_names):
        raise ValueError(
            f"The dataset has labels {sorted(set(names) - set(model_names))} the model does not know ({model_names})."
        )
    remap = {i: model_names.index(n) for i, n in enumerate(names or [])}
    # Model ids can exceed the dataset's own class count (a dataset with fewer classes than the model).
    data = data.cast_column("label", Value("int64")).map(lambda ex: {"label": remap.get(ex["label"], -1)})
    return data.with_transform(build_transform(processor, infer_modality(data), center_crop=center_crop))


def evaluate_model(model: Any, data: Any, processor: Any, run_info: Any, *, batch_size: int = 32,
                       center_crop: float | None = None) -> dict[str, float]:
    """Accuracy and macro-F1 of ``model`` (anything returning ``.logits``) on a loaded labelled domain."""
    from transformers import EvalPrediction

    from .data import DomainBatchCollator
    from .metrics import ClassificationMetrics

    data = prepare_eval_data(data, processor, run_info, center_crop=center_crop)
    logits, labels = predict(model, data, DomainBatchCollator.for_processor(processor), batch_size)
    metrics = ClassificationMetrics()(EvalPrediction(predictions=logits, label_ids=labels))
    return {"num_examples": int((labels != -100).sum()), **metrics}


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _where(modality: str) -> str:
    from .modalities import get_modality

    suffixes = " ".join(sorted(get_modality(modality).file_suffixes))
    if not suffixes:
        return "a CSV/JSON/Parquet file with a text column, or a Hub dataset"
    return f"a folder with one sub-folder of {suffixes} files per class, a data file or a Hub dataset"


def predict_saved_model(model_dir: str, data: Any, *, batch_size: int = 32,
                        center_crop: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels (model ids, matched by class name) of the adapted model in ``model_dir`` on a loaded
    labelled domain (:func:`hf_transfer.data.load_domain`), in the domain's order."""
    from transformers import AutoProcessor

    from .artifacts import RunInfo
    from .data import DomainBatchCollator
    from .modeling import DomainAdaptationModel

    run_info = RunInfo.read(model_dir)
    model = DomainAdaptationModel.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    data = prepare_eval_data(data, processor, run_info, center_crop=center_crop)
    return predict(model, data, DomainBatchCollator.for_processor(processor), batch_size)
