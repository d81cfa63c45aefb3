"""Where a search's Optuna study lives (`search.storage`): SQLite in the run folder by default, a PostgreSQL or
MySQL URL, or an Optuna journal file; resolved against the run folder, opened, named in errors without password."""
from __future__ import annotations

import os

import optuna
import sqlalchemy.exc

from nas.errors import UserError

DEFAULT_FILE = "study.db"
JOURNAL = "journal:"
RDB_SCHEMES = ("sqlite", "postgresql", "mysql")
FORMS = ("sqlite:///PATH, postgresql://USER[:PASSWORD]@HOST[:PORT]/DB, mysql://USER@HOST/DB or journal:PATH "
         "(a relative PATH lies in the run folder; default: sqlite:///study.db)")
STORAGE_ERRORS = (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError)


def storage_problem(value) -> str | None:
    """Why `value` is not a `search.storage` (None when it is one): the syntax only, nothing is opened."""
    if not isinstance(value, str) or not value.strip():
        return f"{value!r} is not a storage"
    if value.startswith(JOURNAL):
        return None if value[len(JOURNAL):].strip() else "journal: needs a file path, e.g. journal:study.log"
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.split("+")[0] not in RDB_SCHEMES:
        return f"'{value}' is not a storage URL"
    if scheme.startswith("sqlite") and not rest.lstrip("/"):
        return "sqlite:/// needs a file path, e.g. sqlite:///study.db"
    if not scheme.startswith("sqlite") and "/" not in rest:
        return f"'{masked(value)}' names no database (.../DB)"
    return None


def check_storage(value, key: str = "search.storage") -> None:
    """A one-line UserError naming `key` and the valid forms when `value` is not a storage."""
    why = storage_problem(value)
    if why:
        raise UserError(f"{key}: {why}; valid: {FORMS}")


def resolve(value: str | None, run_dir: str) -> str:
    """The storage as an absolute URL: the default SQLite file, or `value` with a relative file put in `run_dir`."""
    if value is None:
        return f"sqlite:///{os.path.abspath(os.path.join(run_dir, DEFAULT_FILE))}"
    if value.startswith(JOURNAL):
        return JOURNAL + os.path.abspath(os.path.join(run_dir, os.path.expanduser(value[len(JOURNAL):].strip())))
    scheme, _, rest = value.partition("://")
    if scheme.startswith("sqlite"):
        path = rest[1:] if rest.startswith("/") else rest  # sqlite:///rel, sqlite:////abs
        return f"{scheme}:///{os.path.abspath(os.path.join(run_dir, os.path.expanduser(path)))}"
    return value


def local_file(url: str) -> str | None:
    """The file that holds a resolved storage (SQLite, journal); None for a database server."""
    if url.startswith(JOURNAL):
        return url[len(JOURNAL):]
    scheme, _, rest = url.partition("://")
    return rest[1:] if scheme.startswith("sqlite") else None


def masked(url: str) -> str:
    """The URL with its password shown as ***."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/")[0]:
        return url
    auth, host = rest.split("/")[0].rsplit("@", 1)
    user = auth.split(":", 1)[0] + (":***" if ":" in auth else "")
    return f"{scheme}://{user}@{host}{rest[len(rest.split('/')[0]):]}"


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """The Optuna storage of a resolved URL; an unreachable server or a missing driver is one line."""
    if url.startswith(JOURNAL):
        from optuna.storages.journal import JournalFileBackend

        path = local_file(url)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            return optuna.storages.JournalStorage(JournalFileBackend(path))
        except (OSError, ValueError) as e:
            raise UserError(f"search.storage: journal file {path} cannot be opened ({e})") from None
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs(url))
    except ImportError as e:  # Optuna's "Failed to import DB access module", the driver's name in its cause
        missing = getattr(e.__cause__, "name", None) or "its driver"
        raise UserError(f"search.storage: {masked(url)} needs the database driver module '{missing}' (for "
                        f"postgresql: pip install 'psycopg[binary]')") from None
    except STORAGE_ERRORS as e:
        if local_file(url) is not None:
            raise UserError(unreadable_study(local_file(url), e)) from None
        raise UserError(f"search.storage: cannot use {masked(url)} ({first_line(e)}); start the database server "
                        f"or correct the URL") from None


def engine_kwargs(url: str) -> dict:
    """SQLAlchemy engine options: a server connection checked before use (a worker may wait long between trials)."""
    return {} if url.startswith("sqlite") else {"pool_pre_ping": True}


def first_line(error: BaseException) -> str:
    return (str(getattr(error, "orig", None) or error).strip().splitlines() or [type(error).__name__])[0]


def unreadable_study(where: str, error: BaseException) -> str:
    """One line: the study storage cannot be read, why (the driver's first line), and what to do."""
    return (f"{where}: not a readable Optuna study ({first_line(error)}); move it away (or delete it) to start the "
            f"search over, or restore it from a copy")
