"""The HTTP layer's own choices: TLS contexts, one pool per thread, no cookie jar."""

from __future__ import annotations

import ssl
import threading

import httpx
import pytest
import respx
from apiserver import ApiServer

from autorun_cli.http import HttpClient
from autorun_cli.http.transport import _tls_context


def test_https_verifies_certificates_against_the_ca_bundle():
    ctx = _tls_context("https://api.example.test")
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] > 0  # trust roots loaded


def test_http_base_url_gets_a_context_that_trusts_nothing():
    # No TLS is used for an http base URL (links must keep its scheme); were it ever
    # used, verification must fail rather than pass.
    ctx = _tls_context("http://127.0.0.1:8080")
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.cert_store_stats()["x509_ca"] == 0


def test_a_link_to_https_on_an_http_base_url_is_refused():
    from autorun_cli.errors import BadResponseError

    http = HttpClient("http://api.example.test")
    with pytest.raises(BadResponseError):
        http.resolve("https://api.example.test/next")


def test_each_thread_sends_on_its_own_pool_and_close_closes_them_all(api_server: ApiServer):
    http = HttpClient(api_server.url, headers={"Authorization": f"Bearer {api_server.token}"})
    seen: dict[int, int] = {}
    errors: list[BaseException] = []
    together = threading.Barrier(4, timeout=30)  # all four alive at once: distinct threads

    def fetch(n: int) -> None:
        try:
            doc = http.get_json("/automation-runs/run_123")
            assert doc["data"]["id"] == "run_123"
            seen[threading.get_ident()] = id(http._client)
            together.wait()
            # The same thread keeps its client for the next request.
            http.get_json("/automation-runs/run_123")
            assert id(http._client) == seen[threading.get_ident()]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fetch, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(seen.values())) == 4
    clients = list(http._clients)
    assert len(clients) == 4
    http.close()
    assert all(c.is_closed for c in clients)
    # A closed HttpClient that is used again opens a fresh pool rather than failing.
    assert http.get_json("/automation-runs/run_123")["data"]["id"] == "run_123"
    http.close()


def test_a_set_cookie_is_never_sent_back():
    with respx.mock(base_url="https://api.example.test") as mock:
        first = mock.get("/one").mock(return_value=httpx.Response(200, json={}, headers={"Set-Cookie": "session=abc; Path=/"}))
        second = mock.get("/two").mock(return_value=httpx.Response(200, json={}))
        http = HttpClient("https://api.example.test")
        http.get_json("/one")
        http.get_json("/two")
        assert first.called and second.called
        assert "cookie" not in second.calls.last.request.headers
        http.close()
