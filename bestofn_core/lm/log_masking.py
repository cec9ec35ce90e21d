"""A logging filter that masks keys inside URLs in the log records of the HTTP clients under the backends.

httpx logs every request's URL at INFO (``HTTP Request: POST http://user:KEY@host/v1/...``), and
httpcore, the OpenAI client, aiohttp and litellm log URLs at DEBUG: a key inside ``api_base`` would
reach whatever collects the logs. ``install_log_masking()`` adds ``MaskURLs`` to those loggers once (a
filter on a logger sees the records it creates; the loggers are named here, as the libraries name them).
"""

from __future__ import annotations

import logging
import threading

from bestofn_core.lm.credentials import mask_urls

#: The loggers whose records may show a request's URL.
HTTP_LOGGERS: tuple[str, ...] = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "openai",
    "openai._base_client",
    "aiohttp.client",
    "LiteLLM",
    "LiteLLM Router",
    "LiteLLM Proxy",
)

_installed = False
_lock = threading.Lock()


class MaskURLs(logging.Filter):
    """Rewrites a record whose message holds a URL with a key: the key becomes ``[REDACTED]``."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record's message in place; never drops a record."""
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted is the handler's problem, not ours
            return True
        masked = mask_urls(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_log_masking() -> None:
    """Add ``MaskURLs`` to every logger of ``HTTP_LOGGERS`` (once per process)."""
    global _installed
    with _lock:
        if _installed:
            return
        mask = MaskURLs()
        for name in HTTP_LOGGERS:
            logging.getLogger(name).addFilter(mask)
        _installed = True
