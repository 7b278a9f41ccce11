"""What a state store's URL says before anything opens it.

Read with a pattern rather than SQLAlchemy's URL parser (the same grammar, for the one
case asked about), so that `pipeline check` of a project whose store does not exist yet
never imports SQLAlchemy (~0.25 s).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

# sqlite[+driver]://[anything but a slash]/DATABASE[?query], as sqlalchemy.engine.url
# splits it: the database is what follows the first slash after the `://`, up to `?`.
_SQLITE = re.compile(r"sqlite(?:\+\w+)?://[^/?]*(?:/(?P<database>[^?]*))?(?:\?.*)?", re.DOTALL)


def sqlite_file_missing(url: str) -> bool:
    """A SQLite store whose file does not exist yet (connecting would make an empty one);
    read from the URL alone, so asking creates nothing. False for any other database."""
    found = _SQLITE.fullmatch(url)
    database = unquote(found["database"] or "") if found else ""
    if database in ("", ":memory:"):
        return False
    return not Path(database.removeprefix("file:")).exists()
