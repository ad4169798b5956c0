"""Users: the users file in the data dir (salted scrypt hashes, roles) and A1111's auth flags.

    <data dir>/users.json   {"users": {"name": {"role": "admin"|"user", "salt": hex, "hash": hex,
                                                "n": 16384, "r": 8, "p": 1}}}

Passwords are never stored: only a per-user salt and the scrypt hash. Users named by A1111's
``--gradio-auth`` / ``--gradio-auth-path`` / ``--api-auth`` flags live in memory only and are admins
(A1111 has no roles). The file is written atomically and readable by its owner only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

ROLES = ("admin", "user")
LOCAL = "local"  # the one user when logins are off
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class UserError(ValueError):
    """A bad user name, role or password, or a users file that cannot be read or written."""


@dataclass(frozen=True)
class User:
    name: str
    role: str = "user"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _hash(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)


def parse_pairs(text: str, source: str) -> dict[str, str]:
    """A1111's ``user:pass,user2:pass2`` (also one pair per line, as its auth files)."""
    pairs: dict[str, str] = {}
    for item in re.split(r"[,\n]", text):
        item = item.strip()
        if not item:
            continue
        name, sep, password = item.partition(":")
        if not sep or not name or not password:
            raise UserError(f"{source}: expected user:password, got an entry without ':'")
        pairs[name.strip()] = password
    return pairs


class UserStore:
    """The users file plus the flag users; thread-safe."""

    def __init__(self, path: Path, flag_users: dict[str, str] | None = None):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._flag_users = dict(flag_users or {})
        self._stamp = self._file_stamp()
        self._entries = self._read()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def refresh_if_changed(self) -> None:
        """Re-read the file when another process (``--add-user``, ``--remove-user``) changed it."""
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        try:
            entries = self._read()
        except UserError:
            return  # a file caught half-written by a foreign editor: keep what we had
        with self._lock:
            self._entries, self._stamp = entries, stamp

    def _read(self) -> dict[str, dict]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            users = data["users"]
            if not isinstance(users, dict):
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UserError(f"{self.path}: not a readable users file ({type(e).__name__})") from None
        return {str(k): v for k, v in users.items() if isinstance(v, dict) and v.get("role") in ROLES}

    def _write(self) -> None:
        text = json.dumps({"users": self._entries}, indent=1, sort_keys=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self._stamp = self._file_stamp()
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise UserError(f"could not write {self.path}: {e.strerror or e}") from None

    @property
    def enabled(self) -> bool:
        """Logins are on when any user exists, in the file or from a flag."""
        with self._lock:
            return bool(self._entries or self._flag_users)

    def names(self) -> list[str]:
        with self._lock:
            return sorted({*self._entries, *self._flag_users})

    def add(self, name: str, password: str, role: str = "user") -> None:
        if not _NAME.match(name or ""):
            raise UserError("a user name is 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}")
        if len(password) < 8:
            raise UserError("a password needs at least 8 characters")
        salt = secrets.token_bytes(16)
        entry = {"role": role, "salt": salt.hex(), "hash": _hash(password, salt, **_SCRYPT).hex(), **_SCRYPT}
        with self._lock:
            self._entries[name] = entry
            self._write()

    def remove(self, name: str) -> bool:
        with self._lock:
            if self._entries.pop(name, None) is None:
                return False
            self._write()
            return True

    def verify(self, name: str, password: str) -> User | None:
        """The user, when ``password`` is theirs; None otherwise (in about the same time)."""
        try:
            password.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800"): no one's password, whatever the name
            return None
        with self._lock:
            flag_password = self._flag_users.get(name)
            entry = self._entries.get(name)
        if flag_password is not None:
            ok = hmac.compare_digest(flag_password.encode("utf-8"), password.encode("utf-8"))
            return User(name, "admin") if ok else None
        if entry is None:
            _hash(password, b"\0" * 16, **_SCRYPT)  # as slow as a real check: names do not leak
            return None
        try:
            expected = bytes.fromhex(entry["hash"])
            actual = _hash(password, bytes.fromhex(entry["salt"]), int(entry["n"]), int(entry["r"]), int(entry["p"]))
        except (KeyError, ValueError):
            return None
        return User(name, entry["role"]) if hmac.compare_digest(expected, actual) else None

    def role_of(self, name: str) -> str | None:
        with self._lock:
            if name in self._flag_users:
                return "admin"
            entry = self._entries.get(name)
        return entry["role"] if entry else None
