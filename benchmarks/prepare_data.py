"""Convert the shared raw benchmark data into layouts that ``hf_transfer.data.load_domain`` reads.

    python benchmarks/prepare_data.py --data-root ../shared/data --out DIR \\
        [--pairs digits speech finance medical] [--seed 0] \\
        [--source-speakers jackson,theo] [--target-speakers george,nicolas] [--force]

or, from Python, ``prepare(pair, data_root, out, seed=0, **options) -> Path``.
The raw data is only read, never copied into the project: ``--out`` should be
a folder outside the repository (or an ignored one).

Output layout (``<class>`` is a sub-folder per class, as imagefolder / audiofolder
expect; a split holds a class folder only for the classes it has examples of)::

    DIR/digits/mnist/{train,test}/<digit>/<i>.png    20x20 grayscale, i = index in t10k
    DIR/digits/usps/{train,test}/<digit>/<i>.png     16x16 grayscale, i = index in its h5 group
    DIR/speech/source/{train,test}/<digit>/<file>.wav   source speakers (default jackson, theo)
    DIR/speech/target/{train,test}/<digit>/<file>.wav   target speakers (default george, nicolas)
    DIR/finance/sst2_{train,test}.csv                 columns text,label (negative / positive)
    DIR/finance/phrasebank_{train,test}.csv           columns text,label (negative / positive)
    DIR/medical/pbc/{train,test}/<class>/<file>.jpg
    DIR/medical/tecom/{train,test}/<class>/<file>.png

Each folder is a domain, e.g. ``DomainDataArguments(dataset="DIR/digits/mnist")``
with ``split="train"`` / ``"test"``; a CSV is a domain of its own,
``DomainDataArguments(dataset="DIR/finance/sst2_train.csv", input_column="text")``
(pass the test CSV's path as ``eval_split``).

Digits.  MNIST (the t10k IDX files, 10,000 images) is cropped from 28x28 to its
central 20x20: MNIST digits are drawn in a 20x20 box centred in a 28x28 frame
(a 4-pixel empty border), while USPS digits fill their 16x16 frame.  Without the
crop the two domains differ in digit *scale* as well as style once both are
resized to a backbone's input size.  The crop is not lossless: MNIST centres
digits by centre of mass, so strokes can reach into the border (about 3 % of
all ink on t10k).  USPS rows of 256 floats in [0, 1] are reshaped row-major to
16x16 and scaled to uint8.  MNIST is split 9,000 train / 1,000 test (stratified,
seeded); USPS keeps its own ``train`` (7,291) / ``test`` (2,007) groups.

Speech.  Free Spoken Digit Dataset files ``{digit}_{speaker}_{index}.wav`` are
copied unchanged (8 kHz mono); recording index 0-4 is the dataset's own test
split, 5 and above is train.  File names that do not follow the convention are
ignored.

Finance.  SST-2 (``stsa.binary.train`` / ``.test``) keeps its own splits;
Financial PhraseBank ``Sentences_AllAgree.txt`` (``sentence@label``, split on
the last ``@``) keeps positive and negative sentences only (neutral is excluded
so both domains share the same two classes) and is split 50/50, stratified,
seeded.  The data README calls SST-2 latin-1, but the files are UTF-8 (e.g.
``café``); every line is decoded as UTF-8 (a BOM is dropped), a line that is not
valid UTF-8 as cp1252 (a superset of latin-1's printable characters), and only a
line that is neither gets replacement characters; fallback and replaced lines
are counted in the summary.

Medical.  PBC (``pbc/<class>/*.jpg``) is split 80/20 and Tecom
(``tecom/<class>/*.png``) 50/50, stratified and seeded; files are copied
unchanged and non-image files (the LICENSE text) are ignored.  Tecom's
basophil class has a single image: a class with one example goes to ``test``
only, so ``tecom/train`` has no ``basophil`` folder (a model trained on it never
sees that class; it stays in the target evaluation).

Splits.  All seeded splits use :func:`stratified_split`: per class, the number
of test examples is the class's share of the total test size (largest-remainder
rounding, so totals are exact), clamped so a class with >= 2 examples has at
least one in each split, and a class with one example goes to test; members are
drawn with ``numpy.random.default_rng(seed)``.

Idempotency.  Each pair is written into a hidden temporary folder next to
``DIR/<pair>`` and moved into place with ``os.replace`` once complete, together
with ``DIR/<pair>/.complete`` (JSON: the options used and the counts).  A later
run with the same options skips the pair (printing the recorded counts); other
options or ``--force`` rebuild it.  An interrupted run leaves no ``DIR/<pair>``
that looks complete.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import re
import shutil
import sys
import uuid
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

PAIRS = ("digits", "speech", "finance", "medical")
FORMAT_VERSION = 1
MARKER = ".complete"
DEFAULT_SOURCE_SPEAKERS = ("jackson", "theo")
DEFAULT_TARGET_SPEAKERS = ("george", "nicolas")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
MNIST_BORDER = 4
MNIST_TEST_FRACTION = 0.1
PHRASEBANK_TEST_FRACTION = 0.5
PBC_TEST_FRACTION = 0.2
TECOM_TEST_FRACTION = 0.5
FSDD_TEST_INDICES = range(0, 5)
FSDD_NAME = re.compile(r"^(?P<digit>\d)_(?P<speaker>[A-Za-z0-9-]+)_(?P<index>\d+)\.wav$")
SST2_LABELS = {"0": "negative", "1": "positive"}
PHRASEBANK_KEEP = ("negative", "positive")
PHRASEBANK_LABELS = frozenset({"negative", "neutral", "positive"})
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

# counts[domain/split][class] -> number of examples; notes[domain] -> remarks for the summary
Counts = dict[str, dict[str, int]]


# --------------------------------------------------------------------------- splitting


def stratified_split(labels: Sequence[Hashable], test_size: float | int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: ``(train_indices, test_indices)``, each sorted.

    ``test_size`` is a fraction of all examples (float) or a count (int).  Per
    class the test count is its proportional share (largest remainder, ties to
    the first class in sorted order), then clamped to ``[1, n - 1]`` for a class
    of ``n >= 2`` examples; a single-example class goes to test.
    """
    labels = list(labels)
    n = len(labels)
    n_test = test_size if isinstance(test_size, int) else int(round(test_size * n))
    if n < 2 or not 0 < n_test < n:
        raise ValueError(f"Cannot split {n} examples with test_size={test_size!r}.")
    classes = sorted(set(labels))
    members = [np.array([i for i, y in enumerate(labels) if y == c]) for c in classes]
    per_class = _apportion([len(m) for m in members], n_test)
    rng = np.random.default_rng(seed)
    test = np.concatenate([rng.permutation(m)[:k] for m, k in zip(members, per_class)])
    is_test = np.zeros(n, dtype=bool)
    is_test[test] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def _apportion(sizes: list[int], total: int) -> list[int]:
    """Split ``total`` over classes of ``sizes`` proportionally (exact integers), then clamp."""
    n = sum(sizes)
    shares = [s * total // n for s in sizes]
    remainders = [s * total % n for s in sizes]
    by_remainder = sorted(range(len(sizes)), key=lambda i: (-remainders[i], i))
    for i in by_remainder[: total - sum(shares)]:
        shares[i] += 1
    return [1 if s == 1 else min(max(k, 1), s - 1) for s, k in zip(sizes, shares)]


# --------------------------------------------------------------------------- small helpers


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path} (is --data-root the shared data folder?)")
    return path


