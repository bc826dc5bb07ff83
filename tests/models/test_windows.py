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
