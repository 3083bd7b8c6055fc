"""Kafka TLS/SASL and ClickHouse credential settings reach the clients that use them."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator

import certifi
import pytest
from pydantic import ValidationError

from ground.settings import Settings
from ingest.kafka_security import kafka_security
from livesales.wiring import kafka_access, server_options
from processors.store import ClickHouse, ServerOptions, open_client
from tests.support.process import ClickHouseHTTPProcess


def test_plaintext_by_default() -> None:
    assert kafka_security(kafka_access(Settings())) == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVESALES_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("LIVESALES_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("LIVESALES_KAFKA_SASL_USERNAME", "ingest")
    monkeypatch.setenv("LIVESALES_KAFKA_SASL_PASSWORD", "kafka-pw")
    monkeypatch.setenv("LIVESALES_KAFKA_SSL_CAFILE", certifi.where())
    settings = Settings()
    assert "kafka-pw" not in repr(settings)  # a secret: never in logs or tracebacks
    opts = kafka_security(kafka_access(settings))
    ctx = opts.pop("ssl_context")
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] > 0  # the CA file was loaded
    assert opts == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "ingest", "sasl_plain_password": "kafka-pw",
    }  # fmt: skip


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_without_credentials_is_refused_at_start(protocol: str) -> None:
    with pytest.raises(ValidationError, match="LIVESALES_KAFKA_SASL_USERNAME"):
        Settings(kafka_security_protocol=protocol)  # type: ignore[arg-type]


def test_unknown_protocol_or_mechanism_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(kafka_security_protocol="TLS")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Settings(kafka_sasl_mechanism="GSSAPI")  # type: ignore[arg-type]


def test_clickhouse_parts_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"USER": "reader", "PASSWORD": "ch-pw", "CA_FILE": "/etc/ch-ca.pem"}.items():
        monkeypatch.setenv(f"LIVESALES_CLICKHOUSE_{name}", value)
    assert server_options(Settings()) == ServerOptions("reader", "ch-pw", ca_file="/etc/ch-ca.pem")
    assert server_options(Settings.model_construct()) == ServerOptions()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseHTTPProcess]:
    root = tmp_path_factory.mktemp("chcreds")
    with ClickHouseHTTPProcess(root / "data", log_path=root / "server.log") as s:
        yield s


async def test_credentials_given_apart_from_the_dsn(server: ClickHouseHTTPProcess) -> None:
    bare = f"http://127.0.0.1:{server.port}/default"
    ch = ClickHouse(bare, options=ServerOptions(user=server.user, password=server.password))
    await ch.open()
    try:
        assert await ch.query("SELECT currentDatabase() AS db") == [{"db": "default"}]
    finally:
        await ch.close()
    wrong = ServerOptions(user=server.user, password="not-it")  # noqa: S106
    with pytest.raises(Exception, match="516"):  # the override wins over the DSN's right password
        open_client(server.dsn, wrong)


def test_https_dsn_really_speaks_tls(server: ClickHouseHTTPProcess) -> None:
    """clickhouse-connect ignores a DSN's scheme; open_client must not send plain HTTP for https://."""
    https = server.dsn.replace("http://", "https://")
    with pytest.raises(Exception, match=r"SSL|TLS|ssl|wrong version"):
        open_client(https)
    assert open_client(https, ServerOptions(secure=False)).command("SELECT 1") == 1  # the override wins


def test_database_override(server: ClickHouseHTTPProcess) -> None:
    admin = open_client(server.dsn)
    admin.command("CREATE DATABASE IF NOT EXISTS other")
    try:
        client = open_client(server.dsn, ServerOptions(database="other"))
        assert client.command("SELECT currentDatabase()") == "other"
    finally:
        admin.command("DROP DATABASE IF EXISTS other")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseHTTPProcess]:
    """The test server behind HTTPS, with a self-signed certificate for 127.0.0.1."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    root = tmp_path_factory.mktemp("chtls")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    with ClickHouseHTTPProcess(root / "data", log_path=root / "server.log", tls=(cert, key)) as s:
        yield s


def test_tls_with_the_ca_file_setting(tls_server: ClickHouseHTTPProcess) -> None:
    assert tls_server.tls is not None
    ca = str(tls_server.tls[0])
    assert open_client(tls_server.dsn, ServerOptions(ca_file=ca)).command("SELECT 1") == 1
    with pytest.raises(Exception, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        open_client(tls_server.dsn)  # a self-signed server is refused without its CA
    plain_dsn = tls_server.dsn.replace("https://", "http://")
    assert open_client(plain_dsn, ServerOptions(secure=True, ca_file=ca)).command("SELECT 2") == 2
