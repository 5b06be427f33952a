"""Load one domain (source or target) as a two-column ``Dataset``: from the Hub, a folder or data files.

Every loader returns the same shape so the rest of the toolkit never cares
where the data came from:

* ``input``: ``datasets.Image(decode=False)`` for images,
  ``datasets.Audio(decode=False)`` for audio (both ``{"bytes", "path"}``
  dicts, decoded lazily by :func:`hf_transfer.data.build_transform`), or a
  ``string`` for text;
* ``label``: ``datasets.ClassLabel`` with names, ``-1`` where an example has
  no label.  Unlabelled domains (``label_column=None`` or no label column /
  no class sub-folders) get ``Value("int64")`` filled with ``-1``.

The modality is stored in the features, so :func:`~hf_transfer.modalities.infer_modality` recovers it
from any loaded domain. The domain's description is :class:`~hf_transfer.data.schema.DomainDataArguments`;
label encoding lives in :mod:`hf_transfer.data.labels`.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Collection, Sequence

import datasets
from datasets import Audio, ClassLabel, Dataset, Image, Value

from ..modalities import (
    ModalityMismatchError,
    modality_of_column,
    modality_of_dataset,
    modality_of_feature,
    modality_of_path,
)
from .labels import encode_labels, rename_classes
from .schema import INPUT_COLUMN_CANDIDATES, DomainDataArguments, filter_key

logger = logging.getLogger(__name__)

SPLIT_DIR_NAMES = frozenset({"train", "validation", "valid", "val", "dev", "test", "eval"})
FILE_BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
_NO_LABEL = {"", "none", "null"}


def load_domain(
    args: DomainDataArguments,
    *,
    split: str | None = None,
    modality: str | None = None,
    seed: int = 0,
    task_columns: Sequence[str] = (),
    require_task_columns: bool = False,
) -> Dataset:
    """Load the domain described by ``args`` as a ``Dataset`` with columns ``input``, ``label``.

    ``task_columns`` (further label columns of auxiliary tasks, :mod:`hf_transfer.auxiliary`) are kept as text in
    ``task__<column>`` (``None`` where missing); a domain without one gets ``None`` throughout, unless
    ``require_task_columns`` (the labelled source), which makes it an error.

    ``split`` overrides ``args.split`` (pass ``args.eval_split`` for evaluation
    data).  ``modality`` (``"image"``/``"audio"``/``"text"``), when given, is
    checked against what the data contains.  Use :func:`~hf_transfer.modalities.infer_modality` on the
    result to get the detected modality.  ``seed`` drives the ``max_examples``
    subset.
    """
    split = split or args.split
    source = os.path.expanduser(args.dataset)
    if os.path.isdir(source):
        folder = os.path.join(source, args.data_dir) if args.data_dir else source
        raw, input_column, label_column = _load_folder(folder, split, args)
    elif _looks_like_files(source, args):
        raw = _load_files(source, split, args)
        input_column, label_column = None, args.label_column
    else:
        raw = _load_hub_dataset(args, split)
        input_column, label_column = None, args.label_column

    input_column = args.input_column or input_column or _detect_input_column(raw)
    if input_column not in raw.column_names:
        raise ValueError(
            f"input_column {input_column!r} not found in {args.dataset!r}; "
            f"available columns: {raw.column_names}"
        )
    label_column = _normalise_label_column(label_column)
    keep_rows, keep_label_names, label_rows = None, None, None
    if args.filter_column is not None:
        keep_rows = matching_rows(raw, args.filter_column, args.filter_values or [], name=f"{args.dataset!r} split {split!r}")
        feature = raw.features[args.filter_column]
        if args.filter_column == label_column and isinstance(feature, ClassLabel):
            keep_label_names = [n for i, n in enumerate(feature.names) if _matches(n, i, args.filter_values)]
        elif args.filter_column == label_column:
            label_rows = keep_rows  # plain labels: the classes are the kept rows' values
    ds = _to_domain(raw, input_column, label_column, args.dataset, keep_label_names=keep_label_names,
                    label_rows=label_rows)
    if args.label_names:
        ds = rename_classes(ds, args.label_names, args.dataset)
    for column in task_columns:
        ds = ds.add_column(f"task__{column}", _task_values(raw, column, args.dataset, require_task_columns))
    if keep_rows is not None and len(keep_rows) < len(ds):
        # Selected after the label column is added: an index over the loaded rows, so a large Hub
        # dataset is not rewritten to the cache (add_column would flatten an index first).
        ds = ds.select(keep_rows)

    detected = modality_of_dataset(ds)
    if modality is not None and modality != detected:
        raise ModalityMismatchError(
            f"Domain {args.dataset!r} contains {detected} data but modality={modality!r} was requested; "
            "check input_column or the dataset path."
        )
    if args.max_examples is not None and args.max_examples < len(ds):
        ds = ds.shuffle(seed=seed).select(range(args.max_examples)).flatten_indices()
    return ds


def _task_values(raw: Dataset, column: str, name: str, required: bool) -> list[str | None]:
    """An auxiliary task's labels as text (class names for a ClassLabel column; ``None`` = unlabelled)."""
    if column not in raw.column_names:
        if required:
            raise ValueError(
                f"training.task_loss_weights names the task {column!r}, a label column, but {name!r} has no column "
                f"{column!r} (columns: {raw.column_names}): name an existing column, or 'rotation' for images."
            )
        return [None] * len(raw)
    feature = raw.features[column]
    values = list(raw[column])
    if isinstance(feature, ClassLabel):
        return [None if v is None or int(v) < 0 else feature.names[int(v)] for v in values]
    return [None if v is None else str(v) for v in values]


