"""The service's defaults, in a module light enough for the CLI to import at start-up: the
settings' fields and `prescore serve`'s options both read them, so they cannot drift apart."""

MODEL_NAME = "prescore-quickstart"
MODEL_ALIAS = "champion"
MAX_ITEMS_PER_REQUEST = 100
MAX_TEXT_CHARS = 50_000
REVIEW_DB = "sqlite:///.prescore/review.db"
AUDIT_RATE = 0.05
READY_TIMEOUT_SECONDS = 180.0
