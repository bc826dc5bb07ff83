"""The base model's tokenizer tells when the evidence is in a language it does not read."""

from __future__ import annotations

from pathlib import Path

ENGLISH = [
    "I paused for five seconds after each question so that more students could answer.",
    "Students gave longer answers, and the quiet ones joined the discussion more often.",
    "When planning the lesson I marked where I would wait and explained why to the class.",
]
CZECH = [
    "Během hodiny jsem po každé otázce počkala několik vteřin, aby se mohlo přihlásit více žáků.",
    "Žáci odpovídali podrobněji a častěji se zapojovali i ti, kteří obvykle mlčí.",
    "Při plánování jsem si poznamenala, kde ve výkladu udělám pauzu a proč.",
]
RUSSIAN = ["На уроке я делала паузу после каждого вопроса, чтобы больше учеников могли ответить."]


def test_unfamiliar_words_are_measured_with_the_base_models_tokenizer(tiny_encoder: Path) -> None:
    from transformers import AutoTokenizer

    from prescore.models.language import language_fit

    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)  # all-MiniLM-L6-v2's English one
    english = language_fit(ENGLISH, tokenizer)
    assert english.words > 30 and english.warning is None
    for foreign in (CZECH, RUSSIAN):
        fit = language_fit(foreign, tokenizer)
        assert fit.unfamiliar_share > fit.threshold
        assert fit.warning is not None and "base model" in fit.warning