def _count(labels: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(labels).items()))


def _save_png(pixels: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(path)


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def _write_images(folder: Path, images: np.ndarray, labels: Sequence[str], indices: Iterable[int]) -> dict[str, int]:
    written = []
    for i in indices:
        _save_png(images[i], folder / labels[i] / f"{i}.png")
        written.append(labels[i])
    return _count(written)


def _copy_split(folder: Path, files: Sequence[Path], labels: Sequence[str], indices: Iterable[int]) -> dict[str, int]:
    for i in indices:
        _copy(files[i], folder / labels[i] / files[i].name)
    return _count(labels[i] for i in indices)


# --------------------------------------------------------------------------- digits


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file: 2 zero bytes, dtype code, ndim, big-endian uint32 dims, data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic {raw[:4].hex()}).")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    if len(raw) - offset != int(np.prod(shape)) * dtype.itemsize:
        raise ValueError(f"{path}: header says shape {shape} but the file has {len(raw) - offset} data bytes.")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape)


def _read_mnist(root: Path) -> tuple[np.ndarray, list[str]]:
    images = read_idx(_require(root / "digits" / "t10k-images-idx3-ubyte.gz", "MNIST images"))
    labels = read_idx(_require(root / "digits" / "t10k-labels-idx1-ubyte.gz", "MNIST labels"))
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise ValueError(f"Unexpected MNIST shapes: images {images.shape}, labels {labels.shape}.")
    b = MNIST_BORDER
    return images[:, b:-b, b:-b].astype(np.uint8), [str(int(y)) for y in labels]


def _import_h5py() -> Any:
    try:
        import h5py
    except ImportError as error:
        raise ImportError(
            "The digits pair reads usps.h5 with h5py, which is not installed: "
            "pip install h5py (or install the project's 'benchmarks' extra)."
        ) from error
    return h5py


