#!/usr/bin/env python3
"""IMAP and POP3 client scenarios for runtime/tests/e2e_proxy.rs, with
Python's imaplib and poplib. Each scenario prints lines the test checks and
exits 0; an unexpected answer raises (exit 1, traceback on stderr).

    mailclient.py SCENARIO PORT TLS USER PASSWORD [ARGS...]

TLS is `starttls` or `implicit`. The environment variable SOURCE_IP, when
set, is the local address the client connects from (to see it forwarded).
"""

import hashlib
import imaplib
import os
import poplib
import socket
import ssl
import sys
import threading
import time


def tls_context():
    # The gateway's certificate is self-signed, made at start.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def connect_from(host, port, timeout):
    source = os.environ.get("SOURCE_IP")
    return socket.create_connection(
        (host, port), timeout, source_address=(source, 0) if source else None
    )


class IMAP(imaplib.IMAP4):
    def _create_socket(self, timeout):
        return connect_from(self.host, self.port, timeout)


class IMAPS(imaplib.IMAP4_SSL):
    def _create_socket(self, timeout):
        sock = connect_from(self.host, self.port, timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


class POP3(poplib.POP3):
    def _create_socket(self, timeout):
        return connect_from(self.host, self.port, timeout)


class POP3S(poplib.POP3_SSL):
    def _create_socket(self, timeout):
        sock = connect_from(self.host, self.port, timeout)
        return self.context.wrap_socket(sock, server_hostname=self.host)


def alpn_context(protocol):
    """A context offering the protocol's ALPN identifier (RFC 7301) and an
    unrelated one, as a client serving several protocols would."""
    ctx = tls_context()
    ctx.set_alpn_protocols(["h2", protocol])
    return ctx


def imap(port, tls):
    if tls == "implicit":
        m = IMAPS("127.0.0.1", port, ssl_context=alpn_context("imap"), timeout=30)
        print("alpn", m.sock.selected_alpn_protocol())
        return m
    m = IMAP("127.0.0.1", port, timeout=30)
    print("pre-tls", " ".join(sorted(m.capabilities)))
    m.starttls(ssl_context=tls_context())
    return m


def pop3(port, tls):
    if tls == "implicit":
        p = POP3S("127.0.0.1", port, context=alpn_context("pop3"), timeout=30)
        print("alpn", p.sock.selected_alpn_protocol())
        return p
    p = POP3("127.0.0.1", port, timeout=30)
    print("greeting", p.getwelcome().decode())
    print("pre-tls", " ".join(sorted(p.capa())))
    p.stls(context=tls_context())
    return p


def login(m, user, password):
    """LOGIN with the password as a literal: imaplib would quote it, and a
    quoted string cannot hold CR/LF or non-ASCII."""
    m.literal = password.encode()
    typ, data = m._simple_command("LOGIN", m._quote(user))
    if typ != "OK":
        raise imaplib.IMAP4.error(data[-1].decode())
    m.state = "AUTH"
    return typ, data


def subjects(m):
    typ, data = m.select("INBOX")
    assert typ == "OK", (typ, data)
    typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    out = []
    for item in data:
        if isinstance(item, tuple):
            out.append(item[1].decode().strip())
    return out


def imap_login(port, tls, user, password, *args):
    """LOGIN (or AUTHENTICATE PLAIN with `plain`), list INBOX subjects."""
    m = imap(port, tls)
    if args and args[0] == "plain":
        typ, data = m.authenticate(
            "PLAIN", lambda _: b"\0" + user.encode() + b"\0" + password.encode()
        )
    else:
        typ, data = login(m, user, password)
    print("login", typ, data[-1].decode() if data and data[-1] else "")
    typ, data = m.capability()
    print("capabilities", data[0].decode())
    for s in subjects(m):
        print(s)
    m.logout()


def imap_wrong(port, tls, user, password):
    """A login that must fail; prints the answer and the seconds it took."""
    m = imap(port, tls)
    start = time.monotonic()
    try:
        login(m, user, password)
        print("unexpected success")
    except imaplib.IMAP4.error as e:
        print("refused", str(e))
    print("seconds", f"{time.monotonic() - start:.2f}")


def imap_idle(port, tls, user, password):
    """IDLE through the proxy sees a message another session APPENDs."""
    m = imap(port, tls)
    login(m, user, password)
    m.select("INBOX")
    tag = m._new_tag().decode()
    m.send(f"{tag} IDLE\r\n".encode())
    print("idle", m.readline().decode().strip())

    def append():
        time.sleep(0.5)
        other = imap(port, tls)
        login(other, user, password)
        other.append("INBOX", None, None, b"Subject: during idle\r\n\r\nhi\r\n")
        other.logout()

    threading.Thread(target=append).start()
    line = m.readline().decode().strip()
    while "EXISTS" not in line and "RECENT" not in line:
        line = m.readline().decode().strip()
    print("pushed", line)
    m.send(b"DONE\r\n")
    while True:
        line = m.readline().decode().strip()
        if line.startswith(tag):
            print("done", line)
            break
    m.logout()


def imap_big(port, tls, user, password, megabytes):
    """APPEND then FETCH a large message; compare digests and time it."""
    body = (b"0123456789abcdef" * 64 + b"\r\n") * (int(megabytes) * 1024 * 1024 // 1026)
    message = b"Subject: big\r\n\r\n" + body
    m = imap(port, tls)
    login(m, user, password)
    typ, _ = m.append("INBOX", None, None, message)
    assert typ == "OK", typ
    m.select("INBOX")
    typ, data = m.search(None, "SUBJECT", "big")
    number = data[0].split()[-1]
    start = time.monotonic()
    typ, data = m.fetch(number, "(BODY.PEEK[])")
    seconds = time.monotonic() - start
    fetched = data[0][1]
    print("size", len(fetched))
    print("same", hashlib.sha256(fetched).hexdigest() == hashlib.sha256(message).hexdigest())
    print("fetch-seconds", f"{seconds:.3f}")
    m.logout()


def pop3_login(port, tls, user, password, *args):
    """USER/PASS (or AUTH PLAIN with `plain`), list and read the messages;
    `dele` deletes the first one, `drop` leaves without QUIT."""
    p = pop3(port, tls)
    if "plain" in args:
        import base64

        token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())
        print("login", p._shortcmd("AUTH PLAIN " + token.decode()).decode())
    else:
        p.user(user)
        print("login", p.pass_(password).decode())
    count, size = p.stat()
    print("count", count)
    for i in range(1, count + 1):
        lines = p.retr(i)[1]
        for line in lines:
            if line.lower().startswith(b"subject:"):
                print(line.decode())
    if "dele" in args:
        print("dele", p.dele(1).decode())
    if "drop" in args:
        p.sock.close()
        print("dropped")
    else:
        print("quit", p.quit().decode())


def pop3_wrong(port, tls, user, password):
    p = pop3(port, tls)
    start = time.monotonic()
    try:
        p.user(user)
        p.pass_(password)
        print("unexpected success")
    except poplib.error_proto as e:
        print("refused", e.args[0].decode())
    print("seconds", f"{time.monotonic() - start:.2f}")


class Raw:
    """A raw line-oriented connection, upgradable to TLS."""

    def __init__(self, port):
        self.sock = connect_from("127.0.0.1", port, 10)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                line, self.buf = self.buf, b""
                return line.decode(errors="replace") + "<closed>"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace").rstrip("\r")

    def until(self, prefix):
        """Lines up to and including the first that starts with prefix."""
        lines = []
        while True:
            line = self.line()
            print("S:", line)
            lines.append(line)
            if line.startswith(prefix) or line.endswith("<closed>"):
                return lines

    def starttls(self):
        assert self.buf == b"", self.buf
        self.sock = tls_context().wrap_socket(self.sock)


def imap_raw(port, tls, user, password):
    """Byte-exact cases: a command pipelined after STARTTLS is dropped,
    literals, commands pipelined after LOGIN reach the backend, oversize
    and malformed input."""
    c = Raw(port)
    c.until("* OK")
    c.send(f"a STARTTLS\r\nb LOGIN {user} {password}\r\n".encode())
    c.until("a ")
    c.starttls()
    c.send(b"c NOOP\r\n")
    c.until("c ")
    c.send(b"\x00\xff garbage\r\n")
    c.until("* BAD")
    c.send(b"x LOGIN {100000}\r\n")
    c.until("x ")
    c.send(f"d LOGIN {{{len(user)}}}\r\n".encode())
    c.until("+")
    c.send(f"{user} {{{len(password.encode())}}}\r\n".encode())
    c.until("+")
    c.send(password.encode() + b"\r\ne SELECT INBOX\r\nf LOGOUT\r\n")
    c.until("d ")
    c.until("e ")
    c.until("f ")
    c = Raw(port)
    c.until("* OK")
    c.send(b"a STARTTLS\r\n")
    c.until("a ")
    c.starttls()
    c.send(b"y LOGIN {100000+}\r\n")
    c.until("* BYE")
    print("end:", c.line())


def pop3_raw(port, tls, user, password):
    """A USER pipelined after STLS is dropped; PASS then needs a USER."""
    c = Raw(port)
    c.until("+OK")
    c.send(f"STLS\r\nUSER {user}\r\n".encode())
    c.until("+OK")
    c.starttls()
    c.send(f"PASS {password}\r\n".encode())
    c.until("-ERR")
    c.send(f"USER {user}\r\nPASS {password}\r\nSTAT\r\nQUIT\r\n".encode())
    for _ in range(4):
        c.until("")
    print("end:", c.line())


SCENARIOS = {
    "imap_raw": imap_raw,
    "pop3_raw": pop3_raw,
    "imap_login": imap_login,
    "imap_wrong": imap_wrong,
    "imap_idle": imap_idle,
    "imap_big": imap_big,
    "pop3_login": pop3_login,
    "pop3_wrong": pop3_wrong,
}

if __name__ == "__main__":
    name, port, tls, user, password, *rest = sys.argv[1:]
    SCENARIOS[name](int(port), tls, user, password, *rest)
