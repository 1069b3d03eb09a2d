#!/usr/bin/python3
"""Clients and servers for captures/make-protocols.sh (Debian's python3; real servers elsewhere).

    protopeer.py redis-inline HOST PORT --sport N      inline commands to a real redis-server
    protopeer.py memcached HOST PORT --sport N         text protocol to a real memcached
    protopeer.py smtp-server ADDR PORT                 aiosmtpd (Debian python3-aiosmtpd), Sink
                                                       handler, host name mail.example.test;
                                                       runs until killed
    protopeer.py smtp-client HOST PORT --sport N       smtplib: EHLO, MAIL, RCPT, DATA, QUIT
    protopeer.py imap-server ADDR PORT                 one connection: replays a Dovecot 2.3
                                                       session (responses as Dovecot writes them)
    protopeer.py imap-client HOST PORT --sport N       imaplib: CAPABILITY, LOGIN, SELECT, FETCH,
                                                       LOGOUT with tags a001, a002, ...
Every client prints what it received (for the make log) and fails on an unexpected reply.
"""
import argparse
import imaplib
import smtplib
import socket
import sys
import time


def connect(a):
    s = socket.create_connection((a.host, a.port), source_address=("", a.sport))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def exchange(s, data, until, show):
    """Sends data, reads until the reply ends with `until`, returns the reply."""
    s.sendall(data)
    buf = b""
    while not buf.endswith(until):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    if show:
        print("   ", data[:40], "->", buf[:60])
    return buf


def redis_inline(a):
    """Inline commands (no RESP array): what a person types with nc/telnet. The first bytes of
    the connection are `GET foo\\r\\n` (a method-like word, but no request target, no version)."""
    s = connect(a)
    for cmd, want in [(b"GET foo\r\n", b"$-1\r\n"), (b"SET foo bar\r\n", b"+OK\r\n"),
                      (b"GET foo\r\n", b"$3\r\nbar\r\n"), (b"PING\r\n", b"+PONG\r\n"),
                      (b"QUIT\r\n", b"+OK\r\n")]:
        got = exchange(s, cmd, want, True)
        if got != want:
            sys.exit(f"redis: {cmd!r} -> {got!r}, want {want!r}")
        time.sleep(0.05)
    s.close()


def memcached(a):
    s = connect(a)
    page = b"<h1>cached page</h1>"
    steps = [
        (b"get /index.html\r\n", b"END\r\n"),
        (b"set /index.html 0 300 %d\r\n%s\r\n" % (len(page), page), b"STORED\r\n"),
        (b"get /index.html\r\n", b"VALUE /index.html 0 %d\r\n%s\r\nEND\r\n" % (len(page), page)),
        (b"set greeting 0 0 5\r\nhello\r\n", b"STORED\r\n"),
        (b"get greeting\r\n", b"VALUE greeting 0 5\r\nhello\r\nEND\r\n"),
        (b"delete greeting\r\n", b"DELETED\r\n"),
        (b"stats\r\n", None),
    ]
    for cmd, want in steps:
        got = exchange(s, cmd, want or b"END\r\n", True)
        if want is not None and got != want:
            sys.exit(f"memcached: {cmd!r} -> {got!r}, want {want!r}")
        time.sleep(0.05)
    s.sendall(b"quit\r\n")
    s.recv(1)   # memcached closes the connection
    s.close()


def smtp_server(a):
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink
    c = Controller(Sink(), hostname=a.host, port=a.port, server_hostname="mail.example.test")
    c.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        c.stop()


BODY = ("From: alice@example.test\r\n"
        "To: bob@example.test\r\n"
        "Subject: how to fetch the page\r\n"
        "\r\n"
        "Send these lines to port 80:\r\n"
        "\r\n"
        "GET / HTTP/1.1\r\n"
        "Host: x\r\n"
        "\r\n"
        "The answer starts with HTTP/1.1 200 OK.\r\n")
# A second message without any header: its DATA segment starts exactly like an HTTP request.
RAW = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def smtp_client(a):
    c = smtplib.SMTP(local_hostname="client.example.test", source_address=("", a.sport))
    c.connect(a.host, a.port)
    c.ehlo()
    for body in (BODY, RAW):
        refused = c.sendmail("alice@example.test", ["bob@example.test"], body)
        if refused:
            sys.exit(f"smtp: refused {refused}")
    c.quit()
    print("    smtp: message accepted")


