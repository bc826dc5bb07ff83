"""The registered model in a serving process: loaded once, fed by the token batcher, swapped on
reload without dropping requests in flight.

One host per process that scores: BentoML's model service holds it when the model runs in a
process of its own, the API service holds it when the model runs inline (serving/endpoints.py).
"""

from __future__ import annotations

import gc
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import anyio
import bentoml
from starlette.types import Receive

from prescore.models.hardware import use_threads_for
from prescore.models.registry import registered_version
from prescore.serving.outcomes import (
    ReloadOutcome,
    ScoringOutcome,
    cannot_score,
    model_busy,
    no_such_version,
    not_the_served_alias,
    scoring_failed,
    too_many_tokens,
)
from prescore.serving.schemas import EvidenceToScore, ModelCard, ScoredEvidence
from prescore.serving.scoring import ScoringModel
from prescore.serving.settings import ServiceSettings
from prescore.serving.workload import (
    CallerGone,
    Overloaded,
    TokenBatcher,
    unless_disconnected,
)

logger = logging.getLogger("prescore.serving")

Loaded = tuple[ScoringModel, ModelCard]  # the version serving now, swapped as one reference

# items per model call of the token batcher, on /metrics (what `prescore bench serving` reports)
BATCH_ITEMS = bentoml.metrics.Histogram(
    name="prescore_batch_items",
    documentation="evidence items scored together in one model call",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)


def load_on_passing_thread(name: str, alias: str, runtime: str) -> ScoringModel:
    """Load on a thread that ends with the load, so its OpenMP team ends too.

    PyTorch's OpenMP team belongs to the thread that ran a parallel op and lives as long as that
    thread. A team left on the thread that loaded the model (the service's main thread) made
    libgomp count more threads than cores, and bf16 scoring on the model's thread took 47-54 ms
    per 300-word essay instead of 26-32 (2 cores, eval/RESULTS.md)."""
    with ThreadPoolExecutor(1, thread_name_prefix="prescore-load") as loader:
        return loader.submit(ScoringModel.from_registry, name, alias, runtime).result()


def exempt_from_collection() -> None:
    """Move every object alive now (the libraries, the model) out of the cyclic collector's
    reach: a full collection walked them all while holding the GIL, 388 ms during which
    no request moved and both model threads stood idle, once every few hundred requests
    under 8 clients (2 cores, eval/RESULTS.md). Refcounting still frees them: a loaded model
    holds no reference cycle, so a model replaced by a reload is freed with its last batch.

    Garbage is collected first, so no cycle already unreachable is kept for good (tracing the
    encoder leaves one that holds the whole model: torch.jit.trace's map of its modules); that
    collection walks what is not exempt yet (at a reload, the new model: one pause then).
    What a reload finds in flight (a request's objects) is exempted too, and a cycle among
    them that becomes garbage later stays: a few objects per reload, which is rare."""
    gc.collect()
    gc.freeze()


