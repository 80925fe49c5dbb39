"""Test helpers for fleet delivery: a real mosquitto broker on a free loopback port, TLS files, a subscriber.

`Mosquitto` writes a temporary config (anonymous or with a password file made by ``mosquitto_passwd -b``,
plain or TLS) and runs ``mosquitto -c``; tests skip when the Debian package is not installed.
`make_tls_files` writes a throw-away CA and a server certificate for ``localhost``/127.0.0.1.
`Subscriber` is a paho client that records what arrives so a test can wait for a message.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import pytest

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")


def require_mosquitto() -> str:
    """The mosquitto binary, or skip the test saying how to get it."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (Debian: apt-get install mosquitto; .ci/run does it)")
    return MOSQUITTO


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TlsFiles(NamedTuple):
    """PEM files of a throw-away CA and a server certificate signed by it (for localhost and 127.0.0.1)."""

    ca: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path) -> TlsFiles:
    """Writes ``ca.pem``, ``server.pem`` and ``server.key`` (EC P-256, valid for a day) into `directory`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edgert test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return files


class Mosquitto:
    """A mosquitto process on 127.0.0.1, started by `start` and stopped by `stop` (or as a context manager).

    Args:
        directory: Where the config, password file and log go.
        users: ``{username: password}``; when given, anonymous clients are refused.
        tls: Serve TLS with these files instead of plain MQTT.
        port: Port to listen on (default: a free one; pass the old port to restart "the same" broker).
        persistence: Keep sessions and queued messages across a restart (saved in `directory` at shutdown).
    """

    def __init__(self, directory: Path, *, users: dict[str, str] | None = None, tls: TlsFiles | None = None,
                 port: int | None = None, persistence: bool = False):
        self.binary = require_mosquitto()
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log = self.directory / "mosquitto.log"
        self.config = self.directory / "mosquitto.conf"
        # As root, mosquitto switches to the user "mosquitto", which cannot read our temp files: stay who we are.
        lines = [f"user {pwd.getpwuid(os.geteuid()).pw_name}", f"listener {self.port} 127.0.0.1",
                 *(("persistence true", f"persistence_location {self.directory}/") if persistence
                   else ("persistence false",)), f"log_dest file {self.log}",
                 "log_type error", "log_type warning", "log_type notice", "log_type information"]
        if users:
            if MOSQUITTO_PASSWD is None:
                pytest.skip("mosquitto_passwd is not installed (Debian: apt-get install mosquitto)")
            password_file = self.directory / "passwords"
            password_file.write_text("")
            for user, password in users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(password_file), user, password], check=True,
                               capture_output=True, timeout=30)
            password_file.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            lines += [f"cafile {tls.ca}", f"certfile {tls.cert}", f"keyfile {tls.key}"]
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> Mosquitto:
        """Starts the broker and returns once its port accepts connections."""
        self.process = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}: {self.process.stderr.read()} "
                                   f"{self.log.read_text() if self.log.exists() else ''}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout} s")

    def stop(self) -> None:
        """Stops the broker (SIGTERM, then SIGKILL) and waits for it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class Subscriber:
    """A paho client on `port` that records every message on `topics` as (topic, decoded JSON or bytes, retain)."""

    def __init__(self, port: int, topics: list[str], *, username: str | None = None, password: str | None = None,
                 tls: TlsFiles | None = None, client_id: str = "test-subscriber", clean_session: bool = True):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, Any, bool]] = []
        self.redelivered: list[bool] = []  # per message: the broker's DUP flag (a QoS 1 redelivery)
        self._lock = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session)
        self.client.reconnect_delay_set(0.1, 0.5)
        if username:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(ca_certs=str(tls.ca))
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise RuntimeError("test subscriber did not get its subscription acknowledged")

    def _on_message(self, client, userdata, message) -> None:
        try:
            payload = json.loads(message.payload)
        except ValueError:
            payload = message.payload
        with self._lock:
            self.messages.append((message.topic, payload, bool(message.retain)))
            self.redelivered.append(bool(message.dup))
            self._lock.notify_all()

    def wait_for(self, predicate: Callable[[str, Any], bool], *, start: int = 0, timeout: float = 15.0) -> int:
        """Index of the first message from `start` on for which ``predicate(topic, payload)`` holds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for i in range(start, len(self.messages)):
                    topic, payload, _ = self.messages[i]
                    if predicate(topic, payload):
                        return i
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no such message within {timeout} s; got {self.messages[start:]}")
                self._lock.wait(remaining)

    def publish(self, topic: str, payload: bytes | str | dict, *, retain: bool = False) -> None:
        """Publishes (dicts as JSON) at QoS 1 and waits until the broker has it."""
        data = json.dumps(payload) if isinstance(payload, dict) else payload
        self.client.publish(topic, data, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
