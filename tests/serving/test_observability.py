"""Metrics labels and log lines that strangers' URLs cannot grow or forge (in-process; the
loopback service's own checks are in test_service.py)."""

from __future__ import annotations

import logging

from prescore.serving.observability import (
    OTHER_PATHS,
    ControlCharacterEscaper,
    escape_controls,
    path_label,
)


def test_unknown_paths_share_one_metrics_label() -> None:
    known = frozenset({"/score", "/metrics"})
    assert path_label("/score", known, ("/review",)) == "/score"
    assert path_label("/review/items/17", known, ("/review",)) == "/review"
    assert path_label("/reviewer", known, ("/review",)) == OTHER_PATHS
    assert path_label("/wp-admin/x\n", known, ("/review",)) == OTHER_PATHS


def test_control_characters_are_escaped() -> None:
    assert escape_controls("/score") == "/score"
    assert escape_controls("/x\nFAKE 200\x1b[31m\u202e") == "/x\\nFAKE 200\\x1b[31m\\u202e"
    assert escape_controls("/café") == "/café"
    assert escape_controls("/a\u2028FORGED\u2029") == "/a\\u2028FORGED\\u2029"  # line breaks too


def test_a_log_record_with_a_forged_line_is_written_as_one_line() -> None:
    record = logging.LogRecord(
        "bentoml.access", logging.INFO, __file__, 1, "%s (%s)", ("1.2.3.4", "path=/a\nB"), None
    )
    assert ControlCharacterEscaper().filter(record)
    assert record.getMessage() == "1.2.3.4 (path=/a\\nB)"
