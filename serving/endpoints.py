"""How the API service reaches the model: in its own process (inline, the default) or in
BentoML's model service, a second process (separate).

Inline saves the hop between the two (serialising the evidence twice, a second event loop, a
process switch): one 300-word essay over HTTP took 41-47 ms at p50 against 51 ms separate,
and 8 clients got 0.77x of the model's in-process rate against 0.68x, on 2 cores with bf16
(eval/RESULTS.md). Separate keeps a model crash or a long load away from the API and
the review pages, and lets the model service scale apart, where there are cores for it.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import aiohttp
import anyio

from prescore.serving.model_host import ModelHost
from prescore.serving.outcomes import ReloadOutcome, ScoringOutcome
from prescore.serving.schemas import EvidenceToScore, ModelCard

logger = logging.getLogger("prescore.serving")


class ModelEndpoint(Protocol):
    async def predict(self, items: list[EvidenceToScore]) -> ScoringOutcome: ...

    async def describe(self) -> ModelCard: ...

    async def reload(self, alias: str | None) -> ReloadOutcome: ...


class InlineModel:
    """The model host in the API's process; its work runs on worker threads, so the event loop
    keeps answering while a batch is scored."""

    def __init__(self, host: ModelHost) -> None:
        self.host = host

    async def predict(self, items: list[EvidenceToScore]) -> ScoringOutcome:
        return await self.host.predict(items)

    async def describe(self) -> ModelCard:
        return self.host.card

    async def reload(self, alias: str | None) -> ReloadOutcome:
        return await anyio.to_thread.run_sync(self.host.reload, alias)


class RemoteModel:
    """BentoML's client to the model service (`bentoml.depends`)."""

    def __init__(self, proxy: Any) -> None:
        self.proxy = proxy

    async def call(self, method: str, **arguments: Any) -> Any:
        """Call the model service, once more if a pooled connection was closed under us.

        BentoML's internal client keeps connections alive longer than the server does
        (bentoml/BentoML#4971), so a reused one can be gone; predict and describe are safe
        to repeat.
        """
        call = getattr(self.proxy.to_async, method)
        try:
            return await call(**arguments)
        except aiohttp.ClientConnectionError:
            logger.info("connection to the model service was closed; calling %s again", method)
            return await call(**arguments)

    async def predict(self, items: list[EvidenceToScore]) -> ScoringOutcome:
        return ScoringOutcome.model_validate(await self.call("predict", items=items))

    async def describe(self) -> ModelCard:
        return ModelCard.model_validate(await self.call("describe"))

    async def reload(self, alias: str | None) -> ReloadOutcome:
        # not retried: a reload that reached the service may have swapped the model already
        return ReloadOutcome.model_validate(await self.proxy.to_async.reload(alias=alias))
