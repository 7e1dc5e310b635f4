"""The fidelity layer: AWS behaviours moto lacks, patched into the moto server process.

Each module in `MODULES` makes one service behave as AWS documents
(see /work/shared/notes/twin-fidelity.md for the list of gaps) and offers:

- `install()`: patch moto; idempotent.
- `ROUTES`: twin-only control endpoints, `{name: handler}`, served at
  `POST /drills-twin/<name>` by `ControlApp`. A handler takes the JSON body as a dict
  and returns a JSON-able dict; it raises moto `JsonRESTError`s for bad requests.
  These endpoints do not exist in AWS: only twin-aware code (faults, tests) calls them.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from moto.core.exceptions import JsonRESTError

__all__ = ["CONTROL_PREFIX", "MODULES", "ControlApp", "install"]

#: Fidelity modules: every module of this package with an `install()`, by name. A new
#: module only has to exist to be installed and to have its ROUTES served.
MODULES = tuple(
    module
    for module in (
        importlib.import_module(f"{__name__}.{info.name}")
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name)
    )
    if hasattr(module, "install")
)

CONTROL_PREFIX = "/drills-twin/"

from drills.twin.fidelity import regions  # noqa: E402 - after MODULES: it is one of them

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def install() -> None:
    """Install every fidelity module into moto (idempotent)."""
    for module in MODULES:
        module.install()


class ControlApp:
    """WSGI middleware: serves `POST /drills-twin/<route>`, passes the rest to moto."""

    __slots__ = ("_app", "_routes")

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self._app = app
        self._routes: dict[str, Handler] = {
            CONTROL_PREFIX + name: handler
            for module in MODULES
            for name, handler in module.ROUTES.items()
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if not path.startswith(CONTROL_PREFIX):
            if regions.held(environ):  # an isolated region: nobody answers (see regions)
                start_response("503 Service Unavailable", [("Content-Length", "0")])
                return [b""]
            return self._app(environ, start_response)
        status, body = self._dispatch(path, environ)
        payload = json.dumps(body).encode()
        start_response(
            status,
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    def _dispatch(self, path: str, environ: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        handler = self._routes.get(path)
        if handler is None:
            return "404 Not Found", {"__type": "NotFound", "routes": sorted(self._routes)}
        if environ.get("REQUEST_METHOD") != "POST":
            return "405 Method Not Allowed", {"__type": "MethodNotAllowed", "allow": "POST"}
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            request = json.loads(environ["wsgi.input"].read(length) or b"{}")
            if not isinstance(request, dict):
                raise ValueError("body must be a JSON object")
        except ValueError as exc:
            return "400 Bad Request", {"__type": "ValidationException", "message": str(exc)}
        try:
            return "200 OK", handler(request)
        except JsonRESTError as exc:
            status = HTTPStatus(exc.code)
            return f"{status.value} {status.phrase}", {
                "__type": exc.error_type,
                "message": exc.message,
            }
