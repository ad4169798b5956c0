"""The gate in front of every route, on a tiny app of its own: websockets, hosts, origins, bodies."""

from __future__ import annotations

import base64

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from webui.auth.authenticator import Authenticator
from webui.auth.users import UserStore
from webui.guard import Guard

BASIC = {"authorization": "Basic " + base64.b64encode(b"ann:ann-password").decode()}


async def echo(websocket):
    await websocket.accept()
    await websocket.send_text(websocket.scope["state"]["user"].name)
    await websocket.close()


async def change(request):
    body = await request.body()
    return PlainTextResponse(f"{request.scope['state']['user'].name}:{len(body)}")


@pytest.fixture
def client(tmp_path):
    users = UserStore(tmp_path / "users.json")
    users.add("ann", "ann-password")
    app = Starlette(routes=[WebSocketRoute("/ws", echo), Route("/change", change, methods=["POST"])])
    guard = Guard(app, auth=Authenticator(users), allowed_hosts={"testserver", "studio.lan"}, max_body_bytes=1000)
    return TestClient(guard, base_url="http://testserver")


def test_a_websocket_needs_a_login_and_our_origin(client):
    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/ws"):
            pass
    with pytest.raises(WebSocketDisconnect):  # a page of another site riding the user's credentials
        with client.websocket_connect("/ws", headers={**BASIC, "origin": "http://attacker.example"}):
            pass
    with client.websocket_connect("/ws", headers={**BASIC, "origin": "http://testserver"}) as ws:
        assert ws.receive_text() == "ann"


def test_hosts_origins_and_bodies(client):
    assert client.post("/change", headers=BASIC, content=b"x" * 10).text == "ann:10"
    assert client.post("/change", headers={**BASIC, "host": "attacker.example"}).status_code == 400
    assert client.post("/change", headers={**BASIC, "host": "studio.lan:7860"}).status_code == 200
    assert client.post("/change", headers={**BASIC, "origin": "null"}).status_code == 403
    assert client.post("/change", headers={**BASIC, "origin": "http://testserver.attacker.example"}).status_code == 403
    too_big = client.post("/change", headers=BASIC, content=b"x" * 1001)
    assert too_big.status_code == 413 and "larger than" in too_big.json()["message"]
    chunked = client.post("/change", headers=BASIC, content=iter([b"x" * 600, b"x" * 600]))  # no Content-Length
    assert chunked.status_code == 413
    assert client.post("/change", content=b"").status_code == 401
