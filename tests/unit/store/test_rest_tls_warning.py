"""The REST client warns, once per URL, when a token would go over plain HTTP to another
machine; never for loopback addresses or https."""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("httpx", reason="the remote extra (luminary[remote]) is not installed")

from luminary.store._rest import CleartextTokenWarning, RestStore


def _open(url: str, token: str | None = "lum_x") -> None:
    RestStore(url, token=token).close()


def test_a_token_over_http_to_another_host_warns_once_per_url() -> None:
    with pytest.warns(CleartextTokenWarning, match=r"unencrypted.*luminary\.lab\.example.*TLS"):
        _open("http://luminary.lab.example:5000")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second client for the same URL stays quiet
        _open("http://luminary.lab.example:5000")
    with pytest.warns(CleartextTokenWarning, match="10.1.2.3"):
        _open("http://10.1.2.3:5000/")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5000",
        "http://localhost:5000",
        "http://[::1]:5000",
        "https://luminary.lab.example",
    ],
)
def test_loopback_and_https_do_not_warn(url: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _open(url)


def test_no_token_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _open("http://luminary.other.example:5000", token=None)
