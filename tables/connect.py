"""The catalog ``--catalog`` (``iceberg``) or ``--iceberg`` (``detect``) names, opened for publishing an output.

Three ways to name one:

- ``local``: an embedded SQLite catalog inside the output (``OUT/_iceberg/catalog.db``), nothing to run. Only a
  local OUT has one: SQLite cannot live on an object store.
- a SQLAlchemy URI (``sqlite:///cams.db``, ``postgresql://user@host/db``): pyiceberg's SQL catalog on it.
- a catalog's name, configured as pyiceberg users configure catalogs: ``~/.pyiceberg.yaml`` (or
  ``$PYICEBERG_HOME/.pyiceberg.yaml``) and ``PYICEBERG_CATALOG__NAME__KEY`` variables, read afresh at each open
  (pyiceberg's own ``load_catalog`` keeps what it read when imported). SQL on PostgreSQL, Glue, REST, Hive: any
  type pyiceberg has.

An output on S3 gives the catalog the job's storage options for its FileIO (``tables.file_io``); a catalog's own
configuration wins over them. The warehouse is ``--warehouse`` when given, else a named catalog's own, else
``OUT/_iceberg``, except for a REST catalog, whose server places its tables. A catalog that cannot be opened is
one ``UsageError`` line; neither the message nor anything saved holds the catalog's credentials.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, cast

from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.utils.config import Config

from common.errors import UsageError
from common.storage import Location
from schemas import layout
from tables import catalog as sql
from tables.file_io import file_io_properties

LOCAL = "local"
"""The name of the embedded catalog inside a local output."""
LOCAL_DATABASE = "catalog.db"
"""The embedded catalog's SQLite file, in ``OUT/_iceberg``."""


def connect(
    given: str,
    out: Location,
    storage_options: dict[str, Any],
    warehouse: str | None = None,
    flag: str = "--catalog",
) -> Catalog:
    """The catalog ``given`` names (``local``, a SQLAlchemy URI or a configured name), opened for publishing
    ``out``; ``warehouse`` overrides where the tables' files go. ``UsageError`` in one line naming ``flag`` when it
    cannot be opened."""
    default_warehouse = out.child(layout.ICEBERG).uri
    io = file_io_properties(storage_options, out.uri, warehouse or default_warehouse)
    if given == LOCAL:
        if not out.is_local:
            raise UsageError(
                f"{flag} {LOCAL}: the embedded catalog lives in a local output, not in {out.uri}: name a catalog "
                "(a SQLAlchemy URI, or one configured in ~/.pyiceberg.yaml; docs/tables.md)"
            )
        folder = out.child(layout.ICEBERG)
        folder.fs.makedirs(folder.path, exist_ok=True)
        uri = f"sqlite:///{folder.child(LOCAL_DATABASE).path}"
        return sql.open_catalog(uri, warehouse or default_warehouse, flag, io)
    if "://" in given:
        return sql.open_catalog(given, warehouse or default_warehouse, flag, io)
    return _configured(given, io, warehouse, default_warehouse, flag)


def _configured(name: str, io: dict[str, str], warehouse: str | None, default: str, flag: str) -> Catalog:
    """The catalog configured under ``name``, its own properties over ``io``'s."""
    try:
        config = Config().get_catalog_config(name)
    except Exception as exc:  # a malformed file or variable: strictyaml's errors or pyiceberg's ValueError
        raise UsageError(f"{flag}: cannot open {name}: {sql.first_line(exc)}") from None
    if config is None:
        variables = f"PYICEBERG_CATALOG__{name.upper().replace('-', '_')}__* variables"
        raise UsageError(
            f"{flag}: cannot open {name}: no catalog of that name in {_config_file()} nor {variables} "
            f"(or give a SQLAlchemy URI, or {LOCAL}; docs/tables.md)"
        )
    properties: dict[str, Any] = {**io, **config}
    if warehouse is not None:
        properties["warehouse"] = warehouse
    elif "warehouse" not in config and not _rest(config):
        properties["warehouse"] = default
    return sql.opened(name, flag, properties, lambda: load_catalog(name, **cast(dict[str, str], properties)))


def _rest(config: Mapping[str, Any]) -> bool:
    """Whether ``config`` is a REST catalog's: its server places the tables, and its ``warehouse`` names one of
    the server's warehouses, not a path."""
    kind = config.get("type") or ("rest" if str(config.get("uri", "")).startswith("http") else "")
    return str(kind).lower() == "rest"


def _config_file() -> str:
    home = os.environ.get("PYICEBERG_HOME")
    return os.path.join(home, ".pyiceberg.yaml") if home else "~/.pyiceberg.yaml"