# A Dovecot 2.3 session (greeting and completion texts as Dovecot writes them).
CAPS = ("IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES "
        "THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN "
        "NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES "
        "WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW "
        "STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE")
MAIL_HEAD = (b"From: alice@example.test\r\nSubject: how to fetch the page\r\n\r\n")
MAIL_TEXT = (b"Send these lines to port 80:\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")


def imap_server(a):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.host, a.port))
    ls.listen(1)
    s, _ = ls.accept()
    f = s.makefile("rb")
    s.sendall(b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
              b"AUTH=PLAIN] Dovecot (Debian) ready.\r\n")
    while True:
        line = f.readline()
        if not line:
            break
        tag, cmd, *rest = line.rstrip(b"\r\n").split(b" ", 2)
        cmd = cmd.upper()
        if cmd == b"CAPABILITY":
            out = (b"* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN\r\n"
                   b"%s OK Pre-login capabilities listed, post-login capabilities have more.\r\n" % tag)
        elif cmd == b"LOGIN":
            out = b"%s OK [CAPABILITY %s] Logged in\r\n" % (tag, CAPS.encode())
        elif cmd == b"SELECT":
            out = (b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
                   b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] "
                   b"Flags permitted.\r\n"
                   b"* 1 EXISTS\r\n* 0 RECENT\r\n"
                   b"* OK [UNSEEN 1] First unseen.\r\n"
                   b"* OK [UIDVALIDITY 1764000000] UIDs valid\r\n"
                   b"* OK [UIDNEXT 2] Predicted next UID\r\n"
                   b"%s OK [READ-WRITE] Select completed (0.002 + 0.000 + 0.001 secs).\r\n" % tag)
        elif cmd == b"FETCH" and b"HEADER" in rest[0].upper():
            out = (b"* 1 FETCH (BODY[HEADER.FIELDS (FROM SUBJECT)] {%d}\r\n%s)\r\n"
                   b"%s OK Fetch completed (0.001 + 0.000 secs).\r\n" % (len(MAIL_HEAD), MAIL_HEAD, tag))
        elif cmd == b"FETCH":
            out = (b"* 1 FETCH (FLAGS (\\Seen) BODY[TEXT] {%d}\r\n%s)\r\n"
                   b"%s OK Fetch completed (0.001 + 0.000 secs).\r\n" % (len(MAIL_TEXT), MAIL_TEXT, tag))
        elif cmd == b"LOGOUT":
            s.sendall(b"* BYE Logging out\r\n%s OK Logout completed (0.001 + 0.000 secs).\r\n" % tag)
            break
        else:
            out = b"%s BAD Error in IMAP command %s: Unknown command.\r\n" % (tag, cmd)
        s.sendall(out)
    s.close()


class TaggedIMAP4(imaplib.IMAP4):
    """imaplib with a fixed source port and the tags a001, a002, ... (RFC 3501's examples)."""

    # imaplib picks a random tag prefix when it connects: keep "a" (tags a001, a002, ...).
    tagpre = property(lambda self: b"a", lambda self, value: None)

    def __init__(self, host, port, sport):
        self.sport = sport
        super().__init__(host, port)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), source_address=("", self.sport))

    def _new_tag(self):
        self.tagnum += 1
        tag = b"a%03d" % self.tagnum
        self.tagged_commands[tag] = None
        return tag


def imap_client(a):
    m = TaggedIMAP4(a.host, a.port, a.sport)
    m.login("alice", "wonderland")
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"1"], (typ, data)
    typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])")
    assert typ == "OK", (typ, data)
    typ, data = m.fetch("1", "(BODY[TEXT])")
    assert typ == "OK" and b"GET / HTTP/1.1" in data[0][1], (typ, data)
    m.logout()
    print("    imap: fetched", len(data[0][1]), "bytes")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--sport", type=int, default=0)
    a = p.parse_args()
    roles = {"redis-inline": redis_inline, "memcached": memcached, "smtp-server": smtp_server,
             "smtp-client": smtp_client, "imap-server": imap_server, "imap-client": imap_client}
    roles[a.role](a)


if __name__ == "__main__":
    main()
