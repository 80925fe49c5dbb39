"""Bundle downloads against a real local HTTP(S) server: resume with Range, restart when ranges are ignored,
size and hash checks, HTTP and network errors as one-line BundleErrors."""
from __future__ import annotations

import hashlib
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from mosquitto import free_port, make_tls_files

from edgert.core.errors import BundleError
from edgert.fleet.download import download

PAYLOAD = bytes(range(256)) * 1200 + b"tail"  # ~300 kB: several chunks


class BundleServer(ThreadingHTTPServer):
    """Serves `files`; honours ``Range`` only on `ranged` paths; cuts the next response of a path in `cut_at`
    after that many bytes; stalls the next response of a path in `stall_at` after that many bytes."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.files: dict[str, bytes] = {}
        self.ranged: set[str] = set()
        self.cut_at: dict[str, int] = {}
        self.stall_at: dict[str, int] = {}
        self.release = threading.Event()
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.statuses: list[int] = []

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.server_address[1]}{path}"


class RangeHandler(BaseHTTPRequestHandler):
    server: BundleServer

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        path, asked = self.path, self.headers.get("Range")
        server.requests.append((path, asked))
        if path not in server.files:
            server.statuses.append(404)
            self.send_error(404, "Not Found")
            return
        data = server.files[path]
        start, status = 0, 200
        match = re.fullmatch(r"bytes=(\d+)-", asked or "")
        if match and path in server.ranged:
            start = int(match.group(1))
            if start >= len(data):
                server.statuses.append(416)
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        server.statuses.append(status)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        cut = server.cut_at.pop(path, None)
        stall = server.stall_at.pop(path, None)
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        if stall is not None:
            self.wfile.write(body[:stall])
            self.wfile.flush()
            server.release.wait(20)
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    s = BundleServer()
    s.files["/bundle.tar"] = PAYLOAD
    s.ranged.add("/bundle.tar")
    thread = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield s
    s.release.set()
    s.shutdown()
    s.server_close()
    thread.join(10)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_writes_the_file_and_reports_progress(server, tmp_path):
    seen = []
    dest = tmp_path / "dl" / "b.tar"
    out = download(server.url("/bundle.tar"), dest, expected_sha256=sha(PAYLOAD).upper(),
                   expected_size=len(PAYLOAD), progress=lambda done, total: seen.append((done, total)))
    assert out == dest and dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "dl" / "b.tar.part").exists()
    assert seen[0] == (0, len(PAYLOAD)) and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:])) and len(seen) > 3
    assert server.requests == [("/bundle.tar", None)]

    # already there with the right hash: no second request
    download(server.url("/bundle.tar"), dest, expected_sha256=sha(PAYLOAD))
    assert len(server.requests) == 1


def test_a_cut_download_keeps_its_part_and_resumes_with_a_range_request(server, tmp_path):
    cut = 100_000
    server.cut_at["/bundle.tar"] = cut
    dest = tmp_path / "b.tar"
    with pytest.raises(BundleError, match=r"cut short at 100000 of \d+ bytes") as err:
        download(server.url("/bundle.tar"), dest, expected_sha256=sha(PAYLOAD))
    assert "\n" not in str(err.value) and server.url("/bundle.tar") in str(err.value)
    part = tmp_path / "b.tar.part"
    assert part.read_bytes() == PAYLOAD[:cut] and not dest.exists()

    seen = []
    download(server.url("/bundle.tar"), dest, expected_sha256=sha(PAYLOAD), progress=lambda d, t: seen.append(d))
    assert dest.read_bytes() == PAYLOAD and not part.exists()
    assert server.requests[-1] == ("/bundle.tar", f"bytes={cut}-") and server.statuses[-1] == 206
    assert seen[0] == cut


def test_a_server_that_ignores_range_gets_a_fresh_download(server, tmp_path):
    server.files["/plain.tar"] = PAYLOAD  # not in server.ranged
    server.cut_at["/plain.tar"] = 70_000
    dest = tmp_path / "b.tar"
    with pytest.raises(BundleError, match="cut short"):
        download(server.url("/plain.tar"), dest, expected_size=len(PAYLOAD))
    download(server.url("/plain.tar"), dest, expected_sha256=sha(PAYLOAD), expected_size=len(PAYLOAD))
    assert server.requests[-1] == ("/plain.tar", "bytes=70000-") and server.statuses[-1] == 200
    assert dest.read_bytes() == PAYLOAD  # the 200 body replaced the part instead of being appended


def test_resume_false_starts_over(server, tmp_path):
    (tmp_path / "b.tar.part").write_bytes(b"junk that is not the start of the file")
    download(server.url("/bundle.tar"), tmp_path / "b.tar", expected_sha256=sha(PAYLOAD), resume=False)
    assert server.requests == [("/bundle.tar", None)]
    assert (tmp_path / "b.tar").read_bytes() == PAYLOAD


def test_a_complete_part_is_finished_without_refetching_the_body(server, tmp_path):
    part = tmp_path / "b.tar.part"
    part.write_bytes(PAYLOAD)
    download(server.url("/bundle.tar"), tmp_path / "b.tar", expected_sha256=sha(PAYLOAD), expected_size=len(PAYLOAD))
    assert server.requests == []  # the size said it was complete
    part.write_bytes(PAYLOAD)
    download(server.url("/bundle.tar"), tmp_path / "c.tar", expected_sha256=sha(PAYLOAD))
    # (a fresh name: nothing to resume) then without an expected size the server's 416 says "complete"
    (tmp_path / "d.tar.part").write_bytes(PAYLOAD)
    download(server.url("/bundle.tar"), tmp_path / "d.tar", expected_sha256=sha(PAYLOAD))
    assert server.statuses[-1] == 416 and (tmp_path / "d.tar").read_bytes() == PAYLOAD


def test_a_part_longer_than_the_file_is_thrown_away(server, tmp_path):
    (tmp_path / "b.tar.part").write_bytes(PAYLOAD + b"extra bytes of another file")
    download(server.url("/bundle.tar"), tmp_path / "b.tar", expected_sha256=sha(PAYLOAD))
    assert (tmp_path / "b.tar").read_bytes() == PAYLOAD
    assert server.statuses == [416, 200]


def test_wrong_hash_deletes_the_part_and_leaves_no_file(server, tmp_path):
    wrong = sha(b"another bundle")
    with pytest.raises(BundleError, match=f"sha256 mismatch \\(got {sha(PAYLOAD)}, expected {wrong}\\)"):
        download(server.url("/bundle.tar"), tmp_path / "b.tar", expected_sha256=wrong)
    assert list(tmp_path.iterdir()) == []


def test_a_size_the_server_contradicts_is_refused_before_the_body(server, tmp_path):
    with pytest.raises(BundleError, match=f"server has {len(PAYLOAD)} bytes, expected 1234"):
        download(server.url("/bundle.tar"), tmp_path / "b.tar", expected_size=1234)
    assert list(tmp_path.iterdir()) == []


def test_http_and_network_errors_are_one_line(server, tmp_path):
    with pytest.raises(BundleError, match="HTTP 404 Not Found") as err:
        download(server.url("/missing.tar"), tmp_path / "b.tar")
    assert "\n" not in str(err.value)
    with pytest.raises(BundleError, match=r"download http://127\.0\.0\.1:\d+/x\.tar: .*[Rr]efused"):
        download(f"http://127.0.0.1:{free_port()}/x.tar", tmp_path / "b.tar")
    with pytest.raises(BundleError, match="only http:// and https:// URLs are allowed"):
        download(f"file://{tmp_path}/anything", tmp_path / "b.tar")
    assert list(tmp_path.iterdir()) == []


def test_a_stalled_server_times_out_and_keeps_the_part(server, tmp_path):
    server.stall_at["/bundle.tar"] = 50_000
    with pytest.raises(BundleError, match="cut short at 50000 of"):
        download(server.url("/bundle.tar"), tmp_path / "b.tar", timeout=0.5)
    server.release.set()
    assert (tmp_path / "b.tar.part").stat().st_size == 50_000
    download(server.url("/bundle.tar"), tmp_path / "b.tar", expected_sha256=sha(PAYLOAD))
    assert (tmp_path / "b.tar").read_bytes() == PAYLOAD


def test_https_with_a_ca_file(server, tmp_path):
    tls = make_tls_files(tmp_path / "tls")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert, tls.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    url = server.url("/bundle.tar", scheme="https")
    download(url, tmp_path / "b.tar", expected_sha256=sha(PAYLOAD), ca_file=tls.ca)
    assert (tmp_path / "b.tar").read_bytes() == PAYLOAD
    with pytest.raises(BundleError, match="CERTIFICATE_VERIFY_FAILED"):
        download(url, tmp_path / "c.tar")  # the system's CAs do not know the test CA
    assert not (tmp_path / "c.tar").exists()


def test_a_body_longer_than_announced_or_allowed_is_cut_and_deleted(tmp_path, monkeypatch):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import edgert.fleet.download as dl

    class Endless(BaseHTTPRequestHandler):
        def do_GET(self):  # no Content-Length: the body runs until the connection closes
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(4096):
                    self.wfile.write(b"x" * 4096)
            except OSError:
                pass

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(dl, "MAX_DOWNLOAD_BYTES", 1 << 20)
    try:
        with pytest.raises(BundleError, match="more than 1048576 bytes"):
            dl.download(f"http://127.0.0.1:{server.server_port}/x", tmp_path / "b.tar")
        with pytest.raises(BundleError, match="more than 1000 bytes"):
            dl.download(f"http://127.0.0.1:{server.server_port}/x", tmp_path / "c.tar", expected_size=1000)
    finally:
        server.shutdown()
    assert list(tmp_path.iterdir()) == []


def test_redirects_may_not_leave_http(tmp_path):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from edgert.fleet.download import download

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1/bundle.tar" if self.path == "/ftp" else "file:///etc/passwd")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(BundleError, match="refused redirect to a ftp URL"):
            download(f"http://127.0.0.1:{server.server_port}/ftp", tmp_path / "x.tar")
        with pytest.raises(BundleError, match="not allowed|refused redirect"):
            download(f"http://127.0.0.1:{server.server_port}/file", tmp_path / "x.tar")
    finally:
        server.shutdown()
    assert not (tmp_path / "x.tar").exists()
