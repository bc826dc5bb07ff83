"""The quick-start's two requests: a held-out submission the served model decides alone and one
it sends to a human, found by scoring the test split with the same code the service runs.

Nothing is loosened for the demo: if the policy certifies no auto decision on the sample, there
is none to show, and the quick-start says so and why.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from prescore.data.private import write_private
from prescore.eval.routing import Route
from prescore.serving.schemas import EvidenceToScore, SubmissionDecision

DEMO_FOLDER = Path(".prescore/demo")
CANDIDATES = 1000  # submissions tried at most, in the order of the test split


@dataclass(frozen=True)
class DemoRequest:
    route: Route
    decision: SubmissionDecision
    body: Path  # the request's JSON body, readable by its owner only (it holds evidence text)


def submission_items(split: pd.DataFrame) -> list[list[EvidenceToScore]]:
    """The split's submissions, each as the items of one /score request."""
    names = split["submission_id"].where(split["submission_id"].notna(), split["id"])
    out = []
    for (_, name), rows in split.groupby([split["credential_id"], names], sort=False):
        out.append(
            [
                EvidenceToScore(
                    submission_id=f"demo-{name}",
                    credential_id=row["credential_id"],
                    criterion_id=row["criterion_id"],
                    evidence_type=row["evidence_type"] or "evidence",
                    text=row["text"],
                )
                for row in rows.to_dict("records")
            ]
        )
    return out


def pick_demo_requests(
    model: str, alias: str, split: pd.DataFrame, folder: Path = DEMO_FOLDER
) -> dict[Route, DemoRequest]:
    """The first held-out submission routed auto and the first routed to a human (either may be
    missing), their request bodies written to `folder`."""
    from prescore.serving.scoring import ScoringModel

    scoring = ScoringModel.from_registry(model, alias)
    found: dict[Route, DemoRequest] = {}
    for items in submission_items(split)[:CANDIDATES]:
        if any(scoring.policy.criterion(i.credential_id, i.criterion_id) is None for i in items):
            continue
        _, (decision,) = scoring.score_submissions(items)
        if decision.route in found:
            continue
        body = {"items": [item.model_dump(mode="json") for item in items]}
        found[decision.route] = DemoRequest(
            decision.route,
            decision,
            write_private(folder / f"{decision.route}.json", json.dumps(body)),
        )
        if len(found) == len(Route):
            break
    return found


def pull_curl(base_url: str, key_file: Path, submission_id: str, credential_id: str) -> str:
    """How the platform sees what became of a submission: pending, then the decision, the
    levels and the reviewer's feedback (GET /submissions/{id})."""
    query = urllib.parse.urlencode({"credential_id": credential_id})
    path = f"{urllib.parse.quote(submission_id, safe='')}?{query}"
    return (
        f"curl -s '{base_url}/submissions/{path}' \\\n"
        f'  -H "Authorization: Bearer $(cat {key_file})"'
    )


def curl_file(base_url: str, key_file: Path, body: Path) -> str:
    return (
        f"curl -s {base_url}/score \\\n"
        f'  -H "Authorization: Bearer $(cat {key_file})" \\\n'
        f'  -H "Content-Type: application/json" \\\n'
        f"  -d @{body}"
    )
