"""Start a review: open the run, index its samples, then serve the page or export the decisions."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trainground.errors import ConfigError
from trainground.review.evidence import Evidence
from trainground.review.export import Exported, export
from trainground.review.run import ReviewRun, claim_db, open_review_run
from trainground.review.store import ReviewStore

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class ReviewSession:
    run: ReviewRun
    store: ReviewStore
    evidence: Evidence


def open_session(folder: str | Path) -> ReviewSession:
    """The run, its decisions file (listed in the manifest first) and its sample index."""
    run = open_review_run(folder)
    claim_db(run)
    store = ReviewStore(run.db)
    store.index_samples(run.issues)
    return ReviewSession(run=run, store=store, evidence=Evidence(run))


def default_reviewer() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (a container): still a usable default
        return "reviewer"


def export_decisions(folder: str | Path, out: str | Path, *, overwrite: bool = False) -> Exported:
    session = open_session(folder)
    return export(session.run, session.store, out, overwrite=overwrite)


def serve(folder: str | Path, *, host: str = "127.0.0.1", port: int = 8765, reviewer: str | None = None,
          say: Callable[[str], None] = print, warn: Callable[[str], None] = print) -> None:
    """Serve the review of ``folder`` until interrupted (the URL with its token is said first)."""
    try:
        import uvicorn

        from trainground.review.app import clean_reviewer, create_app, new_token
    except ModuleNotFoundError as err:
        raise ConfigError(f"the review page needs {err.name}, which is not installed: "
                          "pip install 'trainground[review]'") from None

    name = clean_reviewer(reviewer) if reviewer is not None else default_reviewer()
    if not name:
        raise ConfigError("--reviewer must hold at least one printable character")
    session = open_session(folder)
    session.evidence.prepare()  # a pixel table's pictures, read once
    session.evidence.start()  # the representation of every sample, in the background
    token = new_token()
    app = create_app(session.run, session.store, session.evidence, token=token, reviewer=name)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # Listening before the URL is printed: a browser (or a test) that connects while uvicorn
        # is still starting waits in the kernel's queue instead of being refused.
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise ConfigError(f"--host {host} --port {port}: cannot listen there ({err.strerror or err}); "
                          "choose another --port (0 picks a free one)") from None
    if host not in LOCAL_HOSTS:
        warn(f"--host {host}: the review is reachable from other machines; anyone with the URL (its token) "
             "can read the run's samples and record decisions")
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    say(f"review of {session.run.folder} as {name}: http://{shown}:{bound}/?token={token}")
    say("decisions are saved in " + str(session.run.db) + " as you click; stop with Ctrl+C")
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
