"""ML-metadata in MySQL (MariaDB): `bertpipe run --metadata_mysql_*`, then `bertpipe lineage` on it.

A real server, not a mock, from one of two places:
  - a server of yours, named by BERTPIPE_TEST_MYSQL_HOST, _PORT (default 3306), _USER,
    _PASSWORD, _DATABASE (default mlmd, must be empty) and optionally _SOCKET: the GitHub
    workflow's test job gives a MariaDB service container this way;
  - otherwise the fixture starts a private `mariadbd` on a temporary data directory, a socket
    and a free loopback port, makes a database and a user with the `mariadb` client, and
    stops the server afterwards. `make test` installs the binaries first (.ci/test-services).
Without either the tests fail and say how to get one, so they are never silently skipped.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Optional

import ml_metadata as mlmd
import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import cli
from conftest import TINY_RUN_FLAGS, corpus_slice as _corpus_slice

pytestmark = pytest.mark.e2e

DATABASE, USER, PASSWORD = "mlmd", "bertpipe", "lineage-test"
INSTALL_HINT = ("install MariaDB's server with `sudo apt-get install -y mariadb-server-core mariadb-client-core` "
                "(`make test` does it when it can), or name a server of yours with BERTPIPE_TEST_MYSQL_HOST, "
                "_PORT, _USER, _PASSWORD (docs/ci.md)")
EXTERNAL_ENV = "BERTPIPE_TEST_MYSQL_"


def _binary(name: str) -> str:
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)),
                                      None)
    if path is None:
        pytest.fail(f"{name} not found: {INSTALL_HINT}.")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _external_server(environ) -> dict:
    """The server named by BERTPIPE_TEST_MYSQL_*: it must hold an empty database the user owns."""
    server = {"host": environ[EXTERNAL_ENV + "HOST"], "port": int(environ.get(EXTERNAL_ENV + "PORT", "3306")),
              "user": environ.get(EXTERNAL_ENV + "USER", ""), "password": environ.get(EXTERNAL_ENV + "PASSWORD", ""),
              "database": environ.get(EXTERNAL_ENV + "DATABASE", DATABASE),
              "socket": environ.get(EXTERNAL_ENV + "SOCKET") or None}
    config = metadata_store_pb2.ConnectionConfig()
    config.mysql.host, config.mysql.port, config.mysql.database = server["host"], server["port"], server["database"]
    config.mysql.user, config.mysql.password = server["user"], server["password"]
    try:
        store = mlmd.MetadataStore(config)
    except Exception as e:  # pylint: disable=broad-except
        pytest.fail(f"{EXTERNAL_ENV}HOST: cannot use database {server['database']!r} at {server['host']}:"
                    f"{server['port']} as {server['user']!r}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    if store.get_contexts() or store.get_artifacts():
        pytest.fail(f"{EXTERNAL_ENV}DATABASE: database {server['database']!r} at {server['host']}:{server['port']} "
                    f"already holds ML-metadata; give an empty one (DROP and CREATE it).")
    return server


@pytest.fixture(scope="module")
def mariadb():
    if os.environ.get(EXTERNAL_ENV + "HOST"):
        yield _external_server(os.environ)
        return
    server, install_db, client = _binary("mariadbd"), _binary("mariadb-install-db"), _binary("mariadb")
    # Not under pytest's tmp dir: that is private to its user, and the server runs as `mysql` when we are root.
    base = tempfile.mkdtemp(prefix="bertpipe-mariadb-")
    datadir, sock, port = os.path.join(base, "data"), os.path.join(base, "mysqld.sock"), _free_port()
    user_flags = []
    if os.geteuid() == 0:
        # mariadbd refuses to run as root unless told to. The full mariadb-server package
        # creates a `mysql` user; the binaries-only packages `make test` installs do not.
        try:
            shutil.chown(base, "mysql", "mysql")
            user_flags = ["--user=mysql"]
        except LookupError:
            user_flags = ["--user=root"]
    subprocess.run([install_db, "--no-defaults", *user_flags, f"--datadir={datadir}",
                    "--auth-root-authentication-method=normal", "--skip-test-db"],
                   check=True, capture_output=True, timeout=120)
    log = open(os.path.join(base, "server.log"), "w")
    process = subprocess.Popen([server, "--no-defaults", *user_flags, f"--datadir={datadir}", f"--socket={sock}",
                                f"--port={port}", "--bind-address=127.0.0.1", "--skip-name-resolve",
                                f"--pid-file={os.path.join(base, 'mysqld.pid')}"], stdout=log, stderr=log)
    try:
        as_root = [client, "--no-defaults", f"--socket={sock}", "--user=root"]
        deadline = time.monotonic() + 60
        while subprocess.run(as_root + ["-e", "SELECT 1"], capture_output=True).returncode != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(base, "server.log")) as f:
                    pytest.fail(f"mariadbd did not start:\n{f.read()[-2000:]}")
            time.sleep(0.3)
        subprocess.run(as_root + ["-e", f"CREATE DATABASE {DATABASE}; "
                                        f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; "
                                        f"GRANT ALL ON {DATABASE}.* TO '{USER}'@'127.0.0.1'; "
                                        # A socket connection is the user @localhost.
                                        f"CREATE USER '{USER}'@'localhost' IDENTIFIED BY '{PASSWORD}'; "
                                        f"GRANT ALL ON {DATABASE}.* TO '{USER}'@'localhost';"],
                       check=True, capture_output=True)
        yield {"host": "127.0.0.1", "port": port, "user": USER, "password": PASSWORD, "database": DATABASE,
               "socket": sock}
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def _mysql_flags(server: dict, password: Optional[str] = None) -> list[str]:
    return ["--metadata_mysql_host", server["host"], "--metadata_mysql_port", str(server["port"]),
            "--metadata_mysql_database", server["database"], "--metadata_mysql_user", server["user"],
            "--metadata_mysql_password", server["password"] if password is None else password]


def test_run_on_mysql_then_lineage_from_it(mariadb, tmp_path, capsys):
    corpus = _corpus_slice(str(tmp_path / "corpus.txt"))
    flags = _mysql_flags(mariadb)
    assert cli.main(["run", "--corpus", corpus, "--output_dir", str(tmp_path)] + TINY_RUN_FLAGS + flags) == 0
    assert f"MySQL database '{mariadb['database']}' at {mariadb['host']}:{mariadb['port']}" in capsys.readouterr().out
    assert not os.path.exists(tmp_path / "metadata.sqlite")

    # What the server holds, read with MLMD's own client: the expected answers.
    config = metadata_store_pb2.ConnectionConfig()
    config.mysql.host, config.mysql.port = mariadb["host"], mariadb["port"]
    config.mysql.database, config.mysql.user, config.mysql.password = (mariadb["database"], mariadb["user"],
                                                                      mariadb["password"])
    store = mlmd.MetadataStore(config)
    [model] = store.get_artifacts_by_type("Model")
    [vocabulary] = store.get_artifacts_by_type("components.Vocabulary")
    [run] = store.get_contexts_by_type("pipeline_run")

    assert cli.main(["lineage", "runs", "--json"] + flags) == 0
    [row] = json.loads(capsys.readouterr().out)["result"]
    assert row["run_id"] == run.name and row["status"] == "complete" and row["blessed"] is True
    assert row["model"]["uri"] == model.uri and set(row["metrics"]) == {
        "masked_lm_accuracy", "masked_lm_loss", "next_sentence_accuracy", "next_sentence_loss"}

    assert cli.main(["lineage", "model", "latest", "--json"] + flags) == 0
    lineage = json.loads(capsys.readouterr().out)["result"]
    assert lineage["model"]["id"] == str(model.id)
    assert lineage["vocabulary"]["id"] == str(vocabulary.id)
    assert lineage["corpus_files"][0]["path"] == corpus
    assert lineage["code_version"]["package_version"]



def test_the_same_store_through_the_servers_socket(mariadb, capsys):
    """`--metadata_mysql_socket` instead of host and port: the same answer (a server of yours is
    checked this way only when it names its socket)."""
    if mariadb["socket"] is None:
        pytest.skip(f"{EXTERNAL_ENV}SOCKET is not set: the external server's socket connection is not checked.")
    assert cli.main(["lineage", "runs", "--json"] + _mysql_flags(mariadb)) == 0
    over_tcp = json.loads(capsys.readouterr().out)["result"]
    socket_flags = ["--metadata_mysql_socket", mariadb["socket"], "--metadata_mysql_database", mariadb["database"],
                    "--metadata_mysql_user", mariadb["user"], "--metadata_mysql_password", mariadb["password"]]
    assert cli.main(["lineage", "runs", "--json"] + socket_flags) == 0
    assert json.loads(capsys.readouterr().out)["result"] == over_tcp


def test_wrong_mysql_password_is_one_clear_line(mariadb, capsys):
    assert cli.main(["lineage", "runs"] + _mysql_flags(mariadb, password="wrong")) == 2
    [line] = [l for l in capsys.readouterr().err.splitlines() if l.startswith("bertpipe lineage: error:")]
    assert (f"MySQL database '{mariadb['database']}' at {mariadb['host']}:{mariadb['port']}" in line
            and "--metadata_mysql_password" in line)


def test_run_refuses_two_metadata_stores(tmp_path, capsys):
    assert cli.main(["run", "--output_dir", str(tmp_path), "--metadata_path", str(tmp_path / "m.sqlite"),
                     "--metadata_mysql_database", DATABASE]) == 2
    assert "give one" in capsys.readouterr().err