def domain_name(args: DomainDataArguments) -> str:
    """Where a domain comes from, as a message names it: ``target.dataset 'data/b'`` (or ``dataset 'data/b'``)."""
    role = type(args).__name__.removesuffix("DataArguments").lower()
    return f"{role}.dataset {args.dataset!r}" if role in ("source", "target") else f"dataset {args.dataset!r}"


def _check_hub_dataset(args: DomainDataArguments) -> None:
    """One request to the Hub before ``load_dataset``: a missing local path is "not found", not a retry storm.

    ``datasets`` retries an unreachable Hub for about 25 seconds before failing; a name that is neither a
    local path nor a Hub dataset is said to be so at once, with where it was looked for.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    from ..errors import HubUnreachableError, hub_endpoint, hub_offline, network_cause, unreachable_message
    from ..privacy import is_hub_id

    where = os.path.abspath(os.path.expanduser(args.dataset))
    as_path = f"tried as a path ({where} does not exist)"
    if not is_hub_id(args.dataset):
        raise FileNotFoundError(
            f"{domain_name(args)} was not found: {as_path}, and it is not a Hub dataset id (namespace/name). "
            "Fix the path (relative paths start from the working directory) or give a Hub id."
        )
    if hub_offline():
        return  # datasets reads its cache; it fails at once if the dataset is not there
    try:
        HfApi().dataset_info(args.dataset, revision=args.revision, timeout=15)
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        if isinstance(error, GatedRepoError):
            return  # it exists; datasets says how to get access
        missing = f"revision {args.revision!r} of " if isinstance(error, RevisionNotFoundError) else ""
        raise FileNotFoundError(
            f"{domain_name(args)} was not found: {as_path}, and tried as a Hub dataset id ({hub_endpoint()} has no "
            f"{missing}dataset {args.dataset!r}, or it is private: log in with `hf auth login`). Fix the path "
            "(relative paths start from the working directory) or the Hub id."
        ) from None
    except HfHubHTTPError:
        return  # the Hub answered: let datasets report the details
    except Exception as error:
        cause = network_cause(error)
        if cause is None:
            raise
        raise HubUnreachableError(unreachable_message(_tried_both(args), cause)) from error


def _tried_both(args: DomainDataArguments) -> str:
    where = os.path.abspath(os.path.expanduser(args.dataset))
    return (
        f"{domain_name(args)} was not found: tried as a path ({where} does not exist) and as a Hub dataset id, "
        "which failed"
    )


def _load_hub_dataset(args: DomainDataArguments, split: str) -> Dataset:
    """``datasets.load_dataset`` on a Hub id; a script-based dataset gets an error that says how to read it."""
    _check_hub_dataset(args)
    try:
        return datasets.load_dataset(
            args.dataset, args.config, split=split, data_dir=args.data_dir, revision=args.revision,
            cache_dir=args.cache_dir,
        )
    except ConnectionError as error:  # HF_HUB_OFFLINE and not in the cache
        from ..errors import HubUnreachableError, network_cause, unreachable_message

        raise HubUnreachableError(unreachable_message(_tried_both(args), network_cause(error))) from error
    except RuntimeError as error:
        if "scripts are no longer supported" not in str(error):
            raise
        raise ValueError(
            f"{args.dataset!r} is a script-based Hub dataset, which datasets no longer runs. Read the Hub's parquet "
            f"export instead (revision 'refs/convert/parquet', data_dir '{args.config or '<config name>'}', no config), "
            "or download its files and pass them as a local path."
        ) from error


def _matches(name: str, index: int, values: Collection[str] | None) -> bool:
    """Whether class ``index`` called ``name`` is among ``values`` (which may give names or ids)."""
    return bool(values) and (name in values or str(index) in values)


def matching_rows(dataset: Dataset, column: str, values: list[str], *, name: str = "the dataset") -> list[int]:
    """Indices of the rows of ``dataset`` whose ``column`` value is one of ``values`` (compared as text).

    A ClassLabel column matches on class names or ids. Only that one column is read. No matching
    row is an error that lists the values present, since an empty domain cannot train.
    """
    if column not in dataset.column_names:
        raise ValueError(
            f"filter_column {column!r} not found in {name}; available columns: {dataset.column_names}."
        )
    wanted = {filter_key(v) for v in values}
    feature = dataset.features[column]
    cells = list(dataset[column])
    if isinstance(feature, ClassLabel):
        keep = [i for i, v in enumerate(cells) if v is not None and v >= 0 and _matches(feature.int2str(int(v)), int(v), wanted)]
    else:
        keep = [i for i, v in enumerate(cells) if v is not None and filter_key(v) in wanted]
    if not keep:
        present = sorted({feature.int2str(int(v)) if isinstance(feature, ClassLabel) and v is not None and v >= 0
                          else filter_key(v) for v in cells if v is not None})
        shown = ", ".join(present[:20]) + (f", … ({len(present)} distinct)" if len(present) > 20 else "")
        raise ValueError(
            f"No row of {name} has {column} in {sorted(wanted)}; values present: {shown or 'none'}. "
            "Fix filter_values (or the split)."
        )
    return keep


def _normalise_label_column(label_column: str | None) -> str | None:
    if label_column is None or label_column.strip().lower() in _NO_LABEL:
        return None
    return label_column


def _looks_like_files(source: str, args: DomainDataArguments) -> bool:
    if os.path.isfile(source) or glob.has_magic(source):
        return True
    # A missing local path should error as such, not be sent to the Hub.
    if os.path.splitext(source)[1].lower() in FILE_BUILDERS or source.startswith((".", "/", "~")):
        raise FileNotFoundError(
            f"{domain_name(args)} was not found: {os.path.abspath(source)} is not an existing file or folder "
            "(relative paths start from the working directory)."
        )
    return False


def _detect_input_column(ds: Dataset) -> str:
    for name in INPUT_COLUMN_CANDIDATES:
        if name in ds.column_names:
            return name
    for name, feature in ds.features.items():
        if isinstance(feature, (Image, Audio)):
            return name
    raise ValueError(
        f"Could not find the input column among {ds.column_names}; "
        f"set input_column (auto-detection looks for {list(INPUT_COLUMN_CANDIDATES)})."
    )


def _to_domain(
    raw: Dataset,
    input_column: str,
    label_column: str | None,
    name: str,
    *,
    keep_label_names: list[str] | None = None,
    label_rows: list[int] | None = None,
) -> Dataset:
    """Select/rename to ``input`` + ``label`` and fix the feature types.

    After a row filter on the label column, the classes narrow to the kept ones, so the head gets only
    the classes the domain can contain: ``keep_label_names`` for a ClassLabel column, ``label_rows``
    (the kept rows, whose values alone name the classes) for plain string or integer labels.
    """
    if label_column is not None and label_column not in raw.column_names:
        if label_column != "label":
            raise ValueError(
                f"label_column {label_column!r} not found in {name!r}; available columns: "
                f"{raw.column_names}. Set label_column=None for an unlabelled domain."
            )
        logger.warning("Domain %r has no 'label' column; loading it as unlabelled.", name)
        label_column = None

    ds = raw.select_columns([input_column])
    if input_column != "input":
        ds = ds.rename_column(input_column, "input")
    feature = ds.features["input"]
    modality = modality_of_column(ds, "input")
    if modality == "image" and not (isinstance(feature, Image) and not feature.decode):
        ds = ds.cast_column("input", Image(decode=False))
    elif modality == "audio" and not (isinstance(feature, Audio) and not feature.decode):
        # Never decode through datasets (needs torchcodec + FFmpeg); see audio.py.
        ds = ds.cast_column("input", Audio(decode=False))
    elif modality is None:
        raise ValueError(
            f"Input column {input_column!r} of {name!r} has unsupported type {feature}; "
            "expected images, audio, text, or file paths to images/audio."
        )

    if label_column is None:
        return ds.add_column("label", [-1] * len(ds), feature=Value("int64"))
    label_feature = raw.features[label_column]
    values = list(raw[label_column])
    if isinstance(label_feature, ClassLabel):
        ids = [-1 if v is None else int(v) for v in values]
        names = list(label_feature.names)
        if keep_label_names is not None:
            new_id = {names.index(n): j for j, n in enumerate(keep_label_names)}
            ids = [new_id.get(i, -1) for i in ids]
            names = list(keep_label_names)
    else:
        if label_rows is not None:
            kept = set(label_rows)
            values = [v if i in kept else None for i, v in enumerate(values)]
        ids, names = encode_labels(values, name)
    ds = ds.add_column("label", ids, feature=Value("int64"))
    return ds.cast_column("label", ClassLabel(names=names))


def _load_folder(folder: str, split: str, args: DomainDataArguments) -> tuple[Dataset, str | None, str | None]:
    """Local folder: save_to_disk output, class sub-folders of media files, or data files.

    Returns ``(dataset, input_column, label_column)``.
    """
    if os.path.exists(os.path.join(folder, "state.json")) or os.path.exists(
        os.path.join(folder, "dataset_dict.json")
    ):
        loaded = datasets.load_from_disk(folder)
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise ValueError(f"Split {split!r} not in {folder!r}; available: {list(loaded)}")
            loaded = loaded[split]
        return loaded, None, args.label_column

    entries = sorted(e for e in os.listdir(folder) if not e.startswith("."))
    subdirs = [e for e in entries if os.path.isdir(os.path.join(folder, e))]
    split_layout = bool(subdirs) and all(d.lower() in SPLIT_DIR_NAMES for d in subdirs)
    if split not in subdirs and _is_split_path(split):
        # eval_split given as a folder of its own (data/hospital_b_test next to data/hospital_b), as files are
        return _load_folder(_existing_split_folder(split, args), "train", args)
    files = _media_files(folder)
    if not files:
        if not _data_files(folder):
            raise ValueError(_empty_folder_message(folder, args))
        # No media: maybe a local copy of a Hub dataset repo (parquet/csv files + README).
        loaded = datasets.load_dataset(folder, args.config, split=split, cache_dir=args.cache_dir)
        return loaded, None, args.label_column
    if split_layout:
        if split not in subdirs:
            raise ValueError(
                f"Split {split!r} not found in {folder!r} ({domain_name(args)}); its split folders are {subdirs}. "
                "Use one of them, or give the split's own folder as a path."
            )
        folder = os.path.join(folder, split)
        files = _media_files(folder)
        if not files:
            raise ValueError(_empty_folder_message(folder, args))
    elif split != "train":
        raise ValueError(
            f"{folder!r} ({domain_name(args)}) has no split sub-folders ({sorted(SPLIT_DIR_NAMES)}), so only "
            f"split='train' (the whole folder) exists; got split={split!r}. Give a held-out split as its own folder "
            "(e.g. eval_split: data/hospital_b_test) or as a sub-folder (data/hospital_b/test/<class>/...)."
        )
    kinds = {modality_of_path(f) for f in files}
    if len(kinds) > 1:
        raise ValueError(f"{folder!r} mixes image and audio files; one domain must have one modality.")

    rel = [os.path.relpath(f, folder) for f in files]
    top = [r.split(os.sep)[0] if os.sep in r else None for r in rel]
    loose = [r for r, t in zip(rel, top) if t is None]
    labelled = _normalise_label_column(args.label_column) is not None
    if labelled and loose and len(loose) < len(files):
        raise ValueError(
            f"{folder!r} has class sub-folders but also files directly in it (e.g. {loose[:3]}); "
            "move them into a class folder, or set label_column=None."
        )
    data: dict[str, list[str | None]] = {"input": files}
    label_column: str | None = None
    if labelled and not loose:
        data["label"] = top
        label_column = "label"
    elif labelled:
        logger.warning("%r has no class sub-folders; loading it as an unlabelled domain.", folder)
    ds = Dataset.from_dict(data)
    return ds, "input", label_column


def _is_split_path(split: str) -> bool:
    """A split given as a path (``data/b_test``, ``./b_test``, ``~/b_test``) rather than a split name."""
    return "/" in split or os.sep in split or split.startswith((".", "~"))


def _existing_split_folder(split: str, args: DomainDataArguments) -> str:
    path = os.path.expanduser(split)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"The split {split!r} of {domain_name(args)} is a path, but {os.path.abspath(path)} is not a folder "
            "(relative paths start from the working directory)."
        )
    return path


_DATA_SUFFIXES = frozenset(FILE_BUILDERS) | {".arrow", ".txt"}


def _data_files(folder: str) -> list[str]:
    """Data files (csv, json, parquet, arrow, txt) anywhere under ``folder``: a local copy of a Hub dataset repo."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend(n for n in names if os.path.splitext(n)[1].lower() in _DATA_SUFFIXES)
    return found


