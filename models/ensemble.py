"""Several scorers fitted on the same evidence, their level probabilities pooled.

- Members are any other scorer kinds, each written as a config writes its scorer:
  `{kind, params}`. The default pairs the fine-tuned encoder with the essay scorer (n-grams
  and writing features, models/essay.py), whose errors differ.
- Pooling is linear, a weighted mean of probabilities. The expected level is then the
  weighted mean of the members' expected levels: the classic averaged-regressors ensemble,
  which is what QWK and RMSE reward.
- Weights are chosen per criterion on the held-out eval set (the calibration split), from a
  grid over the simplex, by log-likelihood of the true levels. A criterion with fewer than
  MIN_WEIGHT_ITEMS held-out items takes the weights fitted on all criteria together; with no
  eval set every member weighs the same. One grid choice per criterion is a small fit on the
  split that also fits temperatures and thresholds; the benchmark's held-out folds measure
  the whole chain.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from prescore.models.inputs import levels_per_criterion
from prescore.models.scorer import EvalSet, Scorer, load_scorer, make_scorer, scorer_class

MIN_WEIGHT_ITEMS = 50
ALL_CRITERIA = "all"  # criteria keys always hold a "/", so this never clashes
EPSILON = 1e-9
DEFAULT_MEMBERS: list[dict[str, Any]] = [{"kind": "transformer"}, {"kind": "essay"}]


def simplex_grid(members: int, step: float) -> np.ndarray:
    """Every weight vector with entries on multiples of `step` that sum to one."""
    parts = round(1 / step)
    rows = [c for c in itertools.product(range(parts + 1), repeat=members) if sum(c) == parts]
    return np.array(rows, dtype=float) / parts


def best_weights(
    member_probabilities: np.ndarray, labels: np.ndarray, grid: np.ndarray
) -> np.ndarray:
    """The grid row whose pooled probabilities give the true levels the highest likelihood.

    member_probabilities: (members, items, levels)."""
    of_truth = member_probabilities[:, np.arange(len(labels)), labels]  # (members, items)
    pooled = grid @ of_truth  # (grid rows, items)
    loss = -np.log(np.clip(pooled, EPSILON, None)).mean(axis=1)
    return np.asarray(grid[int(np.argmin(loss))])


class EnsembleScorer(Scorer):
    kind = "ensemble"
    selects_on_eval_set = True  # the pooling weights

    def __init__(
        self,
        members: list[dict[str, Any]] | None = None,
        grid_step: float = 0.1,
        seed: int = 13,
    ) -> None:
        self.members = members  # None: DEFAULT_MEMBERS
        self.grid_step = grid_step
        self.seed = seed  # handed to every member that takes one

    def member_specs(self) -> list[dict[str, Any]]:
        """The members as configured, or the default pair."""
        return [dict(m) for m in DEFAULT_MEMBERS] if self.members is None else self.members

    def check_params(self) -> None:
        self.member_scorers()
        if (
            not 0 < self.grid_step <= 0.5
            or abs(1 / self.grid_step - round(1 / self.grid_step)) > 1e-9
        ):
            raise ValueError(
                f"grid_step must divide 1 evenly, e.g. 0.1 or 0.25; got {self.grid_step}"
            )

    def member_scorers(self) -> list[Scorer]:
        """Unfitted members, each checked as a config's scorer is."""
        members = self.member_specs()
        if not isinstance(members, list) or len(members) < 2:
            raise ValueError(
                "an ensemble needs a list of at least two members, each {kind, params}"
            )
        out = []
        for number, member in enumerate(members, start=1):
            params = member.get("params") or {} if isinstance(member, dict) else None
            if (
                not isinstance(member, dict)
                or "kind" not in member
                or set(member) - {"kind", "params"}
                or not isinstance(params, dict)
            ):
                raise ValueError(
                    f"ensemble member {number} must be a mapping {{kind, params}} "
                    "with params a mapping"
                )
            if member["kind"] == self.kind:
                raise ValueError(f"ensemble member {number}: an ensemble cannot hold an ensemble")
            kind = str(member["kind"])
            if "seed" in scorer_class(kind)._get_param_names():
                params = {"seed": self.seed, **params}
            out.append(make_scorer(kind, params))
        return out

    @classmethod
    def of_fitted(
        cls,
        members: list[Scorer],
        eval_set: EvalSet | None,
        grid_step: float = 0.1,
    ) -> EnsembleScorer:
        """An ensemble of members already fitted on the same training data: the benchmark
        pools the scorers it has just measured instead of fitting them twice."""
        ensemble = cls(
            members=[{"kind": m.kind, "params": m.get_params(deep=False)} for m in members],
            grid_step=grid_step,
        )
        ensemble.num_levels_ = dict(members[0].num_levels_)
        ensemble.members_ = members
        ensemble.weights_ = ensemble._fit_weights(eval_set)
        return ensemble

    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        *,
        eval_set: EvalSet | None = None,
        callbacks: list[Any] | None = None,
    ) -> Self:
        """Fit every member on (X, y), each given `eval_set` and `callbacks` as it would be
        alone, then choose the pooling weights on `eval_set`."""
        self.num_levels_ = levels_per_criterion(X)
        self.members_ = self.member_scorers()
        for member in self.members_:
            member.fit(X, y, eval_set=eval_set, callbacks=callbacks)
        self.weights_ = self._fit_weights(eval_set)
        return self

    def _fit_weights(self, eval_set: EvalSet | None) -> dict[str, list[float]]:
        count = len(self.members_)
        equal = [1 / count] * count
        if eval_set is None or len(eval_set[1]) == 0:
            return {ALL_CRITERIA: equal}
        X, y = eval_set
        keys = self.keys(X)
        known = np.isin(keys, list(self.num_levels_))  # criteria seen in training
        X, labels, keys = X[known], np.asarray(y)[known], keys[known]
        if len(labels) == 0:
            return {ALL_CRITERIA: equal}
        stacked = np.stack([m.predict_proba(X) for m in self.members_])
        grid = simplex_grid(count, self.grid_step)
        weights = {ALL_CRITERIA: best_weights(stacked, labels, grid).tolist()}
        for key in sorted(set(keys)):
            rows = keys == key
            if rows.sum() >= MIN_WEIGHT_ITEMS:
                weights[str(key)] = best_weights(stacked[:, rows], labels[rows], grid).tolist()
        return weights

    def fit_summary(self) -> dict[str, float]:
        """The chosen weights as flat numbers for MLflow: ensemble_weight.<criterion>.<member>."""
        names = [f"{n}-{member['kind']}" for n, member in enumerate(self.member_specs())]
        return {
            f"ensemble_weight.{key.replace('/', '.')}.{name}": float(weight)
            for key, weights in self.weights_.items()
            for name, weight in zip(names, weights, strict=True)
        }

    def weights_for(self, keys: np.ndarray) -> np.ndarray:
        """(items, members): each item's criterion's weights."""
        default = self.weights_[ALL_CRITERIA]
        return np.array([self.weights_.get(str(k), default) for k in keys])

    def base_tokenizer(self) -> Any:
        """The first member's with a base model: the one whose language matters."""
        found = (m.base_tokenizer() for m in self.members_)
        return next((t for t in found if t is not None), None)

    def count_tokens(self, texts: list[str]) -> list[int]:
        """The count of the member whose tokenizer `base_tokenizer` names, so that member
        finds the windows its count left (models/recent_windows.py)."""
        reader = next((m for m in self.members_ if m.base_tokenizer() is not None), None)
        return super().count_tokens(texts) if reader is None else reader.count_tokens(texts)

    @property
    def runtime(self) -> str:
        return "+".join(dict.fromkeys(m.runtime for m in self.members_))

    def use_graph(self) -> Self:
        for member in self.members_:
            member.use_graph()
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        self.check_input(X)
        stacked = np.stack([m.predict_proba(X) for m in self.members_], axis=1)
        weights = self.weights_for(self.keys(X))
        return np.asarray(np.einsum("im,iml->il", weights, stacked))

    # -- persistence ------------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        for number, member in enumerate(self.members_):
            member.save(folder / "members" / str(number))
        (folder / "weights.json").write_text(json.dumps(self.weights_, indent=2))

    @classmethod
    def _load_state(cls, folder: Path, params: dict[str, Any]) -> Self:
        scorer = cls(**params)
        scorer.members_ = [
            load_scorer(folder / "members" / str(n)) for n in range(len(scorer.member_specs()))
        ]
        scorer.weights_ = json.loads((folder / "weights.json").read_text())
        return scorer
