"""A fine-tuned transformer encoder with one ordinal head per criterion.

- Many criteria, one model: the encoder is shared and each criterion has a CORAL head (one
  projection and K-1 ordered cut-points), so criteria with different numbers of levels live
  side by side and the loss respects the order of levels.
- Whole evidence: text is tokenized into overlapping windows of the encoder's length; each
  window is mean-pooled and the windows averaged, so nothing past the window is dropped.
- One text, many criteria: items that share a text (one essay scored on six criteria) are
  encoded once per batch, which is most of the training cost.
- Training runs through Hugging Face Trainer, so the same code runs on CPU, one GPU, or
  several processes under `torchrun` / `accelerate launch`. Trainer's settings are passed
  through as `training_args`, under TrainingArguments' own names, rather than mirrored one
  param at a time; the few the scorer must own (output folder, evaluation and saving, seed)
  are refused there.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Self

import numpy as np
import pandas as pd
import torch
from torch import nn

from prescore.models.base_model import BUNDLED, resolve_base_model
from prescore.models.encoder_graph import EncoderGraph, trace_window_sums
from prescore.models.hardware import TORCH_THREADS
from prescore.models.inputs import levels_per_criterion, pad_probabilities
from prescore.models.recent_windows import RecentWindows, Windows
from prescore.models.row_attention import ROWS, SDPA, use_attention
from prescore.models.row_attention import register as register_rows_attention
from prescore.models.scorer import EvalSet, Scorer


class OrdinalHeads(nn.Module):
    """CORAL heads: P(level > k) = sigmoid(w_c . h + b_ck), one row of w and b per criterion."""

    num_levels: torch.Tensor
    cut_mask: torch.Tensor

    def __init__(self, hidden_size: int, num_levels: list[int]) -> None:
        super().__init__()
        self.register_buffer("num_levels", torch.tensor(num_levels))
        width = max(num_levels) - 1
        self.weight = nn.Parameter(torch.zeros(len(num_levels), hidden_size))
        self.bias = nn.Parameter(torch.zeros(len(num_levels), width))
        nn.init.normal_(self.weight, std=0.02)
        cut = torch.arange(width)[None, :]
        self.register_buffer("cut_mask", cut < (self.num_levels[:, None] - 1))

    def forward(self, vectors: torch.Tensor, heads: torch.Tensor) -> torch.Tensor:
        """Logits of P(level > k), shape (items, widest scale - 1); padded cut-points masked."""
        score = (vectors * self.weight[heads]).sum(dim=-1, keepdim=True)
        return score + self.bias[heads]

    @staticmethod
    def ranking_loss(
        logits: torch.Tensor, heads: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """RankNet's logistic loss over every pair of items on one criterion whose levels
        differ: the higher one's score should exceed the lower one's (R2BERT, Yang et al.
        2020; NPCR, Xie et al. 2022, compare essays in pairs). A criterion's items share its
        cut-points, so their first logits differ by exactly their scores. 0 without a pair."""
        pairs = (heads[:, None] == heads[None, :]) & (labels[:, None] > labels[None, :])
        if not bool(pairs.any()):
            return logits.sum() * 0.0  # keeps the graph, so every process steps alike
        margins = logits[:, 0, None] - logits[None, :, 0]
        return nn.functional.softplus(-margins[pairs]).mean()

    def loss(self, logits: torch.Tensor, heads: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cut = torch.arange(logits.shape[1], device=logits.device)[None, :]
        targets = (labels[:, None] > cut).float()
        mask = self.cut_mask[heads].float()
        losses = nn.functional.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        return (losses * mask).sum() / mask.sum().clamp(min=1)

    def probabilities(self, logits: torch.Tensor, heads: torch.Tensor) -> list[np.ndarray]:
        # rank-consistent: P(>k) never rises; float32 whatever precision the model ran in
        above = torch.sigmoid(logits.float()).cummin(dim=1).values
        out = []
        for row, head in zip(above.cpu().numpy(), heads.cpu().numpy(), strict=True):
            k = int(self.num_levels[head])
            cumulative = np.concatenate([[1.0], row[: k - 1], [0.0]])
            probabilities = np.clip(cumulative[:-1] - cumulative[1:], 0, None)
            out.append(probabilities / probabilities.sum())
        return out


class ScoringModel(nn.Module):
    """Encoder + window pooling + ordinal heads; `forward` returns the loss Trainer needs."""

    encoder: Any  # any Hugging Face encoder model

    def __init__(
        self, encoder: nn.Module, num_levels: list[int], ranking_weight: float = 0.0
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.ranking_weight = ranking_weight  # of the pairwise ranking loss beside the ordinal
        hidden = int(self.encoder.config.hidden_size)
        # Pooled sentence vectors are small; normalising them lets the new heads learn at once.
        self.norm = nn.LayerNorm(hidden)
        self.heads = OrdinalHeads(hidden, num_levels)

    def window_sums(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each window's summed token states and its token count: what an ONNX copy exports."""
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        return (states * mask).sum(dim=1), mask.sum(dim=1)

    def pool(
        self, token_sums: torch.Tensor, token_counts: torch.Tensor, window_document: torch.Tensor
    ) -> torch.Tensor:
        """Mean of every token of a document's windows, normalised: one vector per document."""
        documents = int(window_document.max()) + 1
        width, dtype, device = token_sums.shape[-1], token_sums.dtype, token_sums.device
        sums = torch.zeros(documents, width, device=device, dtype=dtype)
        counts = torch.zeros(documents, 1, device=device, dtype=dtype)
        sums.index_add_(0, window_document, token_sums)
        counts.index_add_(0, window_document, token_counts)
        return self.norm(sums / counts.clamp(min=1))

    def document_vectors(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, window_document: torch.Tensor
    ) -> torch.Tensor:
        return self.pool(*self.window_sums(input_ids, attention_mask), window_document)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        window_document: torch.Tensor,
        target_document: torch.Tensor,
        target_head: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        vectors = self.document_vectors(input_ids, attention_mask, window_document)
        logits = self.heads(vectors[target_document], target_head)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = self.heads.loss(logits, target_head, labels)
            if self.ranking_weight and self.training:
                ranking = self.heads.ranking_loss(logits, target_head, labels)
                out["loss"] = out["loss"] + self.ranking_weight * ranking
        return out


