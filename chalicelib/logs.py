"""JSON log lines: every line the app writes is one JSON object (docs/logs.md).

Inside a request each line carries the request's id, method and route, so that
one CloudWatch Logs Insights query (`filter request_id = "..."`) finds all the
lines of one request. chalicelib/web.py installs the handler on the
"delivery_api" logger hierarchy (the access log, delivery_api.db, ...) and
keeps the per-request fields the formatter reads.
"""

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

# A record whose `json_line` attribute is set is already one JSON line (the
# access log builds its own): it is written as it is.
LINE_ATTRIBUTE = "json_line"
# A record's `fields` (logger.info("...", extra={"fields": {...}})) are added to
# its object, after the standard keys, which they cannot replace.
FIELDS_ATTRIBUTE = "fields"


def dumps(fields: Mapping[str, Any]) -> str:
    """One JSON object on one line: json.dumps escapes newlines and every
    non-ASCII character, so no value can start a second line or forge one."""
    return json.dumps(fields, default=str)


class JsonFormatter(logging.Formatter):
    """A record as one JSON object: level, logger, the current request's fields
    (request_id, method, route; request_id null outside a request), the message,
    the record's own `fields`, and a traceback as one escaped string."""

    def __init__(self, context: Callable[[], Mapping[str, Any]]) -> None:
        super().__init__()
        self._context = context

    def format(self, record: logging.LogRecord) -> str:
        line = getattr(record, LINE_ATTRIBUTE, None)
        if isinstance(line, str):
            return line
        fields: dict[str, Any] = {"level": record.levelname, "logger": record.name,
                                  **self._context(), "message": record.getMessage()}
        extra = getattr(record, FIELDS_ATTRIBUTE, None)
        if isinstance(extra, Mapping):
            for key, value in extra.items():
                fields.setdefault(str(key), value)
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        return dumps(fields)
