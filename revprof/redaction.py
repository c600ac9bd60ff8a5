"""Passwords out of everything revprof shows: one function for a store URL, one for free text.

:func:`redact_url` parses the URL by hand instead of with :func:`urllib.parse.urlsplit`, which
refuses some URLs (a bad IPv6 host raises) and cuts the authority at the first ``/`` (so a
password with an unencoded ``/`` would half show). Every message, header, report and log line
that can hold a store URL goes through :func:`redact_text`.

Example:
    >>> redact_url("postgresql://revprof:p@ss/w@db:5432/sweeps?password=x&sslmode=require")
    'postgresql://revprof:***@db:5432/sweeps?password=***&sslmode=require'
"""

from __future__ import annotations

import re

MASK = "***"
_SECRET_KEYS = r"(?:password|passwd|pwd|pass)"
_QUERY_SECRET = re.compile(rf"(?i)(^|[?&;])({_SECRET_KEYS})=([^&;#]*)")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]*[^\s'\"<>.,:;)\]]")
_KEYWORD_SECRET = re.compile(rf"(?i)\b({_SECRET_KEYS})\s*=\s*('[^']*'|\"[^\"]*\"|[^\s&;,)]+)")


def redact_url(url: str) -> str:
    """``url`` with the password of its user part and any ``password=`` query value as ``***``.

    A string without ``://`` (a journal file path) is returned as it is, and so is the
    placeholder ``PASSWORD`` of a usage hint.
    """
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    query_at = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    before, after = rest[:query_at], rest[query_at:]
    at = before.rfind("@")  # the last @: a password may hold an unencoded @ or /
    if at >= 0:
        user, sep, password = before[:at].partition(":")
        shown = password if password == "PASSWORD" else MASK
        before = f"{user}{sep}{shown if sep else ''}@{before[at + 1:]}"
    after = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}={MASK}", after)
    return f"{scheme}://{before}{after}"


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (:func:`redact_url`) and every ``password=...``
    keyword value (a libpq connection string in a driver's message) masked."""
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    return _KEYWORD_SECRET.sub(lambda m: f"{m.group(1)}={MASK}", text)
