#!/usr/bin/python3
"""Differential framing: the same request streams through corral's connection state machine
(frame_oracle, over the memory transport) and through h11 (python3-h11, a strict HTTP/1.1
implementation written by others); both must agree on where each message ends, on what it
holds (method, target, version, body) and on which stream is rejected.

Every disagreement either has a rule below (a choice RFC 9112 / RFC 9110 leaves open, a
known h11 leniency, or a pending change of corral's: issue 17 item 11), or fails the run
with its seed, index and stream (repr), to be reproduced with --seed S --only I.

  /usr/bin/python3 tests/http/diff_h11.py --oracle build/tests/http/frame_oracle \
      [--seed N] [--count N] [--only I] [-v]

Exit status: 0 when every disagreement is classified, 1 otherwise, 77 (skip) without h11.
See tests/http/README.md for the classified differences.
"""
import argparse
import collections
import random
import re
import subprocess
import sys

try:
    import h11
except ImportError:  # scripts/install-deps.sh installs python3-h11
    print("diff_h11: python3-h11 is not installed: skipped")
    sys.exit(77)

MAX_BODY = 65536  # frame_oracle's max_body


class Result:
    """What one implementation made of a stream: the requests it read to their end, each
    (method, target, version, body, closes), and how the stream ended: ("reject", status),
    ("truncated",) inside a body, ("closed",) after a response that closes, or
    ("eof", pending) with pending bytes of an unfinished head."""

    def __init__(self, msgs, end, offsets=None):
        self.msgs, self.end, self.offsets = msgs, end, offsets or []

    def __repr__(self):
        return "msgs=%r end=%r" % (self.msgs, self.end)


# ---- h11 ------------------------------------------------------------------------------------


def h11_version(v):
    return {b"1.1": 11, b"1.0": 10}.get(v, v.decode())


def skip_empty_lines(data, at):
    """Past the empty lines at data[at:]. RFC 9112 2.2: a server SHOULD ignore at least one
    empty line received before the request-line, and MAY take a bare LF for a line's end;
    corral (llhttp) skips both, h11 rejects the first empty line it sees."""
    while True:
        if data.startswith(b"\r\n", at):
            at += 2
        elif data.startswith(b"\n", at):
            at += 1
        else:
            return at


def keep_alive_10(headers):
    """An HTTP/1.0 request asks for a persistent connection. RFC 9112 9.3 / C.2.2: a server
    MAY keep it; h11 never does, corral does. The driver then goes on with a new h11
    connection past the message."""
    tokens = [t.strip().lower() for n, v in headers if n == b"connection" for t in v.split(b",")]
    return b"keep-alive" in tokens and b"close" not in tokens


def h11_run(data):
    """h11 as a server on data, answering each request with an empty 200. Each message
    starts on a new h11.Connection, past the empty lines before it (see skip_empty_lines)."""
    msgs, offsets = [], []
    cur, eof, start = None, False, 0
    at = skip_empty_lines(data, 0)
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data[at:])
    while True:
        try:
            ev = conn.next_event()
        except h11.RemoteProtocolError as e:
            pending = len(data) - start if cur is None else 0
            if not eof:
                return Result(msgs, ("reject", e.error_status_hint), offsets)
            return Result(msgs, ("truncated",) if cur else ("eof", pending), offsets)
        if ev is h11.NEED_DATA:
            conn.receive_data(b"")
            eof = True
        elif isinstance(ev, h11.Request):
            cur = [ev.method.decode("latin-1"), ev.target, h11_version(ev.http_version), b""]
            persists10 = ev.http_version == b"1.0" and keep_alive_10(ev.headers)
        elif isinstance(ev, h11.Data):
            cur[3] += ev.data
        elif isinstance(ev, h11.EndOfMessage):
            at = len(data) - len(conn.trailing_data[0])
            offsets.append(at)
            # After the response: a request proposing an upgrade leaves h11's state open
            # until the response declines it.
            conn.send(h11.Response(status_code=200, headers=[(b"content-length", b"0")]))
            conn.send(h11.EndOfMessage())
            closes = conn.their_state is h11.MUST_CLOSE and not persists10
            msgs.append(tuple(cur) + (int(closes),))
            cur = None
            if closes:
                return Result(msgs, ("closed",), offsets)
            start, eof = at, False
            at = skip_empty_lines(data, at)
            conn = h11.Connection(h11.SERVER)
            conn.receive_data(data[at:])
        elif isinstance(ev, h11.ConnectionClosed):
            return Result(msgs, ("eof", len(data) - start), offsets)
        elif ev is h11.PAUSED:  # not expected: each message has a connection of its own
            return Result(msgs, ("closed",), offsets)


