"""The client for applications: produce records, read results, ask and wait.

- `Producer`: records to the input topic, encoded and keyed as the replicas read them;
- `Results` / `DeadLetters`: the results and dead-letter topics as typed items
  (`Result`, `DeadLetter`), read_committed, from the beginning, a time or the end,
  following or not, one per key with `dedup=True`;
- `Client`: `predict()` / `apredict()`, request-reply by key over one shared reader,
  raising `PredictionFailed` for a dead letter and `PredictionTimeout` naming the keys
  still pending.

Every one takes the runtime's settings (`RuntimeSettings`; default `load_settings()`, which
reads `PACKFLOW_*` variables and `packflow.yaml`), so an application is configured as its
replicas are. Nothing touches the network until it is started or first used.
"""

from ..errors import DeliveryError, PredictionFailed, PredictionTimeout
from .predict import Client
from .producer import Producer, record_key
from .results import DeadLetter, DeadLetters, Result, Results, Source

__all__ = [
    "Client",
    "DeadLetter",
    "DeadLetters",
    "DeliveryError",
    "PredictionFailed",
    "PredictionTimeout",
    "Producer",
    "Result",
    "Results",
    "Source",
    "record_key",
]
