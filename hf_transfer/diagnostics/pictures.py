"""Pictures of a run (PNG, matplotlib's headless Agg backend): the shift, the training curves, the confusions.

matplotlib is optional (``pip install 'hf-transfer-learning[selection]'``): without it
:func:`matplotlib_available` is ``False`` and callers print one line instead of drawing.

* :func:`draw_embedding` — a 2-D embedding (UMAP when ``umap-learn`` is installed, else scikit-learn's
  t-SNE) of source and target features before and after adaptation, coloured by domain and by class;
* :func:`draw_training_curves` — classification loss, domain loss, discriminator accuracy and λ
  against the step, from ``trainer.state.log_history``;
* :func:`draw_confusion_matrices` — one row-normalised confusion matrix per labelled domain.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

MATPLOTLIB_NOTICE = "Pictures skipped: matplotlib is not installed (pip install 'hf-transfer-learning[selection]')."

#: ``trainer.state.log_history`` keys drawn by :func:`draw_training_curves`, with their panel titles.
CURVES = {
    "classification_loss": "classification loss (source)",
    "domain_loss": "domain loss",
    "domain_accuracy": "discriminator accuracy",
    "grl_lambda": "λ (gradient reversal)",
}


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)  # headless: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str | os.PathLike) -> Path:
    """Save ``figure`` as a PNG through a temporary file in the same folder (never half a file), then close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(figure)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(buffer.getvalue())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def embed_2d(features: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """``(n, 2)`` coordinates and the method's name: UMAP if installed, else t-SNE (PCA-initialised, seeded)."""
    features = np.asarray(features, dtype=np.float64)
    n = len(features)
    if n < 4:
        return np.pad(features[:, :2], ((0, 0), (0, max(0, 2 - features.shape[1])))), "raw"
    try:
        import umap  # type: ignore[import-not-found]

        reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed)
        return reducer.fit_transform(features), "UMAP"
    except ImportError:
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, max_iter=500)
        return tsne.fit_transform(features), "t-SNE"


def draw_embedding(
    stages: Mapping[str, np.ndarray],
    domains: np.ndarray,
    classes: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike,
    *,
    target_classes_are_predictions: bool = False,
    seed: int = 0,
) -> Path:
    """One row per stage (``{"before adaptation": features, "after adaptation": features}``, the same rows).

    ``domains`` is 0 (source) / 1 (target) per row, ``classes`` the class id per row (-100 for none).
    The left panel colours by domain, the right by class (source dots, target crosses).
    """
    plt = _pyplot()
    figure, axes = plt.subplots(len(stages), 2, figsize=(10, 4.5 * len(stages)), squeeze=False)
    colours = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for row, (stage, features) in enumerate(stages.items()):
        coords, method = embed_2d(features, seed)
        by_domain, by_class = axes[row]
        for domain, (name, colour) in enumerate((("source", "tab:blue"), ("target", "tab:orange"))):
            keep = domains == domain
            by_domain.scatter(coords[keep, 0], coords[keep, 1], s=8, alpha=0.6, c=colour, label=name)
        by_domain.set_title(f"{method} {stage}: by domain")
        by_domain.legend(loc="best", fontsize=8)
        for domain, marker in ((0, "o"), (1, "x")):
            for k, name in enumerate(class_names):
                keep = (domains == domain) & (classes == k)
                if keep.any():
                    by_class.scatter(coords[keep, 0], coords[keep, 1], s=10, alpha=0.7, marker=marker,
                                     color=colours(k % colours.N), label=str(name) if domain == 0 else None)
        what = "predicted class" if target_classes_are_predictions else "class"
        by_class.set_title(f"{method} {stage}: by class (source ●, target ×: {what})")
        if len(class_names) <= 12:
            by_class.legend(loc="best", fontsize=7, ncol=2)
        for axis in (by_domain, by_class):
            axis.set_xticks([])
            axis.set_yticks([])
    figure.tight_layout()
    return save_figure(figure, path)


def draw_training_curves(log_history: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Classification loss, domain loss, discriminator accuracy and λ against the optimizer step."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(2, 2, figsize=(10, 7))
    for axis, (key, title) in zip(axes.ravel(), CURVES.items()):
        points = [(entry["step"], entry[key]) for entry in log_history if key in entry and "step" in entry]
        if points:
            steps, values = zip(*points)
            axis.plot(steps, values, marker="." if len(points) < 30 else None)
        else:
            axis.text(0.5, 0.5, "not logged in this run", ha="center", va="center", transform=axis.transAxes)
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return save_figure(figure, path)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]`` over the rows with a label (``-100`` rows left out)."""
    labels, predictions = np.asarray(labels).ravel(), np.asarray(predictions).ravel()
    keep = labels >= 0
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels[keep], predictions[keep]), 1)
    return matrix


def draw_confusion_matrices(
    domains: Mapping[str, tuple[np.ndarray, np.ndarray]], class_names: Sequence[str], path: str | os.PathLike
) -> Path:
    """``{"source": (labels, predictions), "target": ...}`` → one row-normalised matrix per domain, side by side."""
    plt = _pyplot()
    k = len(class_names)
    figure, axes = plt.subplots(1, len(domains), figsize=(1.0 + 4.5 * len(domains), 4.5), squeeze=False)
    for axis, (name, (labels, predictions)) in zip(axes[0], domains.items()):
        counts = confusion_matrix(labels, predictions, k)
        totals = counts.sum(1, keepdims=True)
        shares = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=np.float64), where=totals > 0)
        image = axis.imshow(shares, vmin=0, vmax=1, cmap="Blues")
        accuracy = np.trace(counts) / max(1, counts.sum())
        axis.set_title(f"{name}: accuracy {accuracy:.3f} (n={counts.sum()})")
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        ticks = range(k)
        if k <= 20:
            axis.set_xticks(ticks, [str(c)[:8] for c in class_names], rotation=90, fontsize=7)
            axis.set_yticks(ticks, [str(c)[:8] for c in class_names], fontsize=7)
        if k <= 12:
            for i in range(k):
                for j in range(k):
                    axis.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                              color="white" if shares[i, j] > 0.5 else "black")
        figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    return save_figure(figure, path)