@dataclass
class Document:
    """One distinct text, its token windows, and the (criterion head, level) targets it carries."""

    windows: list[list[int]]
    heads: list[int]
    labels: list[int]
    rows: list[int]


class DocumentDataset(torch.utils.data.Dataset[Document]):
    def __init__(self, documents: list[Document]) -> None:
        self.documents = documents

    def __len__(self) -> int:
        return len(self.documents)

    def __getitem__(self, index: int) -> Document:
        return self.documents[index]


def collate(documents: list[Document], pad_id: int) -> dict[str, torch.Tensor]:
    windows = [w for d in documents for w in d.windows]
    length = max(len(w) for w in windows)
    input_ids = torch.full((len(windows), length), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(windows), length), dtype=torch.long)
    for i, window in enumerate(windows):
        input_ids[i, : len(window)] = torch.tensor(window)
        attention_mask[i, : len(window)] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "window_document": torch.tensor([i for i, d in enumerate(documents) for _ in d.windows]),
        "target_document": torch.tensor([i for i, d in enumerate(documents) for _ in d.heads]),
        "target_head": torch.tensor([h for d in documents for h in d.heads]),
        "labels": torch.tensor([y for d in documents for y in d.labels]),
    }


TORCH_RUNTIME = "torch-fp32"
TORCH_BF16: Final = "torch-bf16"  # PyTorch with bfloat16 autocast: fast where the CPU has bf16
# windows per encoder call when predicting, at most
ENCODE_BATCH_WINDOWS = 16
# a window joins a batch only if that pads the batch's shortest window by at most this share
ENCODE_MAX_PADDING = 0.1


