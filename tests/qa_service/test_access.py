"""Who may do what: API keys on the read endpoints, the admin token, the rate limit, the body limit."""

from __future__ import annotations

import json
import re
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
                                         ("/v1/admin/unanswered", "GET"), ("/v1/admin/queries", "DELETE"),
                                         ("/v1/admin/unanswered/groups", "GET"), ("/v1/admin/thumbs-down", "GET"),
                                         ("/v1/admin/most-asked", "GET")])
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
                             ("DELETE", "/v1/admin/queries"), ("GET", "/v1/admin/unanswered/groups"),
                             ("GET", "/v1/admin/thumbs-down"), ("GET", "/v1/admin/most-asked")]:
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


# --- configured but empty, failed logins, public keys, operators' pages -----------------------------------


def test_a_keys_file_emptied_during_a_rotation_is_refused_on_reload(seed_settings: ServiceSettings,
                                                                    tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("old-key\n", encoding="utf-8")
    with serve(seed_settings, api_keys_file=keys_file) as live, httpx.Client(base_url=live.url, timeout=60) as http:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        keys_file.write_text("# rotating: new keys follow\n\n", encoding="utf-8")
        refused = http.post("/v1/admin/reload", headers=admin)
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "reload_refused"
        assert "holds no key" in refused.json()["error"]["message"]
        # still closed, and the old key still serves
        assert http.get("/v1/documents").status_code == 401
        assert http.get("/v1/documents", headers={"Authorization": "Bearer old-key"}).status_code == 200
        keys_file.write_bytes(b"new-key-\xff\n")
        refused = http.post("/v1/admin/reload", headers=admin)
        assert refused.status_code == 409 and "not UTF-8" in refused.json()["error"]["message"]
        keys_file.write_text("new-key\n", encoding="utf-8")
        assert http.post("/v1/admin/reload", headers=admin).status_code == 200
        assert http.get("/v1/documents", headers={"Authorization": "Bearer old-key"}).status_code == 401
        assert http.get("/v1/documents", headers={"Authorization": "Bearer new-key"}).status_code == 200


def test_an_admin_token_shorter_than_16_characters_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        ServiceSettings(admin_token="letmein")
    assert ServiceSettings(admin_token="").admin_token is None  # empty: unset, the admin endpoints disabled


def test_failed_keys_and_tokens_are_throttled_per_address(seed_settings: ServiceSettings) -> None:
    defaults = ServiceSettings()
    with serve(seed_settings, api_keys=["the-right-key"], auth_failure_limit=defaults.auth_failure_limit,
               admin_rate_limit=defaults.admin_rate_limit) as live, \
            httpx.Client(base_url=live.url, timeout=60) as http:
        budget = int(defaults.auth_failure_limit.split("/")[0])
        right = {"Authorization": "Bearer the-right-key"}
        assert http.get("/v1/documents", headers=right).status_code == 200  # a success costs nothing
        guesses = [http.get("/v1/documents", headers={"Authorization": f"Bearer guess-{i}"}) for i in range(budget // 2)]
        guesses += [http.post("/v1/admin/reload", headers={"Authorization": f"Bearer admin-guess-{i:08d}"})
                    for i in range(budget - len(guesses))]
        assert [r.status_code for r in guesses] == [401] * budget
        throttled = http.get("/v1/documents", headers={"Authorization": "Bearer guess-x"})
        assert throttled.status_code == 429 and throttled.json()["error"]["code"] == "too_many_failures"
        assert 1 <= int(throttled.headers["Retry-After"]) <= 60
        # once throttled, this address can't try anything, the right key and the admin token included
        assert http.get("/v1/documents", headers=right).status_code == 429
        assert http.post("/v1/admin/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 429
        # the other address is not throttled
        with httpx.Client(base_url=live.url, timeout=60,
                          transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
            assert other.get("/v1/documents", headers=right).status_code == 200


def test_the_admin_endpoints_have_a_budget_of_their_own(seed_settings: ServiceSettings) -> None:
    with serve(seed_settings, admin_rate_limit="3/minute") as live, httpx.Client(base_url=live.url, timeout=60) as http:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        statuses = [http.get("/v1/admin/unanswered", headers=admin).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        assert http.post("/v1/ask", json=QUESTION).status_code == 200  # the read endpoints are not spent


def test_a_public_key_is_counted_per_visitor_address(seed_settings: ServiceSettings) -> None:
    with serve(seed_settings, rate_limit="2/minute", api_keys=["staff-key"], public_api_keys=["widget-key"]) as live:
        visitors = [httpx.Client(base_url=live.url, timeout=60, transport=httpx.HTTPTransport(local_address=address))
                    for address in ("127.0.0.1", "127.0.0.2")]
        try:
            first, second = visitors
            widget, staff = {"Authorization": "Bearer widget-key"}, {"Authorization": "Bearer staff-key"}
            assert [first.get("/v1/documents", headers=widget).status_code for _ in range(3)] == [200, 200, 429]
            # one visitor's burst leaves the other visitors of the page their own budget
            assert second.get("/v1/documents", headers=widget).status_code == 200
            # a key that is not public is one budget wherever it comes from
            assert [first.get("/v1/documents", headers=staff).status_code for _ in range(2)] == [200, 200]
            assert second.get("/v1/documents", headers=staff).status_code == 429
        finally:
            for visitor in visitors:
                visitor.close()


OPS_PATHS = ("/metrics", "/readyz", "/docs", "/redoc", "/openapi.json")


def test_operators_pages_can_be_put_behind_a_key(seed_settings: ServiceSettings) -> None:
    app = create_app(seed_settings.model_copy(update={"api_keys": ["k1"], "protect_ops": True}))
    with LiveServer(app, ready_path="/healthz") as live, httpx.Client(base_url=live.url, timeout=60) as http:
        app.state.service.wait(120)  # loaded: /readyz then answers 200 to a key
        for path in OPS_PATHS:
            refused = http.get(path)
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "missing_api_key", path
            assert http.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401, path
            for secret in ("k1", ADMIN_TOKEN):
                allowed = http.get(path, headers={"Authorization": f"Bearer {secret}"}, follow_redirects=True)
                assert allowed.status_code == 200, path
        assert http.get("/healthz").status_code == 200  # liveness stays open
    with pytest.raises(ValueError, match="protect_ops needs"):
        ServiceSettings(protect_ops=True)


def test_the_api_pages_load_nothing_from_elsewhere(client: httpx.Client) -> None:
    for path, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "swagger-ui-bundle.js")):
        page = client.get(path, follow_redirects=True)
        assert page.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(src.startswith("/") for src in sources), sources
        assert any(src.endswith(asset) for src in sources)
        for src in sources:
            assert client.get(src).status_code == 200, src
        policy = page.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "https:" not in policy and "'unsafe-inline'" not in policy.split(";")[1]
