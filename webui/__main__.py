"""``python -m webui``: start the server (launch.py calls this inside the project's venv).

Also manages the users file without starting anything::

    python -m webui --data-dir D --add-user NAME [--admin]   (the password is read from standard input)
    python -m webui --data-dir D --remove-user NAME
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys

# Nothing is ever fetched at run time: make the hub clients fail fast instead of trying.
from webui.offline import apply_offline_env

apply_offline_env(override=False)

NO_AUTH_WARNING = (
    "WARNING: --listen without logins: anyone on your network can use this studio, read its outputs and "
    "change its settings. Add a user (launch.py --add-user NAME --admin) or pass --gradio-auth; see docs/lan.md."
)


def _user_command(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--add-user", metavar="NAME")
    parser.add_argument("--remove-user", metavar="NAME")
    parser.add_argument("--admin", action="store_true")
    return parser.parse_known_args(argv)


def _read_password(name: str) -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(f"Password for {name}: ")
        if getpass.getpass("Again: ") != first:
            raise SystemExit("the two passwords differ; nothing changed")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def manage_users(command: argparse.Namespace, data_dir) -> int:
    from webui.auth.users import UserError, UserStore

    store = UserStore(data_dir / "users.json")
    try:
        if command.add_user:
            role = "admin" if command.admin else "user"
            store.add(command.add_user, _read_password(command.add_user), role)
            print(f"user {command.add_user} saved ({role}) in {store.path}; logins are on")
        if command.remove_user:
            found = store.remove(command.remove_user)
            print(f"user {command.remove_user} {'removed' if found else 'was not there'}")
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    from webui.flags import UnsupportedFlag, parse_args

    argv = list(sys.argv[1:] if argv is None else argv)
    command, rest = _user_command(argv)
    try:
        cmd = parse_args(rest)
    except UnsupportedFlag as e:
        print(f"error: {e.code}", file=sys.stderr)
        return 2
    if command.add_user or command.remove_user:
        return manage_users(command, cmd.data_dir)

    import uvicorn

    from webui import restart
    from webui.app import DataDirError, Studio
    from webui.auth.users import UserError
    from webui.server import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for note in cmd.notes:
        logging.getLogger("webui").info("%s", note)
    try:
        studio = Studio(cmd)
    except (DataDirError, UserError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if cmd.listen and not studio.auth.enabled:
        print(NO_AUTH_WARNING, file=sys.stderr, flush=True)
    app = create_app(studio)
    print(f"Running on http://{cmd.host}:{cmd.port}", flush=True)
    # Open Gradio event streams would otherwise hold a shutdown for many seconds.
    server = uvicorn.Server(uvicorn.Config(app, host=cmd.host, port=cmd.port, log_level="warning",
                                           timeout_graceful_shutdown=3))
    restart.install(lambda: setattr(server, "should_exit", True))  # "Apply and restart UI"
    server.run()
    if restart.requested():  # uvicorn is down and the queue stopped (lifespan): start afresh
        print("Restarting…", flush=True)
        restart.exec_again(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