def _read_usps(root: Path) -> dict[str, tuple[np.ndarray, list[str]]]:
    path = _require(root / "digits" / "usps.h5", "USPS file")
    h5py = _import_h5py()
    groups = {}
    with h5py.File(path, "r") as h5:
        for split in ("train", "test"):
            data = np.asarray(h5[split]["data"], dtype=np.float32)
            target = np.asarray(h5[split]["target"])
            if data.ndim != 2 or data.shape[1] != 256 or len(data) != len(target):
                raise ValueError(f"Unexpected USPS {split} shapes: data {data.shape}, target {target.shape}.")
            pixels = np.clip(np.rint(data * 255.0), 0, 255).astype(np.uint8).reshape(-1, 16, 16)
            groups[split] = (pixels, [str(int(y)) for y in target])
    return groups


def build_digits(root: Path, dest: Path, seed: int) -> Counts:
    images, labels = _read_mnist(root)
    usps = _read_usps(root)
    train, test = stratified_split(labels, MNIST_TEST_FRACTION, seed)
    counts = {
        "mnist/train": _write_images(dest / "mnist" / "train", images, labels, train),
        "mnist/test": _write_images(dest / "mnist" / "test", images, labels, test),
    }
    for split, (pixels, usps_labels) in usps.items():
        counts[f"usps/{split}"] = _write_images(dest / "usps" / split, pixels, usps_labels, range(len(pixels)))
    return counts


# --------------------------------------------------------------------------- speech


def _fsdd_files(root: Path) -> dict[str, list[tuple[Path, str, int]]]:
    """speaker -> [(path, digit, index)] for every file named by the FSDD convention."""
    folder = _require(root / "speech" / "fsdd" / "recordings", "FSDD recordings folder")
    by_speaker: dict[str, list[tuple[Path, str, int]]] = {}
    for path in sorted(folder.iterdir()):
        match = FSDD_NAME.match(path.name)
        if match and path.is_file():
            entry = (path, match["digit"], int(match["index"]))
            by_speaker.setdefault(match["speaker"], []).append(entry)
    return by_speaker


def _check_speakers(source: Sequence[str], target: Sequence[str], available: Iterable[str]) -> None:
    available = sorted(available)
    for role, speakers in (("source", source), ("target", target)):
        if not speakers:
            raise ValueError(f"No {role} speakers given.")
        missing = [s for s in speakers if s not in available]
        if missing:
            raise ValueError(f"No FSDD recordings for {role} speaker(s) {missing}; available speakers: {available}.")
    overlap = sorted(set(source) & set(target))
    if overlap:
        raise ValueError(f"Speakers {overlap} are in both source and target; the domains must be disjoint.")


def build_speech(root: Path, dest: Path, source_speakers: Sequence[str], target_speakers: Sequence[str]) -> Counts:
    by_speaker = _fsdd_files(root)
    _check_speakers(source_speakers, target_speakers, by_speaker)
    counts: Counts = {}
    for domain, speakers in (("source", source_speakers), ("target", target_speakers)):
        entries = [e for s in speakers for e in by_speaker[s]]
        for split in ("train", "test"):
            chosen = [(p, d) for p, d, i in entries if (i in FSDD_TEST_INDICES) == (split == "test")]
            files, labels = [p for p, _ in chosen], [d for _, d in chosen]
            counts[f"{domain}/{split}"] = _copy_split(dest / domain / split, files, labels, range(len(files)))
    return counts


# --------------------------------------------------------------------------- finance


class DecodeStats:
    """How many lines of a file needed the cp1252 fallback or replacement characters."""

    def __init__(self) -> None:
        self.fallback = 0
        self.replaced = 0
        self.empty = 0

    def note(self, name: str) -> str | None:
        parts = []
        if self.fallback:
            parts.append(f"{self.fallback} line(s) not UTF-8, read as cp1252")
        if self.replaced:
            parts.append(f"{self.replaced} line(s) with undecodable bytes replaced")
        if self.empty:
            parts.append(f"{self.empty} labelled line(s) without a sentence skipped")
        return f"{name}: " + "; ".join(parts) if parts else None


def _decode_line(raw: bytes, stats: DecodeStats) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("cp1252")
        stats.fallback += 1
        return text
    except UnicodeDecodeError:
        stats.replaced += 1
        return raw.decode("utf-8", errors="replace")


