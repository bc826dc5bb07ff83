"""What the serving benchmark (bench/serving.py) measured: each runtime's timings, the HTTP
service's, and the report as Markdown (for eval/RESULTS.md) or as the issue's JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prescore.models.transformer import TORCH_RUNTIME


@dataclass(frozen=True)
class RuntimeTimings:
    p50_ms: float
    p95_ms: float
    items_per_s_8: float
    items_per_s_32: float
    level_agreement: float
    shared_items_per_s: float  # batches of one text on every criterion: Markdown only
    passed: bool  # the copy's check at export let it serve


@dataclass(frozen=True)
class HttpTimings:
    runtime: str
    model_process: str  # inline (in the API's process) or separate (a model service)
    p50_ms: float
    p95_ms: float
    items_per_s_8: float
    items_per_s_32: float
    mean_batch_8: float  # items per model call with 8 clients, from the service's metrics
    mean_batch_32: float
    # the same runtime in-process, timed in turn with the HTTP passes above
    in_process_items_per_s_8: float
    in_process_items_per_s_32: float
    refused: dict[int, int] = field(default_factory=dict)  # status -> requests not answered
    # CPU milliseconds per item with 8 clients: the service's processes, the same runtime
    # in-process, and the bench's own client threads (on the same cores, as a load test's are)
    service_cpu_ms_8: float = float("nan")
    in_process_cpu_ms_8: float = float("nan")
    client_cpu_ms_8: float = float("nan")

    @property
    def ratio_8(self) -> float:
        """HTTP throughput with 8 clients over in-process, from the passes taken in turn."""
        return self.items_per_s_8 / self.in_process_items_per_s_8


@dataclass(frozen=True)
class ServingBench:
    model: str
    version: str
    items: int
    shared_items: int
    words: tuple[int, int]  # median and largest words per text
    machine: str
    runtimes: dict[str, RuntimeTimings]
    http: HttpTimings | None
    rss_mb: dict[str, float] = field(default_factory=dict)
    not_measured: dict[str, str] = field(default_factory=dict)  # runtime -> why

    def as_json(self) -> dict[str, Any]:
        """The issue's schema, nothing more."""
        keys = ("p50_ms", "p95_ms", "items_per_s_8", "items_per_s_32", "level_agreement")
        http = self.http
        return {
            "runtimes": {
                name: {key: getattr(timings, key) for key in keys}
                for name, timings in self.runtimes.items()
            },
            "http": None
            if http is None
            else {
                key: getattr(http, key)
                for key in ("runtime", "p50_ms", "p95_ms", "items_per_s_8", "items_per_s_32")
            },
            "rss_mb": self.rss_mb,
        }

    def markdown(self) -> str:
        names = list(self.runtimes)
        torch = self.runtimes.get(TORCH_RUNTIME)
        lines = [
            f"Serving {self.model} version {self.version}: {self.items} distinct texts, one item "
            f"each (median {self.words[0]} words, longest {self.words[1]}); {self.machine}",
            "",
            "| measure | " + " | ".join(names) + (" | HTTP service |" if self.http else " |"),
            "|---|" + "---:|" * (len(names) + (1 if self.http else 0)),
        ]

        def row(label: str, key: str, digits: int = 1) -> str:
            cells = [f"{getattr(self.runtimes[n], key):.{digits}f}" for n in names]
            if self.http is not None:
                cells.append(f"{getattr(self.http, key):.{digits}f}" if key != "-" else "")
            return f"| {label} | " + " | ".join(cells) + " |"

        lines += [
            row("one request p50 (ms)", "p50_ms"),
            row("one request p95 (ms)", "p95_ms"),
            row("items/s, 8 concurrent clients", "items_per_s_8"),
            row("items/s, 32 concurrent clients", "items_per_s_32"),
        ]
        agreement = [f"{self.runtimes[n].level_agreement:.2%}" for n in names]
        lines.append(
            "| same level as torch-fp32 | "
            + " | ".join(agreement)
            + (" | |" if self.http else " |")
        )
        if torch is not None:
            speedup = [
                f"{self.runtimes[n].items_per_s_8 / torch.items_per_s_8:.2f}x" for n in names
            ]
            lines.append(
                "| items/s (8 clients) / torch-fp32 | "
                + " | ".join(speedup)
                + (" | |" if self.http else " |")
            )
        lines += [
            "",
            f"Shared-text batches ({self.shared_items} items, one text on every "
            "criterion per batch, encoded once), in-process:",
        ]
        lines += [f"- {n}: {t.shared_items_per_s:.1f} items/s" for n, t in self.runtimes.items()]
        refused = [n for n, t in self.runtimes.items() if not t.passed]
        if refused:
            lines.append(f"\nMeasured but not served (failed the check at export): {refused}")
        for name, why in self.not_measured.items():
            lines.append(f"\n{name} not measured: {why}")
        if self.http is not None:
            lines += [
                "",
                f"HTTP service on {self.http.runtime}, the model {self.http.model_process} "
                f"(PRESCORE_MODEL_PROCESS): 8-client throughput {self.http.ratio_8:.2f}x of the "
                f"same runtime in-process timed in turn with it ({self.http.items_per_s_8:.1f} "
                f"against {self.http.in_process_items_per_s_8:.1f} items/s; 32 clients "
                f"{self.http.items_per_s_32:.1f} against "
                f"{self.http.in_process_items_per_s_32:.1f}); the token batcher merged "
                f"{self.http.mean_batch_8:.1f} items per model call on average with 8 clients "
                f"({self.http.mean_batch_32:.1f} with 32).",
            ]
            lines.append(
                f"CPU per item with 8 clients: the service {self.http.service_cpu_ms_8:.1f} ms "
                f"against {self.http.in_process_cpu_ms_8:.1f} ms in-process; the bench's client "
                f"{self.http.client_cpu_ms_8:.1f} ms."
            )
            if self.http.refused:
                lines.append(f"Requests the service refused, by status: {self.http.refused}.")
        if self.rss_mb:
            lines.append(
                "Service memory (RSS, MB): "
                + ", ".join(f"{k} {v:.0f}" for k, v in self.rss_mb.items())
            )
        return "\n".join(lines)
