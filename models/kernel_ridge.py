"""Ridge regression through its n-by-n kernel: fast where features far outnumber items.

Character n-grams give a few hundred thousand columns for a criterion's one or two thousand
essays, so the dual form solves an n-by-n system instead. One eigendecomposition per fold
serves every regularisation strength and every criterion scored on the same texts, which is
what makes choosing alpha and the cut points on out-of-fold predictions cheap. The intercept
is not penalised (the kernel is centred), as in scikit-learn's Ridge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.model_selection import KFold

ALPHA_GRID = np.logspace(-2, 2, 9)


def linear_kernel(
    a: tuple[sparse.csr_matrix, np.ndarray], b: tuple[sparse.csr_matrix, np.ndarray]
) -> np.ndarray:
    """Inner products of rows of two (sparse block, dense block) feature pairs."""
    product = sparse.csr_matrix(a[0] @ b[0].T).toarray()
    return np.asarray(product + a[1] @ b[1].T)


def _centre(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    column_mean = kernel.mean(axis=0)
    overall = float(column_mean.mean())
    centred = kernel - column_mean[None, :] - column_mean[:, None] + overall
    return centred, column_mean, overall


def _eigen_fit(
    kernel: np.ndarray, targets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Eigenvectors, eigenvalues, projected centred targets, column means, overall mean."""
    centred, column_mean, overall = _centre(kernel)
    values, vectors = np.linalg.eigh(centred)
    values = np.clip(values, 0, None)
    projected = vectors.T @ (targets - targets.mean(axis=0))
    return vectors, values, projected, column_mean, overall


def out_of_fold(
    kernel: np.ndarray, targets: np.ndarray, folds: int, seed: int, alphas: np.ndarray
) -> np.ndarray:
    """(alphas, items, targets): each item predicted by the ridge fitted without its fold."""
    n = len(targets)
    out = np.zeros((len(alphas), n, targets.shape[1]))
    splitter = KFold(n_splits=min(folds, n), shuffle=True, random_state=seed)
    for train, held in splitter.split(np.zeros(n)):
        vectors, values, projected, column_mean, overall = _eigen_fit(
            kernel[np.ix_(train, train)], targets[train]
        )
        cross = kernel[np.ix_(held, train)]
        cross_centred = cross - cross.mean(axis=1, keepdims=True) - column_mean[None, :] + overall
        left = cross_centred @ vectors
        mean = targets[train].mean(axis=0)
        for a, alpha in enumerate(alphas):
            out[a][held] = left @ (projected / (values + alpha)[:, None]) + mean
    return out


def best_strengths(
    oof: np.ndarray, targets: np.ndarray, alphas: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per target, the strength whose out-of-fold predictions (`out_of_fold`'s output) have
    the lowest squared error, and those predictions: ((targets,), (items, targets))."""
    best = ((oof - targets[None]) ** 2).mean(axis=1).argmin(axis=0)
    return alphas[best], oof[best, :, np.arange(targets.shape[1])].T


@dataclass
class DualRidge:
    """A fitted ridge kept in primal form (weights over the features), so scoring new
    evidence needs its features only, not the training items."""

    sparse_weights: np.ndarray  # (sparse columns, targets)
    dense_weights: np.ndarray  # (dense columns, targets)
    intercept: np.ndarray  # (targets,)

    def predict(self, features: tuple[sparse.csr_matrix, np.ndarray]) -> np.ndarray:
        return np.asarray(
            features[0] @ self.sparse_weights + features[1] @ self.dense_weights + self.intercept
        )


def fit_dual_ridge(
    features: tuple[sparse.csr_matrix, np.ndarray],
    kernel: np.ndarray,
    targets: np.ndarray,
    alphas: np.ndarray,
) -> DualRidge:
    """Ridge on every column of `targets`, each with its own strength from `alphas`."""
    vectors, values, projected, column_mean, overall = _eigen_fit(kernel, targets)
    duals = vectors @ (projected / (values[:, None] + alphas[None, :]))  # (items, targets)
    intercept = targets.mean(axis=0) - column_mean @ duals
    return DualRidge(
        sparse_weights=np.asarray(features[0].T @ duals),
        dense_weights=np.asarray(features[1].T @ duals),
        intercept=np.asarray(intercept),
    )
