"""Adapters turn a foreign layout (a public benchmark, a platform's export) into evidence records.

An adapter is a function `read(path) -> (credentials, records)`: it builds the credentials
(rubrics) the data is scored on and yields one raw record per evidence item and criterion, in
the evidence schema. The records then go through the same validation as any evidence file, so
an adapter never has to re-check what the schema checks. To add your platform's export, write
`read` in a module beside these and add it to ADAPTERS.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prescore.data.adapters import asap_aes, asap_plusplus, asap_sas, feedback_prize_ell
from prescore.data.readers import Records
from prescore.data.schema import Credential

Adapter = Callable[[Path], tuple[dict[str, Credential], Records]]

ADAPTERS: dict[str, Adapter] = {
    "asap-aes": asap_aes.read,
    "asap-sas": asap_sas.read,
    "asap-plusplus": asap_plusplus.read,
    "feedback-prize-ell": feedback_prize_ell.read,
}


def adapt(name: str, path: Path) -> tuple[dict[str, Credential], Records]:
    return ADAPTERS[name](path)