def _empty_folder_message(folder: str, args: DomainDataArguments) -> str:
    example = folder.rstrip("/" + os.sep)
    return (
        f"{folder!r} ({domain_name(args)}) holds no images, audio or data files. A folder domain is laid out as "
        f"{example}/<class name>/<file> (e.g. {example}/tumor/0001.png; images: .png .jpg .jpeg .bmp .gif .tif "
        ".webp, audio: .wav .flac .ogg .mp3), optionally inside split folders ("
        f"{example}/train/<class name>/..., {example}/test/<class name>/...); an unlabelled target may keep its "
        "files directly in the folder. A domain can also be a CSV/JSON/Parquet file or a Hub dataset id."
    )


def _media_files(folder: str) -> list[str]:
    found = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(os.path.join(root, n) for n in sorted(names) if modality_of_path(n))
    return found


def _load_files(pattern: str, split: str, args: DomainDataArguments) -> Dataset:
    """csv/tsv/json/jsonl/parquet files; relative media paths resolve against each file's folder.

    ``split`` other than ``"train"`` is read as a path/glob of its own
    (so ``eval_split: data/test.csv`` works for file sources).
    """
    if split != "train":
        pattern = os.path.expanduser(split)
    paths = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    paths = [p for p in paths if os.path.isfile(p)]
    if not paths:
        raise FileNotFoundError(f"No data files match {pattern!r}.")
    parts = []
    for path in paths:
        ext = os.path.splitext(path)[1].lower()
        if ext not in FILE_BUILDERS:
            raise ValueError(f"Unsupported data file {path!r}; expected one of {sorted(FILE_BUILDERS)}.")
        kwargs = {"sep": "\t"} if ext == ".tsv" else {}
        part = datasets.load_dataset(
            FILE_BUILDERS[ext], data_files=[path], split="train", cache_dir=args.cache_dir, **kwargs
        )
        parts.append(_resolve_paths(part, os.path.dirname(os.path.abspath(path)), args))
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def _resolve_paths(ds: Dataset, base: str, args: DomainDataArguments) -> Dataset:
    """Make relative media paths in the input column absolute (relative to the data file)."""
    column = args.input_column or _detect_input_column(ds)
    if column not in ds.column_names or modality_of_feature(ds.features[column]) != "text":
        return ds
    if modality_of_column(ds, column) == "text":  # text, not media file paths
        return ds

    def resolve(batch: dict[str, list[object]]) -> dict[str, list[object]]:
        batch[column] = [
            p if not isinstance(p, str) or os.path.isabs(p) or "://" in p else os.path.join(base, p)
            for p in batch[column]
        ]
        return batch

    return ds.map(resolve, batched=True, desc="Resolving file paths")


__all__ = ["FILE_BUILDERS", "SPLIT_DIR_NAMES", "load_domain", "matching_rows"]
