"""Real PostgreSQL and MariaDB databases for tests, one fresh database per test module.

The servers are the machine's own (PostgreSQL on 127.0.0.1:5432 as ``postgres``, MariaDB on
127.0.0.1:3306 as ``root``, no passwords); override with MEDIA_PIPELINE_TEST_POSTGRES_URL /
MEDIA_PIPELINE_TEST_MYSQL_URL (a URL to an administrative database). A server that is down is
started if this user can; otherwise the tests that need it are skipped with the reason.
Import into a test module with ``from media_pipeline_tests.fixtures_db import *``.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

__all__ = ["postgres_url", "mysql_url"]

POSTGRES_ADMIN_URL = os.environ.get(
    "MEDIA_PIPELINE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MYSQL_ADMIN_URL = os.environ.get(
    "MEDIA_PIPELINE_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/mysql")
START_COMMANDS = {
    "postgresql": (["pg_ctlcluster", "15", "main", "start"], ["service", "postgresql", "start"]),
    "mysql": (["service", "mariadb", "start"], ["service", "mysql", "start"]),
}
START_COMMANDS["mariadb"] = START_COMMANDS["mysql"]
DRIVERS = {"postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}


def _connectable(url: sa.URL) -> str | None:
    """None when the server answers, else why not."""
    engine = sa.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        return None
    except Exception as exc:  # any driver error means "not usable here"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        engine.dispose()


def _server(admin_url: str) -> sa.URL:
    """The admin URL of a running server, starting it once if needed; skips if impossible."""
    url = sa.make_url(admin_url)
    backend = url.get_backend_name()
    try:
        __import__(DRIVERS.get(backend, backend))
    except ImportError as exc:
        pytest.skip(f"{backend} driver not installed: {exc}")
    reason = _connectable(url)
    if reason is None:
        return url
    for command in START_COMMANDS.get(backend, ()):
        try:
            subprocess.run(command, capture_output=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if _connectable(url) is None:
            return url
    pytest.skip(f"{backend} at {url.render_as_string(hide_password=True)} is not reachable "
                f"and could not be started: {reason}")


def _fresh_database(admin_url: str, prefix: str) -> Iterator[str]:
    """Create a uniquely named database, yield its URL, drop it afterwards."""
    admin = _server(admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    postgres = admin.get_backend_name() == "postgresql"
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            force = " WITH (FORCE)" if postgres else ""
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}{force}")
        engine.dispose()


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """URL of a fresh PostgreSQL database for this module (``postgresql+psycopg://…``)."""
    yield from _fresh_database(POSTGRES_ADMIN_URL, "mp_sources_test")


@pytest.fixture(scope="module")
def mysql_url() -> Iterator[str]:
    """URL of a fresh MariaDB/MySQL database for this module (``mysql+pymysql://…``)."""
    yield from _fresh_database(MYSQL_ADMIN_URL, "mp_sources_test")