# ---- corral ---------------------------------------------------------------------------------


def unhex(s):
    return b"" if s == "-" else bytes.fromhex(s)


def corral_run_all(oracle, streams):
    """Each of streams (data, piece) through frame_oracle, in one process."""
    inp = b"".join(b"%d %d\n" % (len(d), p) + d for d, p in streams)
    out = subprocess.run([oracle], input=inp, stdout=subprocess.PIPE, check=True).stdout
    results, msgs = [], []
    for line in out.decode().splitlines():
        f = line.split(" ")
        if f[0] == "M":
            msgs.append((f[1], unhex(f[2]), int(f[3]), unhex(f[4]), int(f[5])))
            continue
        end = {"reject": ("reject", int(f[2])), "truncated": ("truncated",),
               "closed": ("closed",), "eof": ("eof", int(f[3]))}[f[1]]
        results.append(Result(msgs, end))
        msgs = []
    if len(results) != len(streams):
        sys.exit("diff_h11: frame_oracle answered %d of %d streams" % (len(results), len(streams)))
    return results


# ---- The streams ----------------------------------------------------------------------------

METHODS = [b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH"]
TARGETS = [b"/", b"/a", b"/a/b?x=1&y", b"/%20x", b"/a;b", b"/~u/?q=a/b"]
CL_FORMS = [b"%d", b"0%d", b" %d ", b"%d\t", b"%d, %d", b"%d,%d", b"+%d", b"-%d", b"%d %d",
            b"0x%d", b"", b"%d;", b"99999999999999999999999"]
TE_FORMS = [b"chunked", b"Chunked", b"CHUNKED", b" chunked ", b"chunked, chunked",
            b"gzip, chunked", b"chunked, gzip", b"identity", b"chunked;q=1", b"\tchunked",
            b"x-chunked", b"chunkedx", b"chunked,", b",chunked", b""]
EXTS = [b";a", b";a=b", b';a="q s"', b";a=b;c", b" ;a", b"; a", b";a =b", b";", b";a=",
        b';a="\\"', b";a=b c", b"\t;a", b";a=b;c=d", b';n="va\\"l"', b" ; a = b", b";a= b",
        b";a ", b";=b", b';a="\x7f"', b';a="b" ;c', b";a;b"]
INSERT = b" \t\r\n\x00:;,=\"\\\x01\x7f\x80\xff0aAzZ/?#-_."


def chunked(rng, body):
    """body in chunks; mostly well formed, sometimes in a tricky valid or invalid form."""
    out, i = b"", 0
    while i < len(body):
        n = rng.randint(1, max(1, len(body) - i))
        size = b"%x" % n if rng.random() < 0.5 else b"%X" % n
        if rng.random() < 0.1:
            size = b"0" * rng.randint(1, 22) + size
        ext = rng.choice(EXTS) if rng.random() < 0.15 else b""
        out += size + ext + b"\r\n" + body[i:i + n] + b"\r\n"
        i += n
    last = b"0" if rng.random() < 0.9 else rng.choice([b"00", b"0;x=y", b"000"])
    trailer = b""
    if rng.random() < 0.15:
        trailer = rng.choice([b"X-T: 1\r\n", b"X-T: 1\r\nX-U: 2\r\n", b"Content-Length: 9\r\n",
                              b"X-T: a\r\n b\r\n", b"X-T 1\r\n"])
    return out + last + b"\r\n" + trailer + b"\r\n"


def framing(rng, body):
    """Framing headers and the encoded body."""
    r = rng.random()
    if r < 0.35:
        return [], b""
    if r < 0.65:
        f = rng.choice(CL_FORMS) if rng.random() < 0.3 else b"%d"
        v = f.replace(b"%d", b"%d" % len(body)) if b"%d" in f else f
        hs = [b"Content-Length: " + v]
        if rng.random() < 0.08:
            hs.append(b"Content-Length: %d" % (len(body) + rng.choice([0, 1])))
        return hs, body
    te = rng.choice(TE_FORMS) if rng.random() < 0.3 else b"chunked"
    hs = [b"Transfer-Encoding: " + te]
    if rng.random() < 0.06:
        hs.append(b"Transfer-Encoding: chunked")
    if rng.random() < 0.08:
        hs.append(b"Content-Length: %d" % len(body))
    rng.shuffle(hs)
    return hs, chunked(rng, body)


def message(rng):
    method = rng.choice(METHODS)
    target = rng.choice(TARGETS)
    if method == b"OPTIONS" and rng.random() < 0.3:
        target = b"*"
    if rng.random() < 0.03:
        target = b"http://h.example/x"  # absolute-form
    version = b"HTTP/1.1" if rng.random() < 0.85 else rng.choice(
        [b"HTTP/1.0", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"HTTP/0.9"])
    body = bytes(rng.choice(b"abcxyz\r\n0123 ") for _ in range(rng.randint(0, 24)))
    hs, enc = framing(rng, body)
    if version != b"HTTP/1.0" or rng.random() < 0.2:
        hs.append(b"Host: " + rng.choice([b"h.example", b"h.example:8080", b"localhost", b""]))
    for _ in range(rng.randint(0, 3)):
        hs.append(rng.choice([b"X-A: 1", b"Accept: */*", b"User-Agent: t/1.0", b"X-E:",
                              b"X-S:  sp  ", b"X-Tab:\tt\t", b"X-O: \x80\xff",
                              b"Expect: 100-continue"]))
    r = rng.random()
    if r < 0.06:
        hs.append(b"Connection: close")
    elif r < 0.12:
        hs.append(b"Connection: keep-alive")
    elif r < 0.14:
        hs.append(rng.choice([b"Connection: Close", b"Connection: x, close", b"Connection: closex"]))
    elif r < 0.15:
        hs += [b"Connection: upgrade", b"Upgrade: x/1"]
    rng.shuffle(hs)
    return method + b" " + target + b" " + version + b"\r\n" + b"".join(
        h + b"\r\n" for h in hs) + b"\r\n" + enc


def mutate(rng, s):
    """One byte-level change of s."""
    if not s:
        return s
    i = rng.randrange(len(s))
    r = rng.random()
    if r < 0.2:
        return s[:i] + bytes([rng.choice(INSERT)]) + s[i:]
    if r < 0.35:
        return s[:i] + s[i + 1:]
    if r < 0.5:
        return s[:i] + bytes([rng.choice(INSERT)]) + s[i + 1:]
    if r < 0.6:  # a CRLF becomes LF, CR or CRCRLF
        j = s.find(b"\r\n", i)
        if j < 0:
            return s
        return s[:j] + rng.choice([b"\n", b"\r", b"\r\r\n", b"\n\r"]) + s[j + 2:]
    if r < 0.7:  # a line repeated
        j = s.find(b"\r\n", i)
        k = s.rfind(b"\r\n", 0, i)
        if j < 0:
            return s
        return s[:j + 2] + s[k + 2:j + 2] + s[j + 2:]
    if r < 0.78:  # case of a run
        j = min(len(s), i + rng.randint(1, 12))
        seg = s[i:j]
        return s[:i] + (seg.upper() if rng.random() < 0.5 else seg.lower()) + s[j:]
    if r < 0.85:  # an obs-fold
        j = s.find(b"\r\n", i)
        if j < 0:
            return s
        return s[:j] + b"\r\n" + rng.choice([b" ", b"\t", b"  "]) + b"x" + s[j:]
    if r < 0.92:  # whitespace around a colon or at a line's start
        j = s.find(b":", i)
        if j < 0:
            return s
        return s[:j] + rng.choice([b" :", b"\t:", b": ", b":\t"]) + s[j + 1:]
    return s[:i]  # truncated


def stream(rng):
    s = b""
    for _ in range(rng.choice([1, 1, 2, 2, 3, 4])):
        if rng.random() < 0.05:
            s += rng.choice([b"\r\n", b"\n", b"\r\n\r\n"])
        s += message(rng)
    if rng.random() < 0.6:
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            s = mutate(rng, s)
    return s, rng.choice([1, 3, 7, 16, 64, 4096])


# ---- Comparison -----------------------------------------------------------------------------

# Why corral may reject a message h11 accepts. Each is a form RFC 9112 / RFC 9110 lets a
# server reject (or one corral rejects more strictly than the RFC asks, which is no smuggling
# risk), found in the message where the two part; README.md lists them.
CORRAL_REJECTS = {
    "bare-lf": "RFC 9112 2.2: a recipient MAY take a bare LF for CRLF; corral does not",
    "bare-cr": "RFC 9112 2.2: a bare CR MUST be taken as invalid or replaced by SP",
    "obs-fold": "RFC 9112 5.2: a server MUST reject obs-fold with 400 or replace it by SP "
                "(h11 unfolds)",
    "request-line": "RFC 9112 3: a request-line with other whitespace than single SPs is "
                    "invalid (a server MAY split on whitespace)",
    "method": "RFC 9110 9.1: a method corral does not know (llhttp's list; methods are "
              "case-sensitive) SHOULD get 501, as corral answers (400 for a non-token)",
    "target-form": "RFC 9112 3.2: a target that is not origin-form or '*' (absolute-form: "
                   "pending, issue 17 item 11)",
    "fragment": "RFC 9112 3.2: a request-target has no fragment ('#' is in none of its "
                "forms); corral rejects it (400), h11 keeps it in the target",
    "version": "RFC 9110 6.2 / 15.6.6: a version other than 1.0 and 1.1 may get 505 "
               "(HTTP/1.2 as 1.1: issue 17 item 11)",
    "ctl-in-value": "RFC 9110 5.5: a field value with a CTL is invalid (h11 keeps them, as "
                    "RFC 9110 5.5 allows)",
    "ctl-in-name": "RFC 9110 5.1: a field name is a token",
    "cl-list": "RFC 9110 8.6: a list or repeated Content-Length of equal values MAY be "
               "rejected (h11 takes the one value)",
    "cl-and-te": "RFC 9112 6.1: a server MAY reject a request with both Content-Length and "
                 "Transfer-Encoding (h11 frames it by Transfer-Encoding)",
    "te-in-1.0": "RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding MUST be treated as "
                 "faulty (h11 decodes it and closes)",
    "cl-ows": "RFC 9110 5.5: OWS around a value is not part of it; llhttp rejects a "
              "Content-Length with a trailing HTAB (stricter than the RFC)",
    "host": "RFC 9112 3.2: a Host value that is not uri-host [':' port] MUST get 400 (h11 "
            "does not check it: an h11 bug; corral checks it)",
    "chunk-line": "RFC 9112 7.1: a chunk line with whitespace after the size and no ';', or "
                  "an extension outside RFC 9112 7.1.1's grammar (h11 takes anything after "
                  "';', and trailing OWS)",
    "chunk-size-overflow": "RFC 9112 7.1: a recipient MUST prevent integer overflows in a "
                           "chunk-size; corral rejects one of 64 bits or more (h11 takes 20 digits "
                           "of any value)",
    "trailer-framing": "RFC 9110 6.5.1: framing fields are not for a trailer section; llhttp "
                       "checks Content-Length in one as in a header section",
    "cl-limit": "RFC 9110 15.5.14: a Content-Length above corral's max_body gets 413",
    "connect": "RFC 9110 9.3.6: CONNECT is for proxies; corral answers 501",
    "trailer": "RFC 9112 7.1.2: a trailer section line that is not a field line",
}

# Why h11 may reject a message corral accepts: h11's own limits or strictness beyond the RFC.
H11_REJECTS = {
    "chunk-size-digits": "RFC 9112 7.1 sets no limit on a chunk-size's digits (leading zeros); "
                         "h11 takes at most 20",
    "chunk-bws": "RFC 9112 7.1.1: BWS before a chunk extension's ';' is in the grammar; h11 "
                 "wants the ';' right after the chunk-size",
    "te-list": "RFC 9110 5.6.1: empty list elements are ignored (',chunked'), and RFC 9112 6.1 "
               "lets Transfer-Encoding come in several lines; h11 wants exactly one "
               "'chunked'",
    "empty-line-cr": "RFC 9112 2.2: CR and LF at the end of a stream, before any request line: "
                     "corral waits for one (and rejects a bare CR when it starts), h11 rejects a "
                     "CR at once",
}

# Why the two may disagree on whether a connection closes after a message.
CLOSES = {
    "upgrade": "RFC 9110 7.8: corral grants no upgrade and closes after a request asking for "
               "one (Connection: upgrade); h11 goes on",
}

LLHTTP_METHODS = set(b"DELETE GET HEAD POST PUT CONNECT OPTIONS TRACE COPY LOCK MKCOL MOVE "
                     b"PROPFIND PROPPATCH SEARCH UNLOCK BIND REBIND UNBIND ACL REPORT MKACTIVITY "
                     b"CHECKOUT MERGE M-SEARCH NOTIFY SUBSCRIBE UNSUBSCRIBE PATCH PURGE "
                     b"MKCALENDAR LINK UNLINK SOURCE".split())
TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
# A plain host name or address and port: corral may reject any other (issue 17 item 11)
HOST = re.compile(rb"[-.0-9A-Za-z]*(:[0-9]{1,5})?")
CTL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9112 7.1.1: chunk-size *( BWS ";" BWS token [ BWS "=" BWS ( token / quoted-string ) ] )
CHUNK_OK = re.compile(rb"[0-9A-Fa-f]+([ \t]*;[ \t]*[-!#$%&'*+.^_`|~0-9a-zA-Z]+([ \t]*=[ \t]*"
                      rb"([-!#$%&'*+.^_`|~0-9a-zA-Z]+|"
                      rb'"([\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"))?)*')
CHUNK_BWS = re.compile(rb"([0-9A-Fa-f]+)[ \t]+(?=;)")  # BWS before the first ';'


def chunk_faults(body):
    """The forms named in the tables that a strict reading of a chunked body (RFC 9112 7.1)
    meets up to its first fault."""
    f, i = set(), 0
    while True:
        j = body.find(b"\r\n", i)
        if j < 0:
            return f
        line, i = body[i:j], j + 2
        m = re.match(rb"[0-9A-Fa-f]+", line)
        if not m:
            return f
        if len(m.group()) > 20:
            f.add("chunk-size-digits")
        if not CHUNK_OK.fullmatch(line):  # the size is still read: go on
            f.add("chunk-line")
        elif CHUNK_BWS.match(line):
            f.add("chunk-bws")
        n = int(m.group(), 16)
        if n >= 1 << 64:
            return f | {"chunk-size-overflow"}
        if n == 0:
            break
        if body[i + n:i + n + 2] != b"\r\n":
            return f
        i += n + 2
    while True:  # the trailer section
        j = body.find(b"\r\n", i)
        if b"\n" in (body[i:j] if j >= 0 else body[i:]):
            return f | {"bare-lf"}  # a trailer line or the final line ended by a bare LF
        if j <= i:
            return f
        m = re.fullmatch(rb"([-!#$%&'*+.^_`|~0-9a-zA-Z]+):[ \t]*([^\x00-\x1f\x7f]*)", body[i:j])
        if not m:
            return f | {"trailer"}
        if m.group(1).lower() in (b"content-length", b"transfer-encoding"):
            f.add("trailer-framing")
        i = j + 2


def split_head(rest):
    """A message's head (without its empty lines before and its final blank line) and what
    follows it."""
    i = 0
    while rest[i:i + 1] in (b"\r", b"\n"):
        i += 1
    m = re.compile(rb"\r?\n\r?\n").search(rest, i)
    return (rest[i:m.start()], rest[m.end():]) if m else (rest[i:], b"")


def features(rest):
    """The forms in the message at the start of rest that the tables above name."""
    head, body = split_head(rest)
    f = set()
    full = rest[:len(rest) - len(body)]
    if re.search(rb"(?<!\r)\n", full.lstrip(b"\r\n")):
        f.add("bare-lf")
    if re.search(rb"\r(?!\n)", full.lstrip(b"\n")) or re.search(rb"\r(?!\n)", rest[:64]):
        f.add("bare-cr")
    lines = re.split(rb"\r?\n", head)
    parts = lines[0].split(b" ")
    version = b""
    if len(parts) != 3:
        f.add("request-line")
    else:
        method, target, version = parts
        if method not in LLHTTP_METHODS:
            f.add("method")
        if method == b"CONNECT":
            f.add("connect")
        if not target.startswith(b"/") and target != b"*":
            f.add("target-form")
        if b"#" in target:
            f.add("fragment")
        if version not in (b"HTTP/1.0", b"HTTP/1.1"):
            f.add("version")
    hdrs = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            f.add("obs-fold")
            continue
        name, _, raw = line.partition(b":")
        value = raw.strip(b" \t")
        if not TOKEN.fullmatch(name):
            f.add("ctl-in-name")
        if CTL.search(value) or b"\r" in raw:
            f.add("ctl-in-value")
        hdrs.append((name.lower(), raw, value))
    cls = [v for n, _, v in hdrs if n == b"content-length"]
    tes = [v for n, _, v in hdrs if n == b"transfer-encoding"]
    if len(cls) > 1 or any(b"," in v for v in cls):
        f.add("cl-list")
    if any(r.rstrip(b" ") != r.rstrip(b" \t") for n, r, _ in hdrs if n == b"content-length"):
        f.add("cl-ows")
    if any(v.isdigit() and int(v) > MAX_BODY for v in cls):
        f.add("cl-limit")
    if cls and tes:
        f.add("cl-and-te")
    if tes and version == b"HTTP/1.0":
        f.add("te-in-1.0")
    if len(tes) > 1 or any(not v or v.startswith(b",") or v.endswith(b",") or b",," in v
                           for v in tes):
        f.add("te-list")
    if any(not HOST.fullmatch(v) for n, _, v in hdrs if n == b"host"):
        f.add("host")
    if tes:
        f |= chunk_faults(body)
    return f


def closes_features(rest):
    head, _ = split_head(rest)
    conn = b",".join(v for n, v in re.findall(rb"(?im)^([-\w]+):[ \t]*([^\r\n]*)", head)
                     if n.lower() == b"connection").lower()
    return {"upgrade"} if b"upgrade" in [t.strip() for t in conn.split(b",")] else set()


# Messages both accept but report differently, when corral changes as issue 17 item 11 plans.
PENDING = {
    "version-1x": "RFC 9110 2.5: an HTTP/1.x request with x > 1 may be served as 1.1 (pending, "
                  "issue 17 item 11; h11 reports the version as sent)",
    "absolute-form": "RFC 9112 3.2.2: a server MUST accept absolute-form; corral may report "
                     "the target or its path (issue 17 item 11)",
}


def msg_match(hm, cm):
    """"" when h11's message hm and corral's cm are equal, the name of the PENDING rule that
    makes them so, or None."""
    if hm == cm:
        return ""
    why = ""
    if isinstance(hm[2], str) and re.fullmatch(r"1\.[2-9]", hm[2]) and cm[2] == 11:
        hm, why = hm[:2] + (11,) + hm[3:], "version-1x"
    m = re.fullmatch(rb"(?i)https?://[^/?#]*([/?].*)?", hm[1])
    path = m.group(1) or b"" if m else b""
    if m and cm[1] in (hm[1], path if path.startswith(b"/") else b"/" + path):  # ("?q": "/?q")
        hm, why = hm[:1] + (cm[1],) + hm[2:], "absolute-form"
    return why if hm == cm else None


def same_end(h, c):
    """Reject statuses are not compared (h11's are hints)."""
    return h.end[0] == c.end[0] and (h.end[0] == "reject" or h.end == c.end)


def classify(data, h, c):
    """None if h and c agree, else the name of the rule that explains their first difference,
    or "UNEXPLAINED"."""
    k, pending = 0, set()
    while k < min(len(h.msgs), len(c.msgs)) and msg_match(h.msgs[k], c.msgs[k]) is not None:
        pending.add(msg_match(h.msgs[k], c.msgs[k]))
        k += 1
    pending.discard("")
    if k == len(h.msgs) == len(c.msgs) and same_end(h, c):
        return min(pending) if pending else None
    start = h.offsets[k - 1] if k else 0
    rest = data[start:]
    f = features(rest)
    h_has, c_has = k < len(h.msgs), k < len(c.msgs)
    if h_has and c_has and msg_match(h.msgs[k][:4] + (0,), c.msgs[k][:4] + (0,)) is not None:
        why = closes_features(rest) if c.msgs[k][4] else set()  # the same message, closes or not
        return min(why) if why else "UNEXPLAINED"
    if c.end[0] == "reject" and not c_has:  # corral rejects what h11 accepts, reads or waits for
        if (h.end[0] == "eof" and h.end[1] or h.end[0] == "truncated") and len(h.msgs) == k:
            # h11 waits for the end of a line (of the head, a chunk or the trailer) where
            # corral judges each byte: judge the line h11 would get with CRLFs added
            h2 = h11_run(data + b"\r\n\r\n")
            if len(h2.msgs) == k and h2.end[0] == "reject":
                return None
            f |= features(rest + b"\r\n\r\n")
        why = f & CORRAL_REJECTS.keys()
        return min(why) if why else "UNEXPLAINED"
    if h.end[0] == "reject" and not h_has:  # h11 rejects what corral accepts or waits for
        if c.end[0] == "eof" and re.fullmatch(rb"[\r\n]+", rest):
            return "empty-line-cr"  # corral waits for a request line after them
        # The risky direction: rewrite the forms h11 rejects into ones it takes, which must
        # make h11 agree with corral on the rest of the stream.
        rewritten = data[:start] + h11_rewrite(rest, f)
        if rewritten == data:
            return "UNEXPLAINED"
        why = classify(rewritten, h11_run(rewritten), c)
        return why or min(f & H11_REJECTS.keys())
    return "UNEXPLAINED"


def strip_chunk_bws(rest):
    """rest with the BWS before the first ';' of its first message's chunk lines cut (the
    chunk lines walked as chunk_faults walks them, so that chunk data stays as it is)."""
    head, body = split_head(rest)
    out, i = [], 0
    while True:
        j = body.find(b"\r\n", i)
        m = re.match(rb"[0-9A-Fa-f]+", body[i:j]) if j >= 0 else None
        if not m:
            break
        out.append(CHUNK_BWS.sub(rb"\1", body[i:j], count=1) + b"\r\n")
        n, i = int(m.group(), 16), j + 2
        if n == 0:
            break
        out.append(body[i:i + n + 2])
        i += n + 2
    return rest[:len(rest) - len(body)] + b"".join(out) + body[i:]


def h11_rewrite(rest, f):
    """rest with the forms of H11_REJECTS found in it (f) written as h11 takes them."""
    if "chunk-bws" in f:
        rest = strip_chunk_bws(rest)
    if "chunk-size-digits" in f:  # keep 20 digits of a chunk-size's leading zeros
        rest = re.sub(rb"(?m)^0+(?=[0-9A-Fa-f]{20})(?=[0-9A-Fa-f]+(;|\r\n))", b"", rest)
    if "te-list" in f:  # one line "Transfer-Encoding: chunked" for the ones of the head
        head, body = split_head(rest)
        at = rest.index(head) + len(head)
        lines = re.split(rb"(?<=\n)", head)
        keep = [ln for ln in lines if not ln.lower().startswith(b"transfer-encoding:")]
        if len(keep) < len(lines):
            head = b"".join(keep).rstrip(b"\r\n") + b"\r\nTransfer-Encoding: chunked"
        rest = rest[:rest.index(lines[0])] + head + rest[at:]
    return rest


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--oracle", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--only", type=int, default=None)
    ap.add_argument("-v", action="store_true", help="print every difference, classified or not")
    ap.add_argument("--show", default="", help="with -v: only the differences of this rule")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    streams = [stream(rng) for _ in range(a.count)]
    idx = [a.only] if a.only is not None else range(a.count)
    chosen = [streams[i] for i in idx]
    tally, bad = collections.Counter(), 0
    for i, (data, piece), c in zip(idx, chosen, corral_run_all(a.oracle, chosen)):
        h = h11_run(data)
        why = classify(data, h, c)
        if why is None:
            tally["agree"] += 1
            continue
        tally[why] += 1
        if why == "UNEXPLAINED" or (a.v and a.show in ("", why)):
            bad += why == "UNEXPLAINED"
            if why != "UNEXPLAINED" or bad <= 20:
                print("%s: seed %d stream %d (piece %d): %r\n    h11: %r\n corral: %r"
                      % (why, a.seed, i, piece, data, h, c))
    print("diff_h11: seed %d, %d streams: %s" % (a.seed, len(chosen), ", ".join(
        "%s %d" % kv for kv in sorted(tally.items()))))
    if bad:
        print("diff_h11: %d unexplained differences" % bad)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
