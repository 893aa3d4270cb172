"""DVC's repository and its default remote as `make pull`, `make push` and `make repro` use
them: the config read in one line when it is wrong, the remote asked whether it answers within
a bound, and every fault of a remote (no bucket, refused keys, unreachable) turned into one
line naming the remote, what was asked and what failed.
"""

import difflib
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlparse

from rlrepro.core.errors import UserError

T = TypeVar("T")

PROBE_SECONDS = 15.0  # at most this long to learn whether a remote answers
CONNECT_SECONDS = 5.0  # to open a TCP connection to its endpoint
EMPTY = "it holds nothing at its URL"


def open_repo() -> Any:
    """DVC's `Repo` of the working folder. :raises UserError: in one line when DVC's config
    (.dvc/config, .dvc/config.local) is malformed, naming the key or URL and what is accepted."""
    from dvc.config import ConfigError
    from dvc.repo import Repo

    try:
        repo = Repo()
        repo.config  # noqa: B018  (DVC reads and validates its config on first use)
    except ConfigError as err:
        raise UserError(config_line(str(err))) from None
    return repo


def config_line(message: str) -> str:
    """The one line for DVC's config error `message` (voluptuous's, e.g. `config file error:
    extra keys not allowed @ data['remote']['s3']['endpoint_url']`)."""
    from dvc.config_schema import REMOTE_SCHEMAS

    where = "DVC's config (.dvc/config, .dvc/config.local)"
    keys = re.findall(r"\['([^']*)'\]", message)
    scheme = re.search(r"Unsupported URL type (\S+)", message)
    if scheme and keys[:1] == ["remote"]:
        known = ", ".join(f"{s}://" for s in sorted(REMOTE_SCHEMAS) if s)
        return (
            f"{where}: remote {keys[1]}: url {scheme.group(1)}... is no kind of remote DVC "
            f"knows; accepted: a folder, or {known} (dvc remote modify {keys[1]} url URL)"
        )
    if "extra keys not allowed" in message and keys[:1] == ["remote"] and len(keys) == 3:
        name, key = keys[1], keys[2]
        accepted = sorted({str(k) for schema in REMOTE_SCHEMAS.values() for k in schema})
        close = difflib.get_close_matches(key, accepted, n=1)
        hint = f"did you mean `{close[0]}`? " if close else ""
        return (
            f"{where}: remote {name}: {key}: unknown key; {hint}the keys DVC accepts: "
            f"dvc remote modify --help"
        )
    return f"{where}: {message.removeprefix('config file error: ')}; fix it (dvc config --help)"


def describe(repo: Any, name: str) -> str:
    """`name (url)`, or `name (url at endpoint)` for an S3-compatible store."""
    config = repo.config["remote"].get(name, {})
    endpoint = config.get("endpointurl")
    return f"{name} ({config.get('url', '?')}{f' at {endpoint}' if endpoint else ''})"


def local(err: BaseException) -> bool:
    """Whether `err` is about a file of this machine (an `OSError` naming a path, such as a
    missing dep or a read-only cache), not about a remote (whose file systems raise `OSError`s
    with no path and no errno: s3fs's `PermissionError('Forbidden')`)."""
    return isinstance(err, OSError) and err.errno is not None and err.filename is not None


def fault(err: BaseException) -> str:
    """What failed, from an exception raised by a remote's file system (s3fs, botocore, fsspec,
    the OS): "unreachable ...", "refused the keys ...", "no such bucket or folder ...", or the
    exception's type and first line."""
    name = type(err).__name__
    text = (str(err).strip().splitlines() or [""])[0]
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError") or (
        isinstance(err, ConnectionError | TimeoutError)
    ):
        return f"unreachable ({name}: {text})"
    if isinstance(err, PermissionError) or any(
        code in text for code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied")
    ):
        return f"refused the keys ({name}: {text})"
    if name == "NoCredentialsError":
        return f"no keys were given ({text})"
    if isinstance(err, FileNotFoundError):
        return f"no such bucket or folder ({text})"
    return f"{name}: {text}"


def remedy(what: str, name: str) -> str:
    """What to do about the `fault` `what` of remote `name`."""
    if what.startswith("unreachable"):
        return f"start its server or fix its address (dvc remote modify {name} endpointurl URL)"
    if what.startswith(("refused the keys", "no keys")):
        return (
            f"set them (dvc remote modify --local {name} access_key_id ... and "
            "secret_access_key ..., or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
        )
    if what.startswith(EMPTY):
        return f"check its URL (dvc remote modify {name} url ...), or push to it first (make push)"
    if what.startswith("no such bucket"):
        return f"create it, or fix the URL (dvc remote modify {name} url s3://BUCKET/PATH)"
    return f"fix it (dvc remote modify {name} ...) or unset it (dvc remote default --unset)"


def line(repo: Any, name: str, asked: str, what: str) -> str:
    """`DVC remote NAME (URL): ASKED: WHAT; REMEDY`."""
    return f"DVC remote {describe(repo, name)}: {asked}: {what}; {remedy(what, name)}"


@contextmanager
def faults(repo: Any, name: str, asked: str) -> Iterator[None]:
    """Inside, an exception of the remote's file system :raises UserError: in one line (DVC's
    own exceptions and ours pass through); DVC's log lines are held back (their tracebacks
    among them): what failed is said here."""
    from dvc.exceptions import DvcException

    loggers = [logging.getLogger(name) for name in ("dvc", "dvc_data", "dvc_objects")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    except (DvcException, UserError):
        raise
    except Exception as err:
        if local(err):
            raise
        raise UserError(line(repo, name, asked, fault(err))) from err
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def bounded(call: Callable[[], T], seconds: float) -> T:
    """`call()` in a daemon thread, given up after `seconds`. :raises TimeoutError: when it has
    not returned by then (the thread is left to end; it holds nothing of ours)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as err:
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {seconds:.0f} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def odb(repo: Any, name: str) -> Any:
    """The object store of remote `name` (DVC's `HashFileDB`, files/md5 under its URL)."""
    with faults(repo, name, "open it"):
        return repo.cloud.get_remote_odb(name, "pull")


def probe(repo: Any, name: str) -> bool:
    """Ask remote `name` whether it answers, within `PROBE_SECONDS`: its endpoint takes a TCP
    connection, its bucket (an object store's first path part) exists, its keys are taken.

    :return: whether it holds anything at its URL (False: an empty or mistyped folder).
    :raises UserError: one line when it cannot be used.
    """
    endpoint = repo.config["remote"].get(name, {}).get("endpointurl")
    if endpoint:
        parsed = urlparse(endpoint)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname, port), CONNECT_SECONDS).close()
        except OSError as err:
            why = err.strerror or type(err).__name__
            raise UserError(
                line(repo, name, "connect", f"unreachable ({why} at {parsed.hostname}:{port})")
            ) from None
    store = odb(repo, name)
    fs, path = store.fs, store.path

    def ask() -> bool:
        if fs.exists(path):  # refused keys raise here
            return True
        bucket = path.split("/")[0]
        if fs.protocol not in ("local", "file") and "/" in path and not fs.exists(bucket):
            raise FileNotFoundError(f"no bucket `{bucket}`")
        return False

    with faults(repo, name, "list it"):
        try:
            return bounded(ask, PROBE_SECONDS)
        except TimeoutError as err:
            raise UserError(line(repo, name, "list it", f"unreachable ({err})")) from None
