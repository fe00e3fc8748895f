"""The socket guard counts and watches the sockets the namespace hands it, not the Socket.IO
manager's internals (dashboard/web/security.py ``SocketGuard``)."""

from typing import Any

from dashboard.web.security import SocketGuard


def test_the_guard_knows_the_sockets_it_was_told_about() -> None:
    rt: Any = None
    guard = SocketGuard(socketio=None, rt=rt, namespace="/live")  # type: ignore[arg-type]
    assert guard.connected() == 0
    guard.track("a", ["principal:user:1:0", "session:s1"])
    guard.track("b", ["principal:user:1:0", "session:s2"])
    guard.track("c", ["principal:token:7"])
    assert guard.connected() == 3
    rooms = guard._rooms()
    assert sorted(rooms["principal:user:1:0"]) == ["a", "b"]
    assert rooms["session:s2"] == ["b"]
    guard.forget("b")
    guard.forget("b")  # a second disconnect of the same socket changes nothing
    guard.forget("never-seen")
    assert guard.connected() == 2
    assert "session:s2" not in guard._rooms()
