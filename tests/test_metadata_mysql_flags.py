"""--metadata_mysql_* flags reach the ML-metadata ConnectionConfig that `bertpipe lineage` and
`bertpipe run` open, port included.

No server listens on the port chosen here, so MLMD's own client refuses the connection and
the command ends with its one-line error; the test reads the ConnectionConfig that was
handed to that client. (tests/test_lineage_mysql.py runs the same flags against a real
MariaDB server.)"""
from __future__ import annotations

import socket

import pytest

from components.lineage import store as store_lib
from conftest import corpus_slice
from pipeline import cli

DATABASE, USER, PASSWORD = "mlmd", "bertpipe", "secret"


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def opened(monkeypatch):
    """The ConnectionConfigs the commands try to open, in order (the real client then fails)."""
    configs = []
    real_connect = store_lib.connect

    def connect(connection_config, description):
        configs.append(connection_config)
        return real_connect(connection_config, description)

    monkeypatch.setattr(store_lib, "connect", connect)
    return configs


def _flags(port=None, socket_path=None):
    flags = ["--metadata_mysql_database", DATABASE, "--metadata_mysql_host", "127.0.0.1",
             "--metadata_mysql_user", USER, "--metadata_mysql_password", PASSWORD]
    if port is not None:
        flags += ["--metadata_mysql_port", str(port)]
    if socket_path is not None:
        flags += ["--metadata_mysql_socket", socket_path]
    return flags


def _mysql(config) -> tuple:
    m = config.mysql
    return m.host, m.port, m.socket, m.database, m.user, m.password


def test_lineage_connects_to_the_port_given_and_to_3306_without_one(opened, capsys):
    port = _unused_port()
    assert cli.main(["lineage", "runs"] + _flags(port)) == 2
    assert f"MySQL database '{DATABASE}' at 127.0.0.1:{port}" in capsys.readouterr().err
    [config] = opened
    assert _mysql(config) == ("127.0.0.1", port, "", DATABASE, USER, PASSWORD)
    # Without the flag: MySQL's port (not tried here: a server may listen there).
    default = cli.mysql_target(cli.build_parser().parse_args(["lineage", "runs"] + _flags()))
    assert _mysql(store_lib.mysql_connection_config(default))[:2] == ("127.0.0.1", 3306)


def test_lineage_through_a_socket_sets_no_host_or_port(opened, tmp_path):
    path = str(tmp_path / "mysqld.sock")
    assert cli.main(["lineage", "runs"] + _flags(_unused_port(), socket_path=path)) == 2
    [config] = opened
    assert _mysql(config) == ("", 0, path, DATABASE, USER, PASSWORD)
    assert not config.mysql.HasField("host") and not config.mysql.HasField("port")


def test_run_connects_to_the_port_given_before_any_step(opened, tmp_path, capsys):
    port = _unused_port()
    corpus = corpus_slice(str(tmp_path / "corpus.txt"), max_bytes=2_000)
    out = tmp_path / "out"
    assert cli.main(["run", "--corpus", corpus, "--output_dir", str(out)] + _flags(port)) == 2
    assert f"MySQL database '{DATABASE}' at 127.0.0.1:{port}" in capsys.readouterr().err
    [config] = opened
    assert _mysql(config) == ("127.0.0.1", port, "", DATABASE, USER, PASSWORD)
    assert not (out / "tfx_root" / "VocabularyGen").exists()  # refused before the first step
