"""Secrets never printed: the one place that decides what a setting's value may show.

A setting whose name holds a secret word (`password`, `secret`, `token`,
`basic.auth.user.info`, `sasl.jaas.config`, key material such as `ssl.key.pem`) shows as
`***`; a URL's user information (`https://user:pass@host`) shows as `***@host`. Every printer
(`packflow run --print-settings`, log events, `packflow status`, `dlq show`, error messages)
passes what it prints through here. The SDK holds it so that its logging can use it; the
runtime imports it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

# Words in a setting's name (lower case, `_` and `-` read as `.`) that make its value secret.
SECRET_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "credential",
    "basic.auth.user.info",
    "sasl.jaas.config",
    "sasl.oauthbearer.config",
    "private.key",
    "ssl.key",
)
# Names holding a secret word whose value is a path or a choice, not the secret itself.
_NOT_SECRET_SUFFIXES = (".location", ".source", ".type", ".endpoint.url")

# scheme://user[:password]@ : the user information of a URL anywhere in a text.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s'\"]+)@")


def is_secret(name: str) -> bool:
    """Whether a setting named `name` holds a secret (`sasl.password`, `SASL_PASSWORD`,
    `ssl.key.pem`, `basic.auth.user.info`); `ssl.key.location` is a path and is not."""
    normal = name.lower().replace("_", ".").replace("-", ".")
    if normal.endswith(_NOT_SECRET_SUFFIXES):
        return False
    return any(word in normal for word in SECRET_WORDS)


def url_without_credentials(url: str) -> str:
    """A URL as messages name it: user information in it (`https://user:pass@host`) shows
    as `***@host`; a URL without any is as given."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redact_text(text: str) -> str:
    """A text (an error message, a header value) with the user information of every URL in
    it shown as `***`."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)


def redact(value: Any, name: str = "") -> Any:
    """`value` as it may be printed: mappings walked (the value of each secret-named key is
    `***`), lists walked, texts with URL credentials cleaned; `name` is the setting the value
    belongs to, if any. Returns a copy; `value` itself is unchanged."""
    if name and is_secret(name) and value not in (None, ""):
        return MASK
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_event(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: the event's fields passed through `redact`."""
    return {k: redact(v, k) for k, v in event.items()}
