"""Secrets out of anything shown: the one place URLs and error texts are redacted.

Every URL, URI or error message that regressops prints, logs, stores as a tag or writes in a
report goes through :func:`redact_text` (free text, any number of URLs) or :func:`redact_url`
(a database URL shown on its own: password and secret-looking query parameters dropped).

>>> redact_text("cannot connect to postgresql://bob:hunter2@host/db: refused")
'cannot connect to postgresql://bob:***@host/db: refused'
>>> redact_text("postgresql://:pw@host/db and mysql://u:p@ss@h/d?password=x&sslmode=on")
'postgresql://:***@host/db and mysql://u:***@h/d?password=***&sslmode=on'
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import URL

__all__ = ["SECRET_PARAM", "redact_text", "redact_url"]

#: Query-string or keyword names whose values are secrets.
SECRET_PARAM = re.compile(r"pass|secret|token|key|credential|pwd", re.IGNORECASE)

# scheme://userinfo@ — userinfo runs to the last "@" before white space (a password may itself
# hold "@", ":", "/", "%" or even "://"); a username without a password is kept. Two URLs with
# no white space between them are masked as one (text is lost, never a password).
_SCHEME = r"\b[A-Za-z][A-Za-z0-9+.\-]*://"
_USERINFO = re.compile(rf"(?P<scheme>{_SCHEME})(?P<userinfo>\S*)@")
# ?password=x or &api_key=y inside a URL's query string
_QUERY_SECRET = re.compile(r"(?P<key>[?&;][^=&\s#]+)=(?P<value>[^&\s#]*)")
# libpq keyword form: "host=db password=x" (also password='x y')
_KEYWORD_SECRET = re.compile(
    r"(?P<key>\b[A-Za-z_]*(?:password|passwd|pwd|secret|token)[A-Za-z_]*\s*=\s*)"
    r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s&]+)",
    re.IGNORECASE,
)


def _mask_userinfo(match: re.Match[str]) -> str:
    userinfo = match["userinfo"]
    if ":" not in userinfo:
        return match.group(0)
    user = userinfo.split(":", 1)[0]
    return f"{match['scheme']}{user}:***@"


def _mask_query(match: re.Match[str]) -> str:
    if SECRET_PARAM.search(match["key"]):
        return f"{match['key']}=***"
    return match.group(0)


def redact_text(text: str) -> str:
    """Mask every password inside ``text``: ``user:password@`` in URLs (also an empty user, and
    passwords holding ``@``, ``:`` or ``%``), secret query parameters (``?password=…``,
    ``&api_key=…``) and libpq keywords (``password=…``).

    Parameters
    ----------
    text : str
        An error message, a URL or any text that may hold credentials.

    Returns
    -------
    str
        The text with each secret replaced by ``***``.
    """
    text = _USERINFO.sub(_mask_userinfo, text)
    text = _QUERY_SECRET.sub(_mask_query, text)
    return _KEYWORD_SECRET.sub(lambda m: f"{m['key']}***", text)


def redact_url(url: URL | str) -> str:
    """A database URL as it may be shown: no password, no secret-looking query parameters.

    Parameters
    ----------
    url : sqlalchemy.URL or str
        The URL; text that SQLAlchemy cannot parse is redacted with :func:`redact_text`.

    Returns
    -------
    str
        ``driver://user@host:port/db?safe=params``.
    """
    import sqlalchemy

    try:
        parsed = sqlalchemy.make_url(url) if isinstance(url, str) else url
    except Exception:
        return redact_text(str(url))
    query = {k: v for k, v in parsed.query.items() if not SECRET_PARAM.search(k)}
    clean = sqlalchemy.URL.create(
        parsed.drivername,
        username=parsed.username,
        host=parsed.host,
        port=parsed.port,
        database=parsed.database,
        query=query,
    )
    return redact_text(clean.render_as_string(hide_password=False))