def read_text_lines(path: Path, stats: DecodeStats) -> list[tuple[int, str]]:
    """Non-empty ``(line_number, text)`` pairs; UTF-8 per line, BOM and CR dropped."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        text = _decode_line(raw.rstrip(b"\r"), stats).strip()
        if text:
            lines.append((number, text))
    return lines


def _read_sst2(path: Path, stats: DecodeStats, skip_empty: bool = False) -> list[tuple[str, str]]:
    """``(sentence, label)`` rows of a ``<0|1> <sentence>`` file. ``skip_empty``: a label alone on its line (CR's
    custrev.all has four) is skipped and counted in ``stats`` rather than an error."""
    rows = []
    for number, line in read_text_lines(path, stats):
        label, _, sentence = line.partition(" ")
        if skip_empty and label in SST2_LABELS and not sentence.strip():
            stats.empty += 1
            continue
        if label not in SST2_LABELS or not sentence.strip():
            raise ValueError(f"{path}:{number}: expected '<0|1> <sentence>', got {line[:60]!r}.")
        rows.append((sentence.strip(), SST2_LABELS[label]))
    return rows


def _read_phrasebank(path: Path, stats: DecodeStats) -> tuple[list[tuple[str, str]], int]:
    """Positive/negative ``(sentence, label)`` rows and the number of neutral lines dropped."""
    rows, neutral = [], 0
    for number, line in read_text_lines(path, stats):
        sentence, at, label = line.rpartition("@")
        label = label.strip().lower()
        if not at or label not in PHRASEBANK_LABELS or not sentence.strip():
            raise ValueError(f"{path}:{number}: expected '<sentence>@<label>', got {line[-60:]!r}.")
        if label in PHRASEBANK_KEEP:
            rows.append((sentence.strip(), label))
        else:
            neutral += 1
    return rows, neutral


def _write_csv(path: Path, rows: Sequence[tuple[str, str]]) -> dict[str, int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return _count(label for _, label in rows)


def build_finance(root: Path, dest: Path, seed: int) -> tuple[Counts, list[str]]:
    folder = root / "finance"
    sst_paths = {s: _require(folder / "sst2" / f"stsa.binary.{s}", f"SST-2 {s} file") for s in ("train", "test")}
    bank_path = _require(folder / "financial_phrasebank" / "Sentences_AllAgree.txt", "PhraseBank AllAgree file")
    counts: Counts = {}
    notes = []
    for split, path in sst_paths.items():
        stats = DecodeStats()
        counts[f"sst2/{split}"] = _write_csv(dest / f"sst2_{split}.csv", _read_sst2(path, stats))
        notes.append(stats.note(f"sst2 {path.name}"))
    stats = DecodeStats()
    rows, neutral = _read_phrasebank(bank_path, stats)
    train, test = stratified_split([label for _, label in rows], PHRASEBANK_TEST_FRACTION, seed)
    counts["phrasebank/train"] = _write_csv(dest / "phrasebank_train.csv", [rows[i] for i in train])
    counts["phrasebank/test"] = _write_csv(dest / "phrasebank_test.csv", [rows[i] for i in test])
    notes.append(stats.note(f"phrasebank {bank_path.name}"))
    notes.append(f"phrasebank: {neutral} neutral sentence(s) excluded")
    return counts, [n for n in notes if n]


# --------------------------------------------------------------------------- medical


def _class_images(folder: Path) -> tuple[list[Path], list[str]]:
    """Image files in the class sub-folders of ``folder`` (other files are ignored)."""
    _require(folder, "image folder")
    files, labels = [], []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(class_dir.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                files.append(path)
                labels.append(class_dir.name)
    if not files:
        raise FileNotFoundError(f"No images in class sub-folders of {folder}.")
    return files, labels


def build_medical(root: Path, dest: Path, seed: int) -> Counts:
    counts: Counts = {}
    for domain, fraction in (("pbc", PBC_TEST_FRACTION), ("tecom", TECOM_TEST_FRACTION)):
        files, labels = _class_images(root / "medical" / domain)
        train, test = stratified_split(labels, fraction, seed)
        counts[f"{domain}/train"] = _copy_split(dest / domain / "train", files, labels, train)
        counts[f"{domain}/test"] = _copy_split(dest / domain / "test", files, labels, test)
    return counts


# --------------------------------------------------------------------------- orchestration


def _speakers(value: str | Sequence[str] | None, default: Sequence[str]) -> list[str]:
    if value is None:
        return list(default)
    items = value.split(",") if isinstance(value, str) else value
    return [s.strip() for s in items if s.strip()]


def _pair_options(pair: str, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    """The options that determine a pair's output (what ``.complete`` records and compares)."""
    unknown = set(options) - {"source_speakers", "target_speakers"}
    if unknown:
        raise TypeError(f"Unknown option(s) {sorted(unknown)} for prepare().")
    if pair not in PAIRS:
        raise ValueError(f"Unknown pair {pair!r}; choose from {PAIRS}.")
    chosen: dict[str, Any] = {"pair": pair, "format_version": FORMAT_VERSION}
    if pair == "speech":
        chosen["source_speakers"] = _speakers(options.get("source_speakers"), DEFAULT_SOURCE_SPEAKERS)
        chosen["target_speakers"] = _speakers(options.get("target_speakers"), DEFAULT_TARGET_SPEAKERS)
    else:
        chosen["seed"] = int(seed)
    return chosen


