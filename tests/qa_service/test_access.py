"""Who may do what: API keys on the read endpoints, the admin token, the rate limit, the body limit."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from qa_service.api import create_app
from qa_service.settings import ServiceSettings
from tests.conftest import ADMIN_TOKEN, LiveServer

QUESTION = {"question": "How is an overdose of baclofen handled?"}


def serve(settings: ServiceSettings, **changes: object) -> LiveServer:
    return LiveServer(create_app(settings.model_copy(update=changes)))


def test_read_endpoints_need_a_key_once_keys_are_set(seed_settings: ServiceSettings, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# staff\nfile-key\n\n", encoding="utf-8")
    with serve(seed_settings, api_keys=["k1", "k2"], api_keys_file=keys_file) as live, \
            httpx.Client(base_url=live.url, timeout=60) as http:
        for method, path, body in [("POST", "/v1/ask", QUESTION), ("GET", "/v1/search?q=dose", None),
                                   ("GET", "/v1/documents", None)]:
            missing = http.request(method, path, json=body)
            assert missing.status_code == 401, path
            assert missing.json()["error"]["code"] == "missing_api_key"
            assert missing.headers["WWW-Authenticate"] == "Bearer"
            wrong = http.request(method, path, json=body, headers={"Authorization": "Bearer k3"})
            assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
            for key in ("k1", "k2", "file-key"):
                assert http.request(method, path, json=body, headers={"Authorization": f"Bearer {key}"}).status_code == 200
        # the widget's files, health and metrics stay open: the page must load to send its key
        for path in ("/", "/widget.js", "/healthz", "/readyz", "/metrics"):
            assert http.get(path).status_code == 200, path


def test_without_keys_the_read_endpoints_are_open(client: httpx.Client) -> None:
    assert client.post("/v1/ask", json=QUESTION).status_code == 200
    assert client.post("/v1/ask", json=QUESTION, headers={"Authorization": "Bearer anything"}).status_code == 200


@pytest.mark.parametrize("path,method", [("/v1/admin/reload", "POST"), ("/v1/admin/feedback", "GET"),
                                         ("/v1/admin/unanswered", "GET"), ("/v1/admin/queries", "DELETE")])
def test_admin_endpoints_need_the_admin_token(client: httpx.Client, path: str, method: str) -> None:
    missing = client.request(method, path)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "unauthorized"
    wrong = client.request(method, path, headers={"Authorization": "Bearer test-admin-tokeN"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"
    # an API key is not an admin token
    assert client.request(method, path, headers={"Authorization": "Bearer k1"}).status_code == 401


def test_admin_endpoints_are_disabled_without_an_admin_token(seed_settings: ServiceSettings) -> None:
    with serve(seed_settings, admin_token=None) as live:
        for method, path in [("POST", "/v1/admin/reload"), ("GET", "/v1/admin/unanswered"),
                             ("DELETE", "/v1/admin/queries")]:
            response = httpx.request(method, live.url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert response.status_code == 403 and response.json()["error"]["code"] == "admin_disabled"


def test_the_rate_limit_answers_429_with_retry_after(seed_settings: ServiceSettings) -> None:
    with serve(seed_settings, rate_limit="3/minute", api_keys=["alice", "bob"]) as live, \
            httpx.Client(base_url=live.url, timeout=60) as http:
        alice = {"Authorization": "Bearer alice"}
        statuses = [http.get("/v1/search", params={"q": "dose"}, headers=alice).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = http.post("/v1/ask", json=QUESTION, headers=alice)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited" and "3/minute" in refused.json()["error"]["message"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # each key has its own budget; health is never limited
        assert http.get("/v1/search", params={"q": "dose"}, headers={"Authorization": "Bearer bob"}).status_code == 200
        assert all(http.get("/healthz").status_code == 200 for _ in range(5))


def test_a_bad_rate_limit_setting_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="not a rate limit"):
        ServiceSettings(rate_limit="sixty a minute")


def test_an_oversized_body_is_refused_with_413_before_it_is_read(client: httpx.Client) -> None:
    huge = json.dumps({"question": "dose?", "padding": "x" * 200_000})
    response = client.post("/v1/ask", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    # a body that lies about its length is cut off too
    def chunks():  # noqa: ANN202
        for _ in range(40):
            yield b"x" * 8192
    streamed = client.post("/v1/feedback", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    assert client.post("/v1/ask", json=QUESTION).status_code == 200