class ModelHost:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        model = load_on_passing_thread(settings.model_name, settings.model_alias, settings.runtime)
        self.loaded: Loaded = (model, model.card())  # one reference: a swap replaces both at once
        self.batcher: TokenBatcher[EvidenceToScore, tuple[ScoredEvidence, Loaded]] = TokenBatcher(
            self.score_batch,
            settings.max_batch_tokens,
            settings.max_queue_seconds,
            settings.model_streams,
        )
        self.use_runtime(model.runtime)
        exempt_from_collection()
        logger.info("serving %s version %s on %s", model.name, model.version, model.runtime)

    def use_runtime(self, runtime: str) -> None:
        """Torch's threads on each model thread as `runtime` wants them; calls side by side only
        on PyTorch runtimes (an ONNX Runtime session's own threads serve one call at a time)."""
        self.batcher.side_by_side = False  # no new narrow calls while the threads change
        self.batcher.in_model_threads(partial(use_threads_for, runtime))
        self.batcher.side_by_side = runtime.startswith("torch")

    @property
    def card(self) -> ModelCard:
        return self.loaded[1]

    def score_batch(self, items: list[EvidenceToScore]) -> list[tuple[ScoredEvidence, Loaded]]:
        """Each item's score with the version (model and card) that scored it."""
        BATCH_ITEMS.observe(len(items))
        loaded = self.loaded  # one read per batch: a reload mid-batch cannot mix versions
        return [(scored, loaded) for scored in loaded[0].score(items)]

    def tokens(self, items: list[EvidenceToScore]) -> int:
        """Counted here, where the tokenizer of the version that will score them is."""
        return sum(self.loaded[0].scorer.count_tokens([item.text for item in items]))

    async def predict(
        self, items: list[EvidenceToScore], receive: Receive | None = None
    ) -> ScoringOutcome:
        """The scores, or a refusal; `receive` watches a caller across a process boundary,
        whose hang-up drops its queued work (inline, cancelling the call does that)."""
        try:
            return await self._predict(items, receive)
        except Exception as failure:  # a bug or a broken model: one line, its type, never text
            logger.error("scoring %d items failed: %s", len(items), type(failure).__name__)
            return ScoringOutcome(refusal=scoring_failed())

    async def _predict(
        self, items: list[EvidenceToScore], receive: Receive | None
    ) -> ScoringOutcome:
        unknown = self.loaded[0].input_problems(items)  # the version that will score them
        if unknown:
            return ScoringOutcome(refusal=cannot_score(unknown))
        tokens = await anyio.to_thread.run_sync(self.tokens, items)
        if tokens > self.settings.max_request_tokens:
            return ScoringOutcome(refusal=too_many_tokens(tokens, self.settings.max_request_tokens))
        work = self.batcher.submit(items, tokens)
        try:
            scored = await (work if receive is None else unless_disconnected(receive, work))
        except CallerGone:  # nobody to answer; its queued work was dropped
            logger.warning("dropped %d items: the API stopped waiting for them", len(items))
            return ScoringOutcome(refusal=model_busy(1))
        except Overloaded as busy:
            logger.warning(
                "refused %d items (%d tokens): the model is busy, retry after %d s",
                len(items),
                tokens,
                busy.retry_after,
            )
            return ScoringOutcome(refusal=model_busy(busy.retry_after))
        model, card = scored[0][1]
        if any(loaded[0] is not model for _, loaded in scored):
            # a reload landed between this request's batches: score it again, all on the
            # version now loaded, so one version scores and decides the whole request
            model, card = self.loaded
            scores, decisions = await anyio.to_thread.run_sync(model.score_submissions, items)
        else:
            scores = [score for score, _ in scored]
            decisions = model.decide(scores)
        return ScoringOutcome(scores=scores, submissions=decisions, card=card)

    def reload(self, alias: str | None = None) -> ReloadOutcome:
        """Load the version the configured alias names now; requests in flight finish on the
        old one. Only promotion chooses what serves: another alias or a version number is
        refused, so a scoring key cannot serve a version `prescore promote` never chose."""
        from mlflow.exceptions import MlflowException

        wanted = self.settings.model_alias
        if alias is not None and alias != wanted:
            return ReloadOutcome(refusal=not_the_served_alias(alias, wanted))
        try:
            registered_version(self.settings.model_name, wanted)
        except MlflowException:  # no such alias or version: the caller's mistake, not ours
            return ReloadOutcome(refusal=no_such_version(self.settings.model_name, wanted))
        fresh = load_on_passing_thread(self.settings.model_name, wanted, self.settings.runtime)
        card = fresh.card()
        self.use_runtime(fresh.runtime)
        self.loaded = (fresh, card)  # a single reference swap: atomic for the batches that follow
        exempt_from_collection()
        logger.info("now serving %s version %s on %s", fresh.name, fresh.version, fresh.runtime)
        return ReloadOutcome(card=card)
