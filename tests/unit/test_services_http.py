"""The rig's HTTP(S) server: files arrive intact and measured; HTTPS serves clients that trust its CA."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import os
import time
from pathlib import Path

import pytest
import requests
from cryptography import x509

from hil.services.http import HttpServer
from hil.services.tls import make_server_identity


def test_serves_a_file_intact_and_records_the_transfer(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    (tmp_path / "blob").write_bytes(data)
    with HttpServer(tmp_path) as server:
        body = requests.get(server.url("blob"), timeout=10).content
        transfers = server.transfers
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert [(t.path, t.size) for t in transfers] == [("/blob", len(data))]
    assert transfers[0].bytes_per_second > 0


def test_https_date_header_is_the_hosts_time_for_a_client_trusting_the_ca(tmp_path: Path) -> None:
    identity = make_server_identity(["127.0.0.1", "10.0.2.2"])
    ca = tmp_path / "ca.pem"
    ca.write_bytes(base64.b64decode(identity.ca_base64))  # what the DUT decodes from balenaRootCA
    with HttpServer(tmp_path / "www", identity) as server:
        answer = requests.head(server.url(), verify=str(ca), timeout=10)
        with pytest.raises(requests.exceptions.SSLError):
            requests.head(server.url(), timeout=10)  # the system trust store does not know this CA
    served = email.utils.parsedate_to_datetime(answer.headers["Date"]).timestamp()
    assert abs(served - time.time()) < 2  # the header has whole seconds


def test_the_certificate_names_the_addresses_clients_use(tmp_path: Path) -> None:
    identity = make_server_identity(["10.0.2.2", "127.0.0.1"])
    cert = x509.load_pem_x509_certificate(identity.cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {"10.0.2.2", "127.0.0.1"}


def test_stop_removes_a_temporary_root() -> None:
    server = HttpServer().start()
    root = server.root
    server.stop()
    assert not root.exists()
