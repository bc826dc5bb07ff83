"""The product's defaults, said once: the CLI's options, the service's settings, the registry
and the data checks all read them here. Plain constants, so the CLI imports them at no cost."""

from pathlib import Path

# inside the package (prescore/experiments is the repo's experiments/ folder, shipped as
# package data), so an installed wheel finds it wherever it is run from
QUICKSTART_CONFIG = Path(__file__).resolve().parent / "experiments" / "quickstart.yaml"

MODEL_NAME = "prescore-quickstart"  # registered model the CLI and the service use by default
MODEL_ALIAS = "champion"  # the alias promotion moves and the service serves

MAX_ITEMS_PER_REQUEST = 100
MAX_TEXT_CHARS = 50_000  # longest evidence text the service accepts by default
# longest text anywhere: the data checks' default and the API schema's ceiling
MAX_TEXT_CHARS_CEILING = 200_000

# the work one request may ask for, in tokens of the scorer's own tokenizer (words for TF-IDF):
# about 16 s of the quick-start MiniLM on 2 CPU cores, e.g. 80 essays of 300 words
MAX_REQUEST_TOKENS = 32_768
MAX_BATCH_TOKENS = 32_768  # tokens of concurrent requests merged into one model call
MAX_QUEUE_SECONDS = 20.0  # longest a request may wait for the model before a 503
# model calls side by side under load, each on its share of torch's threads (TokenBatcher):
# on 2 cores two one-thread calls scored bf16 essays 15-20% faster than one two-thread call
MODEL_STREAMS = 2
MAX_CONCURRENT_REQUESTS = 64  # /score requests in progress at once per API worker

REVIEW_DB = "sqlite:///.prescore/review.db"
AUDIT_RATE = 0.05
IDEMPOTENCY_HOURS = 24.0  # how long a /score receipt answers a retry (then it is deleted)
# a reviewer's session unused this long ends: a reviewer reading a long portfolio and writing
# feedback can go half an hour without a request, and a form posted after the session ended
# loses what was typed; an hour still ends the session of one who left a shared screen
SESSION_IDLE_MINUTES = 60.0
READY_TIMEOUT_SECONDS = 180.0
SHUTDOWN_GRACE_SECONDS = 20  # what requests in flight get to finish when the server stops
# the bar reviewers are held to on adjudicated submissions; the QWK is the model's own gate
REVIEWER_MIN_QWK = 0.70
REVIEWER_MIN_DECISION_AGREEMENT = 0.8
