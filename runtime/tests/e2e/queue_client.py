#!/usr/bin/env python3
"""Helpers for runtime/tests/e2e_queue.rs, with Python's smtplib and email.

    queue_client.py send PORT FROM TO[,TO...] [SUBJECT] [MAIL-OPTS] [RCPT-OPTS] [BODY]
        sends one message; prints "queued <reply>". Options are
        space-separated ESMTP parameters ("" for none), e.g.
        "RET=HDRS ENVID=abc" and "NOTIFY=SUCCESS,FAILURE".
    queue_client.py dsn FILE
        parses a delivery status notification and prints JSON: headers,
        content types, per-message and per-recipient fields, and what of
        the original came back.
    queue_client.py filter LISTEN RETURN
        a content filter: takes mail on 127.0.0.1:LISTEN and sends it on to
        127.0.0.1:RETURN with "X-Filtered: yes" added, until killed.
"""

import email
import email.policy
import json
import os
import smtplib
import socket
import sys
import threading


def send(port, sender, recipients, subject="queue test", mail_opts="", rcpt_opts="",
         body="hello from the queue test"):
    message = (
        f"From: {sender or 'nobody@remote.test'}\r\n"
        f"To: {recipients}\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@client.test>\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()
    source = (os.environ.get("SOURCE", "127.0.0.1"), 0)
    with smtplib.SMTP("127.0.0.1", int(port), timeout=30, source_address=source) as s:
        s.ehlo("client.test")
        code, text = s.mail(sender, mail_opts.split())
        assert code == 250, (code, text)
        for rcpt in recipients.split(","):
            code, text = s.rcpt(rcpt, rcpt_opts.split())
            assert code == 250, (rcpt, code, text)
        code, text = s.data(message)
        assert code == 250, (code, text)
        print("queued", text.decode())


def fields(message):
    return {k: str(v) for k, v in message.items()}


def dsn(path):
    with open(path, "rb") as f:
        msg = email.message_from_bytes(f.read(), policy=email.policy.default)
    out = {
        "headers": fields(msg),
        "content_type": msg.get_content_type(),
        "report_type": msg.get_param("report-type"),
        "parts": [p.get_content_type() for p in msg.iter_parts()],
    }
    parts = list(msg.iter_parts())
    out["text"] = parts[0].get_content()
    status = parts[1].get_payload()
    out["per_message"] = fields(status[0])
    out["per_recipient"] = [fields(r) for r in status[1:]]
    if len(parts) > 2:
        returned = parts[2]
        if returned.get_content_type() in ("message/rfc822", "message/global"):
            inner = returned.get_payload()[0]
            out["returned_headers"] = fields(inner)
            out["returned_body"] = inner.get_content()
        else:
            out["returned_headers_text"] = returned.get_content()
    print(json.dumps(out))


def relay(data, return_port):
    """Sends one filtered message on; answers the filter's client after."""
    sender, recipients, message = data
    header = b"X-Filtered: yes\r\n"
    with smtplib.SMTP("127.0.0.1", return_port, timeout=30) as s:
        s.sendmail(sender, recipients, header + message)


def serve_filter(listen, return_port):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", int(listen)))
    server.listen(16)
    print("listening", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=session, args=(conn, int(return_port)), daemon=True).start()


def session(conn, return_port):
    f = conn.makefile("rb")
    reply = lambda text: conn.sendall(text.encode() + b"\r\n")
    reply("220 filter.test ESMTP")
    sender, recipients = "", []
    while True:
        line = f.readline()
        if not line:
            return
        verb = line[:4].upper()
        if verb in (b"EHLO", b"HELO"):
            reply("250-filter.test\r\n250 8BITMIME")
        elif verb == b"MAIL":
            sender = line.split(b"<", 1)[1].split(b">", 1)[0].decode()
            recipients = []
            reply("250 2.1.0 Ok")
        elif verb == b"RCPT":
            recipients.append(line.split(b"<", 1)[1].split(b">", 1)[0].decode())
            reply("250 2.1.5 Ok")
        elif verb == b"DATA":
            reply("354 go ahead")
            lines = []
            while True:
                l = f.readline()
                if l in (b".\r\n", b""):
                    break
                lines.append(l[1:] if l.startswith(b"..") else l)
            try:
                relay((sender, recipients, b"".join(lines)), return_port)
                reply("250 2.0.0 scanned and passed on")
            except Exception as e:  # the gateway will retry
                reply(f"451 4.3.0 cannot pass on: {e}")
        elif verb == b"QUIT":
            reply("221 2.0.0 Bye")
            return
        else:
            reply("250 2.0.0 Ok")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"send": send, "dsn": dsn, "filter": serve_filter}[cmd](*args)
