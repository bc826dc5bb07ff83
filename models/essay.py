"""The CPU essay scorer: n-grams, writing features and (optionally) frozen encoder vectors,
a ridge regression of the level per criterion, QWK cut points and calibrated probabilities.

Built like the strong automated-essay-scoring systems that need no GPU (Cozma et al. 2018;
the Kaggle ASAP winners): character and word n-grams with a linear kernel, length and
vocabulary features beside them, and the regression cut into levels where QWK is highest.

Everything this scorer tunes (ridge strength, cut points, the spread of its probabilities) is
chosen on out-of-fold predictions within the training split: the calibration split stays for
temperatures, routing thresholds and certification, and the eval set is ignored.

Boosted trees stacked over the ridge (models/stacking.py) add what a linear score misses:
length that stops paying, key ideas counted, which feature block to trust for which text.

Criteria scored on the same texts (the six analytic criteria of an ELL essay) share one
vocabulary and one kernel; each criterion keeps its own regression, cut points and spread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import joblib
import numpy as np
import pandas as pd
from scipy import sparse

from prescore.models.essay_features import WRITING_FEATURES, EssayFeatures
from prescore.models.inputs import levels_per_criterion, pad_probabilities
from prescore.models.kernel_ridge import (
    ALPHA_GRID,
    DualRidge,
    best_strengths,
    fit_dual_ridge,
    linear_kernel,
    out_of_fold,
)
from prescore.models.ordinal import (
    fit_cut_points,
    fit_spread,
    level_probabilities,
    levels_from_cut_points,
    qwk,
    rounding_cut_points,
)
from prescore.models.scorer import EvalSet, Scorer
from prescore.models.stacking import booster, fit_stacked

BOOSTER_WORDS = 2_000  # common word n-grams the booster reads with stack_words
BLENDS = np.linspace(0, 1, 5)  # the booster's share of the score, chosen out of fold

STATE_FILE = "essay.joblib"


def booster_inputs(
    score: np.ndarray, context: np.ndarray, writing: np.ndarray, words: sparse.csr_matrix | None
) -> Any:
    """What the booster reads: the ridge score, the context scores (`EssayScorer._context`),
    the writing features and, where given, word presence (then as one sparse matrix)."""
    dense = np.hstack([score[:, None], context, writing])
    return dense if words is None else sparse.hstack([sparse.csr_matrix(dense), words]).tocsr()


@dataclass
class CriterionFit:
    """What one criterion's fit keeps: its cut points, the spread of its probabilities, and
    the out-of-fold QWK that chose them (for fit_summary)."""

    group: int
    column: int
    cut_points: np.ndarray
    spread: float
    alpha: float
    oof_qwk: float
    booster: Any = None  # trees over booster_inputs; None: the ridge alone
    blend: float = 0.0  # the booster's share of the score


@dataclass
class TextGroup:
    """Features and the ridge of the criteria that share one set of training texts."""

    features: EssayFeatures
    ridge: DualRidge
    block_ridges: list[DualRidge] = field(default_factory=list)


class EssayScorer(Scorer):
    kind = "essay"

    def __init__(
        self,
        word_ngram_max: int = 2,
        char_ngram_min: int = 2,
        char_ngram_max: int = 5,
        char_analyzer: str = "char_wb",
        max_char_features: int | None = 200_000,
        min_df: int = 2,
        word_weight: float = 1.0,
        char_weight: float = 1.0,
        writing_weight: float = 0.5,
        embeddings: str | None = None,
        embedding_weight: float = 1.0,
        cache_dir: str | None = None,
        alpha: float | None = None,
        cut_points: str = "qwk",
        stack: str | None = "lightgbm",
        stack_words: bool = True,
        stack_blocks: bool = True,
        stack_criteria: bool = True,
        folds: int = 5,
        seed: int = 13,
    ) -> None:
        self.word_ngram_max = word_ngram_max
        self.char_ngram_min = char_ngram_min
        self.char_ngram_max = char_ngram_max
        # "char_wb": n-grams inside words (padded by spaces); "char": across word boundaries too
        self.char_analyzer = char_analyzer
        self.max_char_features = max_char_features
        self.min_df = min_df
        # each block's weight in the kernel; a block's rows have norm about one
        self.word_weight = word_weight
        self.char_weight = char_weight
        self.writing_weight = writing_weight
        # a frozen encoder whose vectors join the features (bundled, mpnet, a folder); None: none
        self.embeddings = embeddings
        self.embedding_weight = embedding_weight
        self.cache_dir = cache_dir  # where encoder vectors are kept between fits
        self.alpha = alpha  # None: chosen per criterion on out-of-fold predictions
        self.cut_points = cut_points  # "qwk" (fitted out of fold) or "round"
        # "lightgbm": boosted trees over the ridge (models/stacking.py); None: the ridge alone
        self.stack = stack
        # the booster also reads which words and word pairs a text holds: trees can count the
        # key ideas a short answer names, which a linear score of n-grams cannot
        self.stack_words = stack_words
        # the booster also reads a ridge per feature block (words, characters, vectors), each
        # out of fold: where the blocks disagree, trees learn which to trust
        self.stack_blocks = stack_blocks
        # criteria scored on the same texts: each booster also reads the others' ridge scores
        self.stack_criteria = stack_criteria
        self.folds = folds  # for the out-of-fold predictions everything is tuned on
        self.seed = seed

    @property
    def runtime(self) -> str:
        return "scikit-learn" if self.embeddings is None else "torch-fp32+scikit-learn"

    def check_params(self) -> None:
        if self.cut_points not in ("qwk", "round"):
            raise ValueError(f"cut_points must be 'qwk' or 'round', not {self.cut_points!r}")
        if self.alpha is not None and not self.alpha > 0:
            raise ValueError(f"alpha must be above 0, or left out to be chosen: {self.alpha}")
        if self.stack not in (None, "lightgbm"):
            raise ValueError(f"stack must be 'lightgbm' or left out, not {self.stack!r}")
        if self.stack is not None:
            booster(self.seed)  # LightGBM is installed
        if self.folds < 2:
            raise ValueError(f"folds must be at least 2 for out-of-fold tuning: {self.folds}")
        if self.char_analyzer not in ("char_wb", "char"):
            raise ValueError(f"char_analyzer must be 'char_wb' or 'char': {self.char_analyzer!r}")
        if not 1 <= self.char_ngram_min <= self.char_ngram_max:
            raise ValueError("need 1 <= char_ngram_min <= char_ngram_max")

    # -- features ---------------------------------------------------------------------------
    def _new_features(self) -> EssayFeatures:
        return EssayFeatures(
            word_ngram_max=self.word_ngram_max,
            char_ngram_range=(self.char_ngram_min, self.char_ngram_max),
            char_analyzer=self.char_analyzer,
            max_char_features=self.max_char_features,
            min_df=self.min_df,
            word_weight=self.word_weight,
            char_weight=self.char_weight,
            writing_weight=self.writing_weight,
        )

    def _encoder(self) -> Any:
        """The embeddings scorer that embeds (and caches) texts; built on first use."""
        if getattr(self, "encoder_", None) is None:
            from prescore.models.embeddings import EmbeddingScorer

            self.encoder_ = EmbeddingScorer(
                base_model=str(self.embeddings), cache_dir=self.cache_dir
            )
        return self.encoder_

    def _features(
        self, group: TextGroup, texts: list[str], fitting: bool = False
    ) -> tuple[Any, np.ndarray]:
        """(sparse, dense) features of texts; `fitting` fits the group's vocabulary first."""
        if fitting:
            words, dense = group.features.fit_transform(texts)
        else:
            words, dense = group.features.transform(texts)
        if self.embeddings is not None:
            vectors = self._encoder().embed(texts) * self.embedding_weight
            dense = np.hstack([dense, vectors])
        return words, dense

    def _block_masks(self, group: TextGroup, features: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        """(sparse column mask, dense column mask) of each feature block: words, characters
        (EssayFeatures puts them in that order), and the encoder's vectors where there are
        any (after the writing features)."""
        n_sparse, n_dense = features[0].shape[1], features[1].shape[1]
        n_words = len(group.features.words_.vocabulary_)
        sparse_index, dense_index = np.arange(n_sparse), np.arange(n_dense)
        masks = [(sparse_index < n_words, np.zeros(n_dense, bool))]
        if n_sparse > n_words:
            masks.append((sparse_index >= n_words, np.zeros(n_dense, bool)))
        if n_dense > len(WRITING_FEATURES):
            masks.append((np.zeros(n_sparse, bool), dense_index >= len(WRITING_FEATURES)))
        return masks

    def _fit_blocks(
        self, group: TextGroup, features: Any, targets: np.ndarray, alphas: np.ndarray
    ) -> np.ndarray:
        """(items, blocks, targets): each block's ridge out of fold; keeps the fitted ridges."""
        group.block_ridges = []
        if not self.stack_blocks or self.stack is None:
            return np.zeros((len(targets), 0, targets.shape[1]))
        out = []
        for sparse_mask, dense_mask in self._block_masks(group, features):
            masked = (
                features[0] @ sparse.diags(sparse_mask.astype(float)),
                features[1] * dense_mask[None, :],
            )
            kernel = linear_kernel(masked, masked)
            oof = out_of_fold(kernel, targets, self.folds, self.seed, alphas)
            chosen, block_oof = best_strengths(oof, targets, alphas)
            out.append(block_oof)
            group.block_ridges.append(fit_dual_ridge(masked, kernel, targets, chosen))
        return np.stack(out, axis=1)

    def _context(self, blocks: np.ndarray, ridge: np.ndarray, column: int) -> np.ndarray:
        """The scores a criterion's booster reads beside its own: its block ridges' and, with
        stack_criteria, the other criteria's on the same text (an ELL essay's six traits
        rise and fall together)."""
        own = blocks[:, :, column]
        if not self.stack_criteria or ridge.shape[1] == 1:
            return own
        others = [c for c in range(ridge.shape[1]) if c != column]
        return np.hstack([own, blocks[:, :, others].reshape(len(own), -1), ridge[:, others]])

    def _word_presence(self, group: TextGroup, texts: list[str]) -> sparse.csr_matrix | None:
        """With stack_words, which of the training's most common word n-grams (lowest idf)
        each text holds: few enough columns that trees stay fast on long essays."""
        if not self.stack_words:
            return None
        common = np.sort(np.argsort(group.features.words_.idf_, kind="stable")[:BOOSTER_WORDS])
        return sparse.csr_matrix(group.features.words_.transform(texts)[:, common] > 0, dtype=float)

    def base_tokenizer(self) -> Any:
        return None if self.embeddings is None else self._encoder().base_tokenizer()

    # -- fit --------------------------------------------------------------------------------
    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        *,
        eval_set: EvalSet | None = None,
        callbacks: list[Any] | None = None,
    ) -> Self:
        """Fit on (X, y) alone: `eval_set` and `callbacks` are accepted, so any scorer fits
        the same way, and left unused; all tuning is out of fold within (X, y)."""
        self.check_params()
        self.num_levels_ = levels_per_criterion(X)
        keys = self.keys(X)
        labels = np.asarray(y, dtype=float)
        texts = np.asarray(X["text"].tolist(), dtype=object)
        # criteria whose rows hold the same texts share features and one kernel
        by_texts: dict[tuple[str, ...], list[str]] = {}
        order: dict[str, np.ndarray] = {}
        for key in sorted(set(keys)):
            rows = np.flatnonzero(keys == key)
            rows = rows[np.argsort(texts[rows], kind="stable")]
            order[str(key)] = rows
            by_texts.setdefault(tuple(texts[rows]), []).append(str(key))
        self.groups_: list[TextGroup] = []
        self.criteria_: dict[str, CriterionFit] = {}
        for number, (group_texts, group_keys) in enumerate(by_texts.items()):
            text_list = list(group_texts)
            targets = np.stack([labels[order[k]] for k in group_keys], axis=1)
            group = TextGroup(self._new_features(), DualRidge(*(np.zeros(0),) * 3))
            matrix = self._features(group, text_list, fitting=True)
            kernel = linear_kernel(matrix, matrix)
            alphas = ALPHA_GRID if self.alpha is None else np.array([self.alpha])
            oof = out_of_fold(kernel, targets, self.folds, self.seed, alphas)
            block_oof = self._fit_blocks(group, matrix, targets, alphas)
            writing = matrix[1][:, : len(WRITING_FEATURES)]
            words = self._word_presence(group, text_list) if self.stack is not None else None
            chosen, ridge_oof = best_strengths(oof, targets, alphas)
            for column, key in enumerate(group_keys):
                self.criteria_[key] = self._fit_levels(
                    number,
                    column,
                    ridge_oof[:, column],
                    targets[:, column],
                    key,
                    chosen[column],
                    (self._context(block_oof, ridge_oof, column), writing, words),
                )
            group.ridge = fit_dual_ridge(matrix, kernel, targets, chosen)
            self.groups_.append(group)
        return self

    def _fit_levels(
        self,
        group: int,
        column: int,
        scores: np.ndarray,
        labels: np.ndarray,
        key: str,
        alpha: float,
        side: tuple[np.ndarray, np.ndarray, sparse.csr_matrix | None],
    ) -> CriterionFit:
        """The booster if asked, then cut points and spread, on one criterion's out-of-fold
        scores; `side` is what the booster reads beside the score (see booster_inputs)."""
        levels = self.num_levels_[key]
        truth = labels.astype(int)
        model, blend = None, 0.0
        if self.stack is not None:
            model, boosted = fit_stacked(
                booster_inputs(scores, *side), labels, self.folds, self.seed
            )
            blends = [(1 - w) * scores + w * boosted for w in BLENDS]
            best = int(np.argmin([np.mean((b - labels) ** 2) for b in blends]))
            scores, blend = blends[best], float(BLENDS[best])
        cuts = (
            fit_cut_points(scores, truth, levels)
            if self.cut_points == "qwk"
            else rounding_cut_points(levels)
        )
        return CriterionFit(
            group=group,
            column=column,
            cut_points=cuts,
            spread=fit_spread(scores, truth, cuts, levels),
            alpha=float(alpha),
            oof_qwk=qwk(levels_from_cut_points(scores, cuts), truth, levels),
            booster=model,
            blend=blend,
        )

    def fit_summary(self) -> dict[str, float]:
        """Per criterion: the ridge strength, the spread and the out-of-fold QWK it chose on."""
        out: dict[str, float] = {}
        for key, fitted in self.criteria_.items():
            name = key.replace("/", ".")
            out[f"essay_alpha.{name}"] = fitted.alpha
            out[f"essay_spread.{name}"] = fitted.spread
            out[f"essay_oof_qwk.{name}"] = fitted.oof_qwk
            if fitted.booster is not None:
                out[f"essay_blend.{name}"] = fitted.blend
        return out

    # -- predict ----------------------------------------------------------------------------
    def scores(self, X: pd.DataFrame) -> np.ndarray:
        """The regression's level-index score per row, before cut points."""
        self.check_input(X)
        keys = self.keys(X)
        texts = X["text"].tolist()
        out = np.zeros(len(X))
        for number, group in enumerate(self.groups_):
            mine = {k: f for k, f in self.criteria_.items() if f.group == number}
            rows = np.flatnonzero(np.isin(keys, list(mine)))
            if not len(rows):
                continue
            unique = list(dict.fromkeys(texts[r] for r in rows))  # one essay, many criteria
            position = {t: i for i, t in enumerate(unique)}
            features = self._features(group, unique)
            predicted = group.ridge.predict(features)
            blocks = np.zeros((len(unique), 0, predicted.shape[1]))
            if group.block_ridges:
                blocks = np.stack([r.predict(features) for r in group.block_ridges], axis=1)
            writing = features[1][:, : len(WRITING_FEATURES)]
            boosted_here = any(f.booster is not None for f in mine.values())
            words = self._word_presence(group, unique) if boosted_here else None
            for key, fitted in mine.items():
                score = predicted[:, fitted.column]
                if fitted.booster is not None:
                    context = self._context(blocks, predicted, fitted.column)
                    inputs = booster_inputs(score, context, writing, words)
                    boosted = fitted.booster.predict(inputs)
                    score = (1 - fitted.blend) * score + fitted.blend * boosted
                for r in rows[keys[rows] == key]:
                    out[r] = score[position[texts[r]]]
        return out

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        scores = self.scores(X)
        keys = self.keys(X)
        rows_out: list[np.ndarray] = [np.empty(0)] * len(X)
        for key in set(keys):
            rows = np.flatnonzero(keys == key)
            fitted = self.criteria_[str(key)]
            probabilities = level_probabilities(
                scores[rows], fitted.cut_points, self.num_levels_[str(key)], fitted.spread
            )
            for row, p in zip(rows, probabilities, strict=True):
                rows_out[row] = p
        return pad_probabilities(rows_out, self.width)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The cut-point level of each row: the argmax of predict_proba, computed directly."""
        scores = self.scores(X)
        keys = self.keys(X)
        return np.array(
            [
                int(levels_from_cut_points(np.array([s]), self.criteria_[str(k)].cut_points)[0])
                for s, k in zip(scores, keys, strict=True)
            ]
        )

    # -- persistence ------------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        if self.embeddings is not None:  # the encoder travels with the model, as embeddings'
            self._encoder()._encoder().save(str(folder / "encoder"))
        joblib.dump({"groups": self.groups_, "criteria": self.criteria_}, folder / STATE_FILE)

    @classmethod
    def _load_state(cls, folder: Path, params: dict[str, Any]) -> Self:
        # a model saved before the booster read blocks and words was fitted without them
        params = {"stack_words": False, "stack_blocks": False, "stack_criteria": False, **params}
        if params.get("embeddings") is not None:
            params = {**params, "embeddings": str(folder / "encoder")}
        scorer = cls(**params)
        state = joblib.load(folder / STATE_FILE)
        scorer.groups_, scorer.criteria_ = state["groups"], state["criteria"]
        for group in scorer.groups_:
            group.__dict__.setdefault("block_ridges", [])
        return scorer
