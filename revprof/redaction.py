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
# ``=``, or ``=`` percent-encoded once or more (``%3D``, ``%253D``): a password inside an
# encoded value such as libpq's ``options=-c%20password%3Dx``.
_EQUALS = r"(?:=|%(?:25)*3[dD])"
_QUERY_PAIR = re.compile(r"([?&;#])([^=&;#?]*)=([^&;#]*)")
_SECRET_IN_VALUE = re.compile(rf"(?i){_SECRET_KEYS}\s*[=:]")
# A scheme and one or more slashes: ``postgresql://...``, and ``postgresql:/...`` as a path
# library leaves it after collapsing the double slash.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):(/+)")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:/+[^\s'\"<>]*[^\s'\"<>.,:;)\]]")
_KEYWORD_SECRET = re.compile(rf"(?i)\b({_SECRET_KEYS})\s*{_EQUALS}\s*('[^']*'|\"[^\"]*\"|[^\s&;,)]+)")


def _decoded(text: str) -> str:
    """``text`` percent-decoded until it no longer changes (at most 4 times: ``%253D`` -> ``=``)."""
    from urllib.parse import unquote_plus

    for _ in range(4):
        decoded = unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    return text


def _secret_pair(key: str, value: str) -> bool:
    """Whether a query pair holds a password: its key names one (``password``, ``PWD``,
    ``pass%77ord``), or its value, decoded, sets one (``options=-c%20password%3Dx``)."""
    return bool(re.fullmatch(_SECRET_KEYS, _decoded(key).strip(), re.IGNORECASE)
                or _SECRET_IN_VALUE.search(_decoded(value)))


def redact_url(url: str) -> str:
    """``url`` with the password of its user part and any ``password=`` query value as ``***``.

    A string without a scheme (a journal file path) is returned as it is, and so is the
    placeholder ``PASSWORD`` of a usage hint.
    """
    scheme = _SCHEME.match(url)
    if scheme is None:
        return url
    rest = url[scheme.end():]
    query_at = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    before, after = rest[:query_at], rest[query_at:]
    at = before.rfind("@")  # the last @: a password may hold an unencoded @ or /
    if at >= 0:
        user, sep, password = before[:at].partition(":")
        shown = password if password == "PASSWORD" else MASK
        before = f"{user}{sep}{shown if sep else ''}@{before[at + 1:]}"
    after = _QUERY_PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}={MASK}"
                            if _secret_pair(m.group(2), m.group(3)) else m.group(0), after)
    return f"{scheme.group(0)}{before}{after}"


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (:func:`redact_url`) and every ``password=...``
    keyword value (a libpq connection string in a driver's message) masked."""
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    return _KEYWORD_SECRET.sub(lambda m: f"{m.group(1)}={MASK}", text)
