"""Graceful shutdown: SIGTERM while questions are being answered lets every one of them finish."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from qa_service.evaluation import load_gold
from qa_service.settings import ServiceSettings
from tests.conftest import GOLD, wait_ready
from tests.qa_service.test_cli import _serve

REQUESTS = 12

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads the server's sockets from /proc")


def _unread_bytes(pid: int, server_port: int) -> dict[int, int]:
    """Connections the process ``pid`` has accepted on ``server_port``: client port -> bytes received
    that it has not read yet (the socket's receive queue)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    accepted = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, queues, inode = fields[1], fields[2], fields[4], fields[9]
        if inode in inodes and int(local.split(":")[1], 16) == server_port:
            accepted[int(remote.split(":")[1], 16)] = int(queues.split(":")[1], 16)
    return accepted


def test_sigterm_lets_requests_in_flight_finish_then_refuses_connections(seed_settings: ServiceSettings) -> None:
    questions = [q.question for q in load_gold(GOLD) if q.answerable][:REQUESTS]
    # One request answered at a time and no cache: the twelve are still being answered when the signal comes.
    proc, base = _serve("--index", str(seed_settings.index_dir),
                        QA_SERVING__ANSWER_CACHE="0", QA_SERVING__REQUEST_THREADS="1")
    port = int(base.rsplit(":", 1)[1])
    try:
        wait_ready(base + "/readyz", process=proc)
        sent = threading.Barrier(REQUESTS + 1, timeout=60)
        client_ports: dict[int, int] = {}
        results: dict[int, tuple[int, bytes, float] | BaseException] = {}

        def ask(k: int) -> None:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                body = json.dumps({"question": questions[k]}).encode()
                connection.request("POST", "/v1/ask", body=body, headers={"Content-Type": "application/json"})
                client_ports[k] = connection.sock.getsockname()[1]
            except BaseException as exc:
                results[k] = exc
                sent.abort()
                raise
            sent.wait()
            try:
                response = connection.getresponse()
                results[k] = (response.status, response.read(), time.monotonic())
            except BaseException as exc:  # noqa: BLE001 - reported by the assertions below
                results[k] = exc
            finally:
                connection.close()

        threads = [threading.Thread(target=ask, args=(k,), daemon=True) for k in range(REQUESTS)]
        for thread in threads:
            thread.start()
        sent.wait()  # every request has been written to its socket
        # And one request surely in flight at the signal: its body is only half sent.
        slow_body = json.dumps({"question": questions[0]}).encode()
        slow = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        slow.putrequest("POST", "/v1/ask")
        slow.putheader("Content-Type", "application/json")
        slow.putheader("Content-Length", str(len(slow_body)))
        slow.endheaders(slow_body[:10])
        slow_port = slow.sock.getsockname()[1]
        # The server has accepted every connection and read all it was sent (or, on a fast machine,
        # already answered it); the half-sent one is in flight for certain.
        deadline = time.monotonic() + 30
        while True:
            unread = _unread_bytes(proc.pid, port)
            answered = set(results)
            if unread.get(slow_port) == 0 and all(unread.get(p) == 0 or k in answered for k, p in client_ports.items()):
                break
            assert time.monotonic() < deadline, f"the server did not read the requests: {unread} {client_ports}"
            time.sleep(0.002)
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while True:  # the server is shutting down: it accepts no new connection
            try:
                socket.create_connection(("127.0.0.1", port), timeout=10).close()
            except ConnectionRefusedError:
                break
            assert time.monotonic() < deadline, "the server still accepts connections after SIGTERM"
            time.sleep(0.01)
        slow.send(slow_body[10:])  # ... and the half-sent request is still answered, in full
        slow_response = slow.getresponse()
        slow_answer = (slow_response.status, slow_response.read())
        slow.close()
        for thread in threads:
            thread.join(60)
        assert proc.wait(30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)

    for k in range(REQUESTS):
        result = results.get(k)
        assert isinstance(result, tuple), f"request {k} got no answer: {result!r}"
        status, body, _ = result
        assert status == 200, (k, status, body[:300])
        answer = json.loads(body)  # complete: the whole body parses
        assert answer["question"] == questions[k] and isinstance(answer["answers"], list)
    assert slow_answer[0] == 200, slow_answer
    assert json.loads(slow_answer[1])["question"] == questions[0]

    with pytest.raises(ConnectionRefusedError, match="refused"):
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