def length_batches(lengths: list[int], most: int, max_padding: float) -> list[list[int]]:
    """Indices of windows to encode together: sorted by length, at most `most` a batch, and a
    batch closed before a window that would pad its shortest by more than `max_padding`.

    On CPU a batch gains little over one window at a time, and padding is computed like any
    token: a 300-word essay's two windows (256 and about 130 tokens) padded into one batch
    were a quarter padding."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        current = batches[-1] if batches else []
        if (
            current
            and len(current) < most
            and lengths[i] <= lengths[current[0]] * (1 + max_padding)
        ):
            current.append(i)
        else:
            batches.append([i])
    return batches


# Hugging Face TrainingArguments the scorer starts from; a config's `training_args` is merged
# over them. per_device_eval_batch_size follows the training batch unless given.
DEFAULT_TRAINING_ARGS: dict[str, Any] = {
    "num_train_epochs": 3.0,
    "per_device_train_batch_size": 8,
    "learning_rate": 5e-5,  # the encoder's; the heads take head_learning_rate
    "weight_decay": 0.01,
    "warmup_steps": 0.1,  # a float below 1 is a share of all steps
    "bf16": True,  # where a GPU supports it; a CPU stays fp32, so one config runs anywhere
    "ddp_find_unused_parameters": True,
    "disable_tqdm": True,  # the callbacks report progress and losses instead
    "dataloader_num_workers": 0,
    "dataloader_pin_memory": False,
}


def transformers_major() -> int:
    import transformers

    return int(transformers.__version__.split(".")[0])


def share_of_steps_for_warmup(settings: dict[str, Any], major: int) -> dict[str, Any]:
    """`warmup_steps` below 1 is a share of all steps from transformers 5 on; 4.x (which
    pyproject allows) reads whole steps only, so 0.1 there meant no warm-up at all: it says
    the share as `warmup_ratio` instead."""
    steps = settings.get("warmup_steps", 0)
    if major >= 5 or not 0 < steps < 1:
        return settings
    return {**settings, "warmup_steps": 0, "warmup_ratio": steps}


# TrainingArguments the scorer sets itself, with what to do instead of setting them.
OWNED_TRAINING_ARGS: dict[str, str] = {
    "output_dir": "checkpoints go to a temporary folder; the model is saved with the scorer",
    "seed": "set the config's `seed` (or the scorer's `seed` param)",
    "data_seed": "set the config's `seed` (or the scorer's `seed` param)",
    "eval_strategy": "evaluation runs each epoch on the calibration split",
    "logging_strategy": "losses are logged per epoch",
    "save_strategy": "use keep_best_epoch",
    "save_total_limit": "use keep_best_epoch",
    "save_only_model": "use keep_best_epoch",
    "load_best_model_at_end": "use keep_best_epoch",
    "metric_for_best_model": "the best epoch is the one with the lowest calibration loss",
    "greater_is_better": "the best epoch is the one with the lowest calibration loss",
    "report_to": "runs are tracked by prescore's own MLflow logging",
    "remove_unused_columns": "the scorer's batches are built by its own collation",
    "label_names": "the scorer's batches are built by its own collation",
    "prediction_loss_only": "evaluation measures the calibration loss only",
}


def training_argument_names() -> set[str]:
    from transformers import TrainingArguments

    return {f.name for f in dataclasses.fields(TrainingArguments) if f.init}


def layer_index(name: str) -> int | None:
    """The encoder layer a parameter belongs to, from the `layer.N.` naming BERT, MPNet and
    DistilBERT share; None for the embeddings and anything beside the stack."""
    found = re.search(r"(?:^|\.)layer\.(\d+)\.", name)
    return int(found.group(1)) if found else None


def encoder_rate_groups(encoder: nn.Module, rate: float, decay: float) -> list[dict[str, Any]]:
    """The encoder's trainable parameters grouped by learning rate: layer-wise decay (Howard
    and Ruder 2018; Sun et al. 2019 for BERT) keeps the lower, more general layers closer to
    their pretrained values. The top layer and anything above it learn at `rate`, each layer
    below at `decay` times the one above, the embeddings lowest; what sits beside the stack
    (a pooler, MPNet's relative attention bias) learns at `rate`. Layers are counted from the
    parameter names, whatever the config calls them."""
    indexed = [(name, p, layer_index(name)) for name, p in encoder.named_parameters()]
    layers = 1 + max((i for _, _, i in indexed if i is not None), default=-1)
    steps_below_top: dict[int, list[nn.Parameter]] = {}
    for name, parameter, index in indexed:
        if not parameter.requires_grad:
            continue
        if index is not None:
            steps = layers - 1 - index
        else:
            steps = layers if name.startswith("embeddings.") else 0
        steps_below_top.setdefault(steps, []).append(parameter)
    return [
        {"params": parameters, "lr": rate * decay**steps}
        for steps, parameters in sorted(steps_below_top.items())
    ]


class TransformerScorer(Scorer):
    kind = "transformer"
    selects_on_eval_set = True  # the best epoch
    runtime_ = TORCH_RUNTIME  # or the ONNX copy `use_onnx` switched to, or TORCH_BF16
    onnx_session_: Any = None
    graph_: EncoderGraph | None = None  # the encoder traced for this runtime: `use_graph`
    attention_ = SDPA  # the encoder's attention: ROWS where `use_bf16` chose it

    def __init__(
        self,
        base_model: str = BUNDLED,
        max_length: int = 256,
        stride: int = 32,
        training_args: dict[str, Any] | None = None,
        head_learning_rate: float = 2e-3,
        freeze_layers: int = 0,
        seed: int = 13,
        keep_best_epoch: bool = True,
        layer_lr_decay: float = 1.0,
        ranking_weight: float = 0.0,
    ) -> None:
        self.base_model = base_model
        self.max_length = max_length
        self.stride = stride
        # Hugging Face TrainingArguments by their own names, over DEFAULT_TRAINING_ARGS
        self.training_args = training_args
        self.head_learning_rate = head_learning_rate
        self.freeze_layers = freeze_layers
        self.seed = seed
        # with a calibration split: end on the epoch with the lowest calibration loss
        self.keep_best_epoch = keep_best_epoch
        # each encoder layer learns at this times the rate of the layer above (1: one rate)
        self.layer_lr_decay = layer_lr_decay
        # weight of the pairwise ranking loss beside the ordinal one (0: ordinal alone)
        self.ranking_weight = ranking_weight

    def trainer_settings(self) -> dict[str, Any]:
        """DEFAULT_TRAINING_ARGS with the config's training_args over them, in the terms of the
        installed transformers (`share_of_steps_for_warmup`)."""
        settings = {**DEFAULT_TRAINING_ARGS, **(self.training_args or {})}
        settings.setdefault("per_device_eval_batch_size", settings["per_device_train_batch_size"])
        return share_of_steps_for_warmup(settings, transformers_major())

    def check_params(self) -> None:
        """Refuse settings that could only fail later, mid-training."""
        if not 0 <= self.stride < self.max_length - 2:
            raise ValueError(
                f"stride ({self.stride}) must be smaller than max_length - 2 "
                f"({self.max_length - 2}): windows overlap by `stride` tokens"
            )
        if self.training_args is not None and not isinstance(self.training_args, dict):
            raise ValueError(
                "training_args must be a mapping of Hugging Face TrainingArguments names "
                f"to values, e.g. {{num_train_epochs: 2}}; got {self.training_args!r}"
            )
        known = training_argument_names()
        for name in self.training_args or {}:
            if name in OWNED_TRAINING_ARGS:
                raise ValueError(
                    f"training_args.{name} is set by the transformer scorer itself: "
                    f"{OWNED_TRAINING_ARGS[name]}"
                )
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ValueError(
                    f"training_args.{name} is not a Hugging Face TrainingArguments setting{hint}"
                )
        settings = self.trainer_settings()
        epochs, batch = settings["num_train_epochs"], settings["per_device_train_batch_size"]
        numbers = isinstance(epochs, int | float) and isinstance(batch, int)
        if self.freeze_layers < 0 or not numbers or epochs <= 0 or batch < 1:
            raise ValueError(
                "freeze_layers must be >= 0, training_args.num_train_epochs > 0 and "
                "training_args.per_device_train_batch_size >= 1"
            )
        if not 0 < self.layer_lr_decay <= 1 or self.ranking_weight < 0:
            raise ValueError(
                f"layer_lr_decay must be in (0, 1] (got {self.layer_lr_decay}; 1 is one rate "
                f"for every layer) and ranking_weight >= 0 (got {self.ranking_weight}; 0 is "
                "the ordinal loss alone)"
            )

    # -- data -------------------------------------------------------------------------------
    def documents(
        self, X: pd.DataFrame, y: np.ndarray | None, mapped: bool = False
    ) -> list[Document]:
        """Group rows by text and tokenize each distinct text once, into overlapping windows.

        `mapped` tokenizes through a batched datasets.map (training and calibration texts);
        without it the same function is called directly, as serving wants for one request."""
        texts = list(dict.fromkeys(X["text"]))
        windows = self._mapped_windows(texts) if mapped else self._counted_windows(texts)
        by_text = {text: Document(ws, [], [], []) for text, ws in zip(texts, windows, strict=True)}
        keys = self.keys(X)
        labels = np.zeros(len(X), dtype=int) if y is None else np.asarray(y)
        for row, (text, key, label) in enumerate(zip(X["text"], keys, labels, strict=True)):
            document = by_text[text]
            document.heads.append(self.head_index_[str(key)])
            document.labels.append(int(label))
            document.rows.append(row)
        return list(by_text.values())

    def tokenize_windows(self, texts: list[str]) -> list[list[list[int]]]:
        """Each text's token windows of max_length, overlapping by `stride`, in one batched
        tokenizer call; the fast tokenizer says which text each window came from."""
        encoded = self.tokenizer_(
            texts,
            truncation=True,
            max_length=self.max_length,
            stride=self.stride,
            return_overflowing_tokens=True,
        )
        windows: list[list[list[int]]] = [[] for _ in texts]
        for ids, text in zip(
            encoded["input_ids"], encoded["overflow_to_sample_mapping"], strict=True
        ):
            windows[text].append(list(ids))
        return windows

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Tokens per text without special tokens, worked out from the text's windows (each
        window's own tokens, less the `stride` it repeats from the window before), which stay
        for `predict_proba` to take: the service counts a request, then scores it, and each
        text is tokenized once."""
        windows = self.tokenize_windows(texts)
        # setdefault is one step under the GIL: threads counting at once share one store
        recent = self.__dict__.setdefault("recent_windows_", RecentWindows())
        special = self.tokenizer_.num_special_tokens_to_add(pair=False)
        for text, text_windows in zip(texts, windows, strict=True):
            recent.put(text, text_windows)
        return [sum(len(w) - special for w in ws) - self.stride * (len(ws) - 1) for ws in windows]

    def _counted_windows(self, texts: list[str]) -> list[Windows]:
        """The windows `count_tokens` left for these texts; the others tokenized now."""
        recent = getattr(self, "recent_windows_", None)
        found = [None if recent is None else recent.take(text) for text in texts]
        missing = [text for text, windows in zip(texts, found, strict=True) if windows is None]
        fresh = iter(self.tokenize_windows(missing) if missing else [])
        return [next(fresh) if windows is None else windows for windows in found]

    def _mapped_windows(self, texts: list[str]) -> list[list[list[int]]]:
        """tokenize_windows over a Dataset in batches, in memory: no cache files beside the
        run, and no progress bar of its own (training shows one)."""
        from datasets import (
            Dataset,
            are_progress_bars_disabled,
            disable_progress_bars,
            enable_progress_bars,
        )

        was_disabled = are_progress_bars_disabled()
        disable_progress_bars()
        try:
            mapped = Dataset.from_dict({"text": texts}).map(
                lambda batch: {"windows": self.tokenize_windows(batch["text"])},
                batched=True,
                remove_columns=["text"],
                keep_in_memory=True,
                new_fingerprint="prescore-token-windows",  # skips hashing the tokenizer
            )
        finally:
            if not was_disabled:
                enable_progress_bars()
        return [list(windows) for windows in mapped["windows"]]

    def _windows(self, text: str) -> list[list[int]]:
        """One text's windows, for a reader checking what the encoder sees."""
        return self.tokenize_windows([text])[0]

    # -- fit / predict ----------------------------------------------------------------------
    def fit(
        self,
        X: pd.DataFrame,
        y: np.ndarray,
        *,
        eval_set: EvalSet | None = None,
        callbacks: list[Any] | None = None,
    ) -> Self:
        """Fine-tune with Trainer. `eval_set` gives the per-epoch held-out loss (and, with
        keep_best_epoch, the epoch to end on); `callbacks` are Trainer callbacks, not saved."""
        from transformers import (
            AutoModel,
            AutoTokenizer,
            PrinterCallback,
            Trainer,
            TrainingArguments,
            set_seed,
        )

        self.check_params()
        set_seed(self.seed)
        self.num_levels_ = levels_per_criterion(X)
        self.head_index_ = {key: i for i, key in enumerate(sorted(self.num_levels_))}
        path = resolve_base_model(self.base_model)
        self.tokenizer_ = AutoTokenizer.from_pretrained(path)
        encoder = AutoModel.from_pretrained(path)
        self.model_ = ScoringModel(
            encoder, [self.num_levels_[k] for k in sorted(self.num_levels_)], self.ranking_weight
        )
        self._init_cut_points(X, np.asarray(y))
        self._freeze_lower_layers()

        train = DocumentDataset(self.documents(X, y, mapped=True))
        evaluation = DocumentDataset(self.documents(*eval_set, mapped=True)) if eval_set else None
        keep_best = self.keep_best_epoch and evaluation is not None
        settings = self.trainer_settings()
        settings["bf16"] = self._use_bf16()
        # Accelerate treats a torchrun launch on CPU as distributed only when told so.
        settings.setdefault("use_cpu", not torch.cuda.is_available())

        with tempfile.TemporaryDirectory() as output_dir:
            arguments = TrainingArguments(
                **settings,
                output_dir=output_dir,
                seed=self.seed,
                data_seed=self.seed,
                logging_strategy="epoch",
                eval_strategy="epoch" if evaluation else "no",
                save_strategy="epoch" if keep_best else "no",
                save_total_limit=1 if keep_best else None,
                load_best_model_at_end=keep_best,
                metric_for_best_model="loss" if keep_best else None,
                greater_is_better=False if keep_best else None,
                save_only_model=True,
                report_to="none",
                remove_unused_columns=False,
                label_names=["labels"],
                prediction_loss_only=True,
            )
            pad_id = self.tokenizer_.pad_token_id or 0
            trainer = Trainer(
                model=self.model_,
                args=arguments,
                train_dataset=train,
                eval_dataset=evaluation,
                data_collator=lambda docs: collate(docs, pad_id),
                callbacks=list(callbacks or []),
                optimizers=(self._optimizer(arguments), None),
            )
            # our callbacks report progress and losses; Trainer's printer would repeat them
            trainer.remove_callback(PrinterCallback)
            trainer.train()
            self.log_history_ = list(trainer.state.log_history)
            self.world_size_ = int(arguments.world_size)
            self.optimizer_steps_ = int(trainer.state.global_step)
            losses = [(e["epoch"], e["eval_loss"]) for e in self.log_history_ if "eval_loss" in e]
            self.best_epoch_ = (
                float(min(losses, key=lambda pair: pair[1])[0]) if keep_best and losses else None
            )
        self.model_.eval()
        return self

    def fit_summary(self) -> dict[str, float]:
        """Optimizer steps and processes of the last fit: a distributed run takes fewer steps."""
        return {"optimizer_steps": self.optimizer_steps_, "world_size": self.world_size_}

    def _init_cut_points(self, X: pd.DataFrame, y: np.ndarray) -> None:
        """Start each cut-point at the training log-odds of being above it: steadier fits."""
        keys = self.keys(X)
        with torch.no_grad():
            for key, head in self.head_index_.items():
                levels = y[keys == key]
                for k in range(self.num_levels_[key] - 1):
                    above = (np.sum(levels > k) + 1) / (len(levels) + 2)
                    self.model_.heads.bias[head, k] = float(np.log(above / (1 - above)))

    def _optimizer(self, arguments: Any) -> torch.optim.Optimizer:
        """AdamW with a faster rate for the new heads than for the pretrained encoder, whose
        layers may learn ever more slowly downwards (layer_lr_decay); the encoder's top rate
        and the weight decay come from the TrainingArguments."""
        groups = encoder_rate_groups(
            self.model_.encoder, arguments.learning_rate, self.layer_lr_decay
        )
        heads = [*self.model_.heads.parameters(), *self.model_.norm.parameters()]
        return torch.optim.AdamW(
            [*groups, {"params": heads, "lr": self.head_learning_rate}],
            weight_decay=arguments.weight_decay,
        )

    def _freeze_lower_layers(self) -> None:
        if self.freeze_layers <= 0:
            return
        frozen = ("embeddings",) + tuple(f"layer.{i}." for i in range(self.freeze_layers))
        for name, parameter in self.model_.encoder.named_parameters():
            if any(part in name for part in frozen):
                parameter.requires_grad = False

    def _use_bf16(self) -> bool:
        """training_args.bf16 means "where a GPU supports it", so a config runs on a CPU too."""
        return bool(
            self.trainer_settings()["bf16"]
            and torch.cuda.is_available()
            and torch.cuda.is_bf16_supported()
        )

    def base_tokenizer(self) -> Any:
        return self.tokenizer_

    @torch.no_grad()
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Tokenize each distinct text once, encode every window (batched by length, on the
        runtime chosen by `use_onnx`), then pool, normalise and score in PyTorch."""
        self.check_input(X)
        if len(X) == 0:
            return np.zeros((0, self.width))
        if self.model_.training:  # eval() walks every module: 1 ms of a served request's call
            self.model_.eval()
        documents = self.documents(X, None)
        sums, counts = self.encode_windows([w for d in documents for w in d.windows])
        device = next(self.model_.norm.parameters()).device  # a GPU's, where PyTorch runs on one
        window_document = torch.tensor([i for i, d in enumerate(documents) for _ in d.windows])
        vectors = self.model_.pool(
            torch.from_numpy(sums).to(device),
            torch.from_numpy(counts).to(device),
            window_document.to(device),
        )
        target_document = torch.tensor([i for i, d in enumerate(documents) for _ in d.heads])
        target_head = torch.tensor([h for d in documents for h in d.heads]).to(device)
        logits = self.model_.heads(vectors[target_document.to(device)], target_head)
        rows: list[np.ndarray] = [np.empty(0)] * len(X)
        targets = [row for d in documents for row in d.rows]
        for row, p in zip(
            targets, self.model_.heads.probabilities(logits, target_head), strict=True
        ):
            rows[row] = p
        return pad_probabilities(rows, self.width)

    @torch.no_grad()
    def encode_windows(self, windows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Summed token states and token counts per window, float32, in the order given.

        Windows are encoded in batches of similar length (`length_batches`), each padded to its
        longest window: a document's short last window never pads to full length.
        """
        pad_id = self.tokenizer_.pad_token_id or 0
        sums: np.ndarray | None = None
        counts = np.zeros((len(windows), 1), dtype=np.float32)
        lengths = [len(window) for window in windows]
        for chosen in length_batches(lengths, ENCODE_BATCH_WINDOWS, ENCODE_MAX_PADDING):
            length = max(len(windows[i]) for i in chosen)
            input_ids = np.full((len(chosen), length), pad_id, dtype=np.int64)
            attention_mask = np.zeros((len(chosen), length), dtype=np.int64)
            for row, i in enumerate(chosen):
                input_ids[row, : len(windows[i])] = windows[i]
                attention_mask[row, : len(windows[i])] = 1
            batch_sums, batch_counts = self._window_sums(input_ids, attention_mask)
            if sums is None:
                sums = np.zeros((len(windows), batch_sums.shape[1]), dtype=np.float32)
            sums[chosen] = batch_sums
            counts[chosen] = batch_counts
        if sums is None:
            raise ValueError("nothing to encode: every text gives at least one window")
        return sums, counts

    def _window_sums(
        self, input_ids: np.ndarray, attention_mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.onnx_session_ is not None:
            token_sums, token_counts = self.onnx_session_.run(
                None, {"input_ids": input_ids, "attention_mask": attention_mask}
            )
            return np.asarray(token_sums, np.float32), np.asarray(token_counts, np.float32)
        device = next(self.model_.parameters()).device
        if self.graph_ is not None and not self.model_.training:
            token_sums, token_counts = self.graph_.window_sums(
                torch.from_numpy(input_ids), torch.from_numpy(attention_mask)
            )
            return token_sums.float().numpy(), token_counts.float().numpy()
        bf16 = self._encodes_in_bf16()
        with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            token_sums, token_counts = self.model_.window_sums(
                torch.from_numpy(input_ids).to(device), torch.from_numpy(attention_mask).to(device)
            )
        return token_sums.float().cpu().numpy(), token_counts.float().cpu().numpy()

    @property
    def runtime(self) -> str:
        return self.runtime_

    def use_bf16(self, attention: str = ROWS) -> Self:
        """Encode windows in bfloat16 (autocast) from now on. On a CPU with bf16 instructions
        (AVX512-BF16, AMX) it is about twice fp32's speed; elsewhere it is emulated, slower.

        The linear layers' weights are cast once, to the values autocast would cast them to
        on every call. Embeddings and LayerNorms stay fp32: cast as well, they moved 4 of 378
        calibration levels of the quick-start model, more than the check allows. `attention`:
        ROWS (models/row_attention.py), or SDPA as the bf16 checks before it ran; an encoder
        with attention of its own keeps it (`attention_` says which runs)."""
        for module in self.model_.encoder.modules():
            if isinstance(module, nn.Linear):
                module.to(torch.bfloat16)
        self.attention_ = use_attention(self.model_.encoder, attention)
        self.runtime_ = TORCH_BF16
        return self.use_graph() if self.graph_ is not None else self

    def __getstate__(self) -> dict[str, Any]:
        """A copy (deepcopy, pickle) scores eager: a TorchScript graph does not pickle, and
        belongs to the model it was traced from (`use_graph` traces the copy again)."""
        state: dict[str, Any] = dict(super().__getstate__())  # not our own __dict__
        state.pop("graph_", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A copy unpickled in another process finds its attention registered there too."""
        super().__setstate__(state)
        if self.attention_ == ROWS:
            register_rows_attention()

    def use_graph(self) -> Self:
        """Encode through the encoder traced as it runs now (fp32 or bf16), which holds no GIL
        during a call (models/encoder_graph.py); eager where it does not trace, or where its
        sums differ from eager's, and on a GPU, where no GIL stalls the kernels."""
        self.graph_ = None
        if self.onnx_session_ is None and next(self.model_.parameters()).device.type == "cpu":
            self.model_.eval()
            vocab = int(self.model_.encoder.config.vocab_size)
            longest = int(self.model_.encoder.config.max_position_embeddings)
            self.graph_ = trace_window_sums(self.model_, vocab, longest, self._encodes_in_bf16())
        return self

    def _encodes_in_bf16(self) -> bool:
        """Under bf16 autocast: the bf16 runtime, or where training would use bf16 (a GPU
        with bf16), as eager encoding has done; the trace records the same."""
        return self._use_bf16() or self.runtime_ == TORCH_BF16

    def use_onnx(self, path: Path, runtime: str) -> Self:
        """Encode windows with the ONNX copy at `path` from now on; the PyTorch encoder's
        weights are released, so the process holds one copy of the model in memory."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # ONNX Runtime's own warnings are about graph fusions
        # the same threads as PyTorch: ONNX Runtime's default counts the machine's cores and
        # ignores the CPUs the process may use (under `taskset -c 0` it still ran two threads)
        options.intra_op_num_threads = TORCH_THREADS
        self.onnx_session_ = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self.model_.encoder = None
        self.graph_ = None
        self.runtime_ = runtime
        return self

    # -- persistence ------------------------------------------------------------------------
    def _save_state(self, folder: Path) -> None:
        self.model_.encoder.save_pretrained(folder / "encoder")
        self.tokenizer_.save_pretrained(folder / "encoder")
        heads = {"heads": self.model_.heads.state_dict(), "norm": self.model_.norm.state_dict()}
        torch.save(heads, folder / "heads.pt")

    @classmethod
    def _load_state(cls, folder: Path, params: dict[str, Any]) -> Self:
        import json

        from transformers import AutoModel, AutoTokenizer

        scorer = cls(**{**params, "base_model": str(folder / "encoder")})
        num_levels = json.loads((folder / "scorer.json").read_text())["num_levels"]
        scorer.head_index_ = {key: i for i, key in enumerate(sorted(num_levels))}
        scorer.tokenizer_ = AutoTokenizer.from_pretrained(folder / "encoder")
        encoder = AutoModel.from_pretrained(folder / "encoder")
        scorer.model_ = ScoringModel(encoder, [int(num_levels[k]) for k in sorted(num_levels)])
        heads = torch.load(folder / "heads.pt", weights_only=True)
        scorer.model_.heads.load_state_dict(heads["heads"])
        scorer.model_.norm.load_state_dict(heads["norm"])
        scorer.model_.eval()
        return scorer
