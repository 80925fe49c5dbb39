"""Bundle downloads over HTTP(S): resumable, size- and hash-checked, moved into place only when correct.

The bytes go to ``<dest>.part``. A later call resumes that file with a ``Range`` request when the server
answers ``206 Partial Content``, and starts over when it answers ``200`` (a server that ignores ranges).
The file becomes ``dest`` (fsync, rename, fsync of the directory) only once its size and sha256 match.
A download that stops early keeps its ``.part`` for the next attempt; one whose hash is wrong deletes it
(resuming wrong bytes can only give wrong bytes again).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from edgert.core import durable
from edgert.core.errors import BundleError, one_line

#: ``progress(done_bytes, total_bytes)``; total is None when the server does not say and none was expected.
ProgressCallback = Callable[[int, int | None], None]

_CHUNK = 64 * 1024
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


def download(url: str, dest: Path, *, expected_sha256: str | None = None, expected_size: int | None = None,
             progress: ProgressCallback | None = None, timeout: float = 30.0, resume: bool = True,
             ca_file: Path | None = None) -> Path:
    """Downloads `url` to `dest`, resuming an earlier partial download.

    Args:
        url: An ``http://`` or ``https://`` address (other schemes are refused: a fleet command must not
            read local files).
        dest: Where the complete file goes; ``<dest>.part`` holds the bytes meanwhile.
        expected_sha256: Hex sha256 the file must have (checked before the rename).
        expected_size: Size in bytes the file must have (also checked against what the server announces,
            before any body is read).
        progress: Called with (bytes so far, total bytes or None) as chunks arrive, from this thread.
        timeout: Seconds a connect or a single read may take.
        resume: Continue an existing ``.part`` with a Range request; False starts over.
        ca_file: PEM file of the certificate authorities to trust for https (default: the system's).

    Returns:
        `dest`.

    Raises:
        BundleError: One line naming the URL and what went wrong (HTTP status, network error, download
            cut short, size or sha256 mismatch).
    """
    dest = Path(dest)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise BundleError(f"download {url}: only http:// and https:// URLs are allowed")
    expected_sha256 = expected_sha256.lower() if expected_sha256 else None
    if expected_sha256 and dest.is_file() and _already_there(dest, expected_sha256, expected_size):
        _report(progress, dest.stat().st_size, dest.stat().st_size)
        return dest
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not resume:
        part.unlink(missing_ok=True)
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None) if scheme == "https" else None

    offset = part.stat().st_size if part.is_file() else 0
    if expected_size is not None and offset > expected_size:
        part.unlink()
        offset = 0
    if not (expected_size is not None and offset == expected_size):
        _fetch(url, part, offset, expected_size, progress, timeout, context)
    _check_and_move(url, part, dest, expected_sha256, expected_size)
    return dest


class _NoDowngradeRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects within http(s), but never from https down to http or to another scheme."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old, new = urllib.parse.urlsplit(req.full_url).scheme, urllib.parse.urlsplit(newurl).scheme
        if new not in ("http", "https") or (old == "https" and new != "https"):
            raise urllib.error.HTTPError(req.full_url, code, f"refused redirect to a {new} URL", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(context: ssl.SSLContext | None):
    handlers = [_NoDowngradeRedirects()]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


#: A download with no announced size stops here (the store's own cap on an unpacked bundle is 1 GiB).
MAX_DOWNLOAD_BYTES = 1 << 30


def _fetch(url: str, part: Path, offset: int, expected_size: int | None, progress: ProgressCallback | None,
           timeout: float, context: ssl.SSLContext | None) -> None:
    """Writes the body of `url` into `part`, from `offset` when the server honours the range."""
    headers = {"Accept-Encoding": "identity", "User-Agent": "edgert"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = _opener(context).open(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:
            # Our .part is as long as (or longer than) the file: complete, or a different file.
            match = _UNSATISFIED_RANGE.match(e.headers.get("Content-Range", ""))
            if match and int(match.group(1)) == offset:
                return
            part.unlink(missing_ok=True)
            return _fetch(url, part, 0, expected_size, progress, timeout, context)
        raise BundleError(f"download {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise BundleError(f"download {url}: {_reason(e)}") from None

    with response:
        start, total = _body_span(url, response, offset)
        if expected_size is not None and total is not None and total != expected_size:
            part.unlink(missing_ok=True)
            raise BundleError(f"download {url}: server has {total} bytes, expected {expected_size}")
        total = total if total is not None else expected_size
        cap = total if total is not None else MAX_DOWNLOAD_BYTES
        overall = max(timeout * 20, 600.0)  # a server dripping a byte per timeout must end somewhere
        deadline = time.monotonic() + overall
        done = start
        with open(part, "r+b" if start and part.exists() else "wb") as out:
            out.seek(start)
            out.truncate()
            _report(progress, done, total)
            try:
                while chunk := response.read1(_CHUNK):  # read1: what has arrived, not a full chunk
                    if done + len(chunk) > cap:
                        out.close()
                        part.unlink(missing_ok=True)
                        raise BundleError(f"download {url}: more than {cap} bytes; refused")
                    try:
                        out.write(chunk)
                    except OSError as e:  # a full disk: free what we took, the journal shares it
                        out.close()
                        part.unlink(missing_ok=True)
                        raise BundleError(f"download {url}: cannot write {part} ({_reason(e)})") from None
                    done += len(chunk)
                    _report(progress, done, total)
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"not done after {overall:.0f} s")
            except (OSError, http.client.HTTPException) as e:
                out.flush()
                raise BundleError(f"download {url}: cut short at {done} of {total or '?'} bytes ({_reason(e)}); "
                                  "the partial file is kept for resuming") from None
            out.flush()
            os.fsync(out.fileno())
    if total is not None and done < total:
        raise BundleError(f"download {url}: cut short at {done} of {total} bytes; "
                          "the partial file is kept for resuming")


def _body_span(url: str, response, offset: int) -> tuple[int, int | None]:
    """(where the body starts in the file, the file's total size or None) from the response headers."""
    length = response.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    if response.status == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != offset:
            raise BundleError(f"download {url}: server answered a range request with a different range "
                              f"({response.headers.get('Content-Range')!r})")
        total = match.group(3)
        return offset, int(total) if total != "*" else None
    return 0, length  # 200: the whole file, whatever we asked for


def _check_and_move(url: str, part: Path, dest: Path, expected_sha256: str | None,
                    expected_size: int | None) -> None:
    """Checks the finished `part` and renames it to `dest`; deletes it when its bytes are wrong."""
    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        part.unlink()
        raise BundleError(f"download {url}: got {size} bytes, expected {expected_size}")
    if expected_sha256 is not None:
        digest = _sha256(part)
        if digest != expected_sha256:
            part.unlink()
            raise BundleError(f"download {url}: sha256 mismatch (got {digest}, expected {expected_sha256})")
    durable.move(part, dest)


def _already_there(dest: Path, expected_sha256: str, expected_size: int | None) -> bool:
    if expected_size is not None and dest.stat().st_size != expected_size:
        return False
    return _sha256(dest) == expected_sha256


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _report(progress: ProgressCallback | None, done: int, total: int | None) -> None:
    if progress is not None:
        progress(done, total)


def _reason(error: BaseException) -> str:
    """A one-line reason for a network error (URLError wraps the socket error in `.reason`)."""
    reason = getattr(error, "reason", None) or error
    return one_line(reason)
