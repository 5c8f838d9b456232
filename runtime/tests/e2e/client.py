#!/usr/bin/env python3
"""SMTP client scenarios for runtime/tests/e2e_smtp.rs, with Python's smtplib
and raw sockets. Each scenario prints lines the test checks and exits 0; any
unexpected answer raises (exit 1, traceback on stderr).

    client.py SCENARIO PORT [ARGS...]
"""

import base64
import socket
import smtplib
import ssl
import sys
import time


def tls_context():
    # The gateway's certificate is self-signed, made at start.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


MESSAGE = b"From: a@remote.test\r\nTo: alice@example.test\r\nSubject: e2e\r\n\r\nhello\r\n"


def inbound(port):
    """Plain SMTP to a local mailbox: 250 after DATA."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("client.test")
        print("mail", s.mail("a@remote.test")[0])
        print("rcpt", s.rcpt("alice@example.test")[0])
        code, text = s.data(MESSAGE)
        print("data", code, text.decode())


def relay_denied(port):
    """No login: mail for a remote domain is refused at RCPT."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("client.test")
        s.mail("a@remote.test")
        print("rcpt", s.rcpt("someone@far.test")[0])


def auth_before_tls(port):
    """AUTH before STARTTLS is refused; nothing is verified."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("client.test")
        print("auth-advertised", s.has_extn("auth"))
        token = base64.b64encode(b"\0alice\0alice-demo").decode()
        print("auth", s.docmd("AUTH", "PLAIN " + token)[0])


def submit(port, user, password, mechanism):
    """STARTTLS, AUTH with the mechanism, then relay to a remote domain."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("client.test")
        print("starttls-advertised", s.has_extn("starttls"))
        s.starttls(context=tls_context())
        s.ehlo("client.test")
        print("auth-advertised", s.has_extn("auth"))
        s.user, s.password = user, password
        auth = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login}[mechanism]
        try:
            code, _ = s.auth(mechanism, auth, initial_response_ok=(mechanism == "PLAIN"))
        except smtplib.SMTPAuthenticationError as e:
            code = e.smtp_code
        print("auth", code)
        if code != 235:
            return
        s.mail(user + "@example.test")
        print("rcpt", s.rcpt("someone@far.test")[0])
        print("data", s.data(MESSAGE)[0])


def read_reply(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise EOFError("connection closed")
        lines.append(line.decode().rstrip("\r\n"))
        if len(line) >= 4 and line[3:4] == b" ":
            return lines


def starttls_injection(port):
    """`STARTTLS\\r\\nRSET\\r\\n` in one packet: the RSET must be dropped, so the
    first reply over TLS answers the client's EHLO, not the injected RSET."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = sock.makefile("rb")
    read_reply(f)
    sock.sendall(b"EHLO client.test\r\n")
    read_reply(f)
    sock.sendall(b"STARTTLS\r\nRSET\r\n")
    print("starttls", read_reply(f)[-1][:3])
    tls = tls_context().wrap_socket(sock)
    tf = tls.makefile("rb")
    tls.sendall(b"EHLO client.test\r\n")
    first = read_reply(tf)
    print("after-tls", first[0])
    tls.sendall(b"QUIT\r\n")
    print("quit", read_reply(tf)[-1][:3])


def implicit(port):
    """TLS from the first byte (SMTPS), TLS 1.2 or later, then a message."""
    with smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=tls_context()) as s:
        print("tls", s.sock.version())
        s.ehlo("client.test")
        print("starttls-advertised", s.has_extn("starttls"))
        s.mail("a@remote.test")
        s.rcpt("alice@example.test")
        print("data", s.data(MESSAGE)[0])


def tls11_refused(port):
    """A client capped at TLS 1.1 cannot connect."""
    ctx = tls_context()
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=ctx).quit()
        print("tls11 accepted")
    except (ssl.SSLError, OSError) as e:
        print("tls11 refused", type(e).__name__)


def stream(port, count, out):
    """Sends messages one after the other, each on its own connection,
    recording the queue id of every 250 (flushed at once) until the
    gateway goes away."""
    with open(out, "a") as log:
        for i in range(int(count)):
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
                    s.ehlo("client.test")
                    s.mail("a@remote.test")
                    s.rcpt("alice@example.test")
                    body = MESSAGE + b"message %d\r\n" % i
                    body += b"".join(b"line %d\r\n" % j for j in range(200))
                    code, text = s.data(body)
                    if code == 250:
                        log.write(text.decode().rsplit(" ", 1)[-1] + "\n")
                        log.flush()
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)


def hold(port, seconds):
    """Opens a session and waits: prints what the gateway says, if anything."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=float(seconds))
    f = sock.makefile("rb")
    print("greeting", read_reply(f)[-1][:3])
    sock.sendall(b"EHLO client.test\r\n")
    read_reply(f)
    try:
        print("then", read_reply(f)[-1][:9])
    except (EOFError, socket.timeout) as e:
        print("then", type(e).__name__)


SCENARIOS = {
    "inbound": inbound,
    "relay-denied": relay_denied,
    "auth-before-tls": auth_before_tls,
    "submit": submit,
    "starttls-injection": starttls_injection,
    "stream": stream,
    "implicit": implicit,
    "tls11-refused": tls11_refused,
    "hold": hold,
}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](int(sys.argv[2]), *sys.argv[3:])
