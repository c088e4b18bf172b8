"""Plots of training and evaluation, written as PNG files (matplotlib, no screen needed)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from models.training.metrics import roc


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history_csv: str | Path, out: str | Path) -> Path:
    """Loss curves of a training run's history.csv (every loss column against the step)."""
    plt = _pyplot()
    rows = list(csv.DictReader(open(history_csv)))
    if not rows:
        raise ValueError(f"{history_csv}: no rows yet")
    steps = [int(r["step"]) for r in rows]
    columns = [c for c in rows[0] if c not in ("step", "seconds", "images_per_s")]
    fig, ax = plt.subplots(figsize=(7, 4))
    for c in columns:
        values = [float(r[c]) for r in rows]
        if any(values):
            ax.plot(steps, values, label=c)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return Path(out)


def plot_roc(distances: np.ndarray, same: np.ndarray, out: str | Path, title: str = "ROC") -> Path:
    """True-accept against false-accept rate, log-scaled FAR axis."""
    plt = _pyplot()
    far, tar, _ = roc(distances, same)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(np.maximum(far, 1e-5), tar)
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_xlabel("false-accept rate")
    ax.set_ylabel("true-accept rate")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return Path(out)


def plot_distance_histograms(distances: np.ndarray, same: np.ndarray, threshold: float, out: str | Path) -> Path:
    """Histograms of same-person and different-person distances, with the threshold marked."""
    plt = _pyplot()
    same = np.asarray(same, bool)
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, max(1.6, float(np.max(distances))), 60)
    ax.hist(distances[same], bins=bins, alpha=0.6, label="same person", density=True)
    ax.hist(distances[~same], bins=bins, alpha=0.6, label="different people", density=True)
    ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_xlabel("cosine distance")
    ax.set_ylabel("density")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return Path(out)


def confusion(distances: np.ndarray, same: np.ndarray, threshold: float) -> np.ndarray:
    """2x2 counts: rows true (same, different), columns predicted (same, different) at `distance < threshold`."""
    same = np.asarray(same, bool)
    pred = np.asarray(distances) < threshold
    return np.array([[np.sum(same & pred), np.sum(same & ~pred)], [np.sum(~same & pred), np.sum(~same & ~pred)]])


def plot_confusion(distances: np.ndarray, same: np.ndarray, threshold: float, out: str | Path) -> Path:
    """The confusion matrix at `threshold`, counts in the cells."""
    plt = _pyplot()
    m = confusion(distances, same, threshold)
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(m, cmap="Blues")
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, str(v), ha="center", va="center", color="black")
    ax.set_xticks([0, 1], ["same", "different"])
    ax.set_yticks([0, 1], ["same", "different"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"threshold {threshold:.3f}")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return Path(out)
