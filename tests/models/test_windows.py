"""Long evidence is read whole: every window fits the encoder, every token is in a window."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prescore.models.embeddings import EmbeddingScorer

# Czech and German with long words: far more word pieces than words under an English WordPiece
LONG_WORDS = [
    "Nejneobhospodařovávatelnějšími",
    "výchovněvzdělávacími",
    "nejpravděpodobnějšími",
    "Donaudampfschifffahrtsgesellschaftskapitän",
    "Rechtsschutzversicherungsgesellschaften",
    "nejzajímavějšími",
    "pedagogicko-psychologickými",
    "Kraftfahrzeughaftpflichtversicherung",
    "spolupracujícími",
    "nekonzistentnějšími",
    "Arbeitsunfähigkeitsbescheinigung",
]


def long_text(words: int) -> str:
    return " ".join(LONG_WORDS[i % len(LONG_WORDS)] for i in range(words))


def test_embedding_windows_fit_the_encoder_and_cover_every_token(tiny_encoder: Path) -> None:
    scorer = EmbeddingScorer(base_model=str(tiny_encoder))
    text = long_text(400)
    seen: list[str] = []
    real = scorer.encode_windows

    def capture(windows: list[str]) -> np.ndarray:
        seen.extend(windows)
        return real(windows)

    scorer.encode_windows = capture  # type: ignore[method-assign]
    scorer.embed([text])
    encoder = scorer._encoder()
    tokenizer, limit = encoder.tokenizer, encoder.max_seq_length
    assert len(seen) > 1
    spans, position = [], 0
    for window in seen:
        assert len(tokenizer(window)["input_ids"]) <= limit  # nothing the encoder would cut
        start = text.index(window, position)
        spans.append((start, start + len(window)))
        position = start + 1
    tokens = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    for begin, end in tokens["offset_mapping"]:
        assert any(a <= begin and end <= b for a, b in spans), text[begin:end]
    # consecutive windows overlap, so no token sits only at a window's edge
    assert all(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False))


def test_transformer_windows_are_batched_by_length_each_batch_padded_to_its_longest(
    tiny_encoder: Path,
) -> None:
    """Windows are encoded in batches of similar length, so a document's short last window never
    pads to full length; results keep their order."""
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    from prescore.models.transformer import ScoringModel, TransformerScorer

    scorer = TransformerScorer(base_model=str(tiny_encoder), max_length=32, stride=8)
    scorer.tokenizer_ = AutoTokenizer.from_pretrained(tiny_encoder)
    torch.manual_seed(0)
    scorer.model_ = ScoringModel(AutoModel.from_pretrained(tiny_encoder), [3]).eval()
    lengths = [32, 5, 32, 9, 17, 32, 3] * 4  # long and short windows mixed
    windows = [[101] + [2000 + i] * (n - 2) + [102] for i, n in enumerate(lengths)]
    shapes: list[tuple[int, int]] = []
    real = scorer._window_sums

    def record(input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        shapes.append(input_ids.shape)
        return real(input_ids, attention_mask)

    scorer._window_sums = record  # type: ignore[method-assign]
    sums, counts = scorer.encode_windows(windows)
    assert shapes == [(4, 3), (4, 5), (4, 9), (4, 17), (12, 32)]  # each length apart
    assert counts[:, 0].tolist() == lengths  # each window's own tokens, in the order given
    with torch.no_grad():
        alone = scorer.model_.window_sums(torch.tensor([windows[1]]), torch.ones(1, lengths[1]))
    assert np.allclose(sums[1], alone[0][0].numpy(), atol=1e-4)


def test_length_batches_bound_padding_and_size() -> None:
    from prescore.models.transformer import length_batches

    assert length_batches([256, 130], most=16, max_padding=0.1) == [[1], [0]]
    assert length_batches([100, 105, 110, 200], most=16, max_padding=0.1) == [[0, 1, 2], [3]]
    assert [len(b) for b in length_batches([256] * 20, most=16, max_padding=0.1)] == [16, 4]
    lengths = [(37 * i) % 250 + 1 for i in range(200)]
    batches = length_batches(lengths, most=16, max_padding=0.1)
    assert sorted(i for batch in batches for i in batch) == list(range(200))
    for batch in batches:
        sizes = [lengths[i] for i in batch]
        assert len(batch) <= 16 and max(sizes) <= min(sizes) * 1.1


def test_transformer_counts_tokens_from_its_windows_and_scoring_takes_them(
    tiny_encoder: Path,
) -> None:
    """The service counts a request's tokens, then scores it: the count is the tokenizer's own
    (no special tokens), and scoring takes the windows the count made instead of tokenizing
    again, once per count."""
    import pandas as pd
    from transformers import AutoTokenizer

    from prescore.models.inputs import count_tokens, criterion_keys
    from prescore.models.transformer import TransformerScorer

    scorer = TransformerScorer(base_model=str(tiny_encoder), max_length=32, stride=8)
    scorer.tokenizer_ = AutoTokenizer.from_pretrained(tiny_encoder)
    scorer.head_index_ = {
        str(criterion_keys(pd.DataFrame({"credential_id": ["c"], "criterion_id": ["a"]}))[0]): 0
    }
    texts = [long_text(n) for n in (1, 7, 40, 90)] + ["Wait time rose to five seconds."]
    assert scorer.count_tokens(texts) == count_tokens(texts, scorer.tokenizer_)
    assert len(scorer.recent_windows_) == len(texts)

    calls: list[list[str]] = []
    real = scorer.tokenize_windows

    def spy(some: list[str]) -> list[list[list[int]]]:
        calls.append(some)
        return real(some)

    scorer.tokenize_windows = spy  # type: ignore[method-assign]
    X = pd.DataFrame({"text": texts, "credential_id": "c", "criterion_id": "a"})
    documents = scorer.documents(X, None)
    assert calls == []  # every text's windows came from the count
    assert [d.windows for d in documents] == real(texts)
    scorer.documents(X.head(2), None)
    assert calls == [texts[:2]]  # taken once: a second scoring tokenizes
    assert len(scorer.recent_windows_) == 0


def test_recent_windows_are_bounded_and_start_empty_in_a_copy() -> None:
    import copy

    from prescore.models.recent_windows import RecentWindows

    recent = RecentWindows(most_tokens=4)
    for n in range(3):
        recent.put(f"text {n}", [[n, n]])  # two tokens each
    assert recent.take("text 0") is None  # the oldest made room
    assert recent.take("text 2") == [[2, 2]] and recent.tokens == 2
    recent.put("huge", [[0] * 5])  # larger than the bound alone: not kept, nothing pushed out
    assert recent.take("huge") is None and len(recent) == 1
    assert len(copy.deepcopy(recent)) == 0 and len(recent) == 1