def _build(pair: str, root: Path, dest: Path, chosen: dict[str, Any]) -> tuple[Counts, list[str]]:
    if pair == "digits":
        return build_digits(root, dest, chosen["seed"]), []
    if pair == "speech":
        return build_speech(root, dest, chosen["source_speakers"], chosen["target_speakers"]), []
    if pair == "finance":
        return build_finance(root, dest, chosen["seed"])
    return build_medical(root, dest, chosen["seed"]), []


def _read_marker(final: Path) -> dict[str, Any] | None:
    try:
        return json.loads((final / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _fresh_dir(parent: Path, prefix: str) -> Path:
    """A new, uniquely named folder (unlike ``mkdtemp``, its mode follows the umask)."""
    path = parent / f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    return path


def _install(tmp: Path, final: Path) -> None:
    """Move the finished ``tmp`` folder to ``final``, replacing an older one."""
    old = None
    if final.exists():
        old = _fresh_dir(final.parent, f".{final.name}.old-")
        os.replace(final, old / final.name)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old)


def summary_lines(pair: str, counts: Counts, notes: Sequence[str] = (), cached: bool = False) -> list[str]:
    suffix = "  (up to date, not rewritten)" if cached else ""
    lines = []
    for key, per_class in counts.items():
        classes = " ".join(f"{name}={n}" for name, n in per_class.items())
        lines.append(f"{pair}/{key}: {sum(per_class.values())} [{classes}]{suffix}")
    lines.extend(f"{pair}: note: {note}" for note in notes)
    return lines


def prepare(
    pair: str,
    data_root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    seed: int = 0,
    *,
    force: bool = False,
    printer: Callable[[str], None] | None = print,
    **options: Any,
) -> Path:
    """Prepare one pair (``digits``/``speech``/``finance``/``medical``) and return ``out/<pair>``.

    ``options``: ``source_speakers`` / ``target_speakers`` (list or comma
    string; speech only).  Skips the work when ``out/<pair>/.complete`` records
    the same options, unless ``force``.  ``printer`` receives the summary lines
    (None: silent).
    """
    chosen = _pair_options(pair, seed, options)
    root, out = Path(data_root), Path(out)
    final = out / pair
    marker = _read_marker(final)
    if not force and marker is not None and marker.get("options") == chosen:
        _emit(printer, summary_lines(pair, marker.get("counts", {}), marker.get("notes", []), cached=True))
        return final
    out.mkdir(parents=True, exist_ok=True)
    tmp = _fresh_dir(out, f".{pair}.tmp-")
    try:
        counts, notes = _build(pair, root, tmp, chosen)
        record = {"options": chosen, "counts": counts, "notes": notes, "data_root": str(root.resolve())}
        (tmp / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        _install(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    _emit(printer, summary_lines(pair, counts, notes))
    return final


def _emit(printer: Callable[[str], None] | None, lines: Sequence[str]) -> None:
    if printer is not None:
        for line in lines:
            printer(line)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True, help="The shared raw data folder (e.g. ../shared/data).")
    parser.add_argument("--out", required=True, help="Output folder (outside the repository).")
    parser.add_argument("--pairs", nargs="+", choices=PAIRS, default=list(PAIRS))
    parser.add_argument("--seed", type=int, default=0, help="Seed of the stratified splits.")
    parser.add_argument("--source-speakers", default=",".join(DEFAULT_SOURCE_SPEAKERS))
    parser.add_argument("--target-speakers", default=",".join(DEFAULT_TARGET_SPEAKERS))
    parser.add_argument("--force", action="store_true", help="Rebuild even if an up-to-date output exists.")
    args = parser.parse_args(argv)
    try:
        for pair in args.pairs:
            prepare(
                pair,
                args.data_root,
                args.out,
                seed=args.seed,
                force=args.force,
                source_speakers=args.source_speakers,
                target_speakers=args.target_speakers,
            )
    except (FileNotFoundError, ValueError, ImportError) as error:
        print(f"prepare_data.py: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
