"""The review system: the queue of submissions for human reviewers, their verdicts, accounts
and training, and the pages they work in."""
