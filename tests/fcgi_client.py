"""A small FastCGI client for the black-box tests (FastCGI 1.0, responder).

It speaks the protocol directly over a socket so the tests can do what a
web server does, and what a broken or hostile one might."""

import socket
import struct
import time

VERSION = 1
BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 2, 3, 4, 5, 6, 7
GET_VALUES, GET_VALUES_RESULT, UNKNOWN_TYPE = 9, 10, 11
RESPONDER = 1
KEEP_CONN = 1


def record(rtype, request_id, content=b"", padding=0):
    header = struct.pack(">BBHHBB", VERSION, rtype, request_id, len(content), padding, 0)
    return header + content + b"\0" * padding


def encode_length(n):
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def encode_params(params):
    out = b""
    for name, value in params.items():
        name = name.encode() if isinstance(name, str) else name
        value = value.encode() if isinstance(value, str) else value
        out += encode_length(len(name)) + encode_length(len(value)) + name + value
    return out


def stream_records(rtype, request_id, data, chunk=65535):
    out = b""
    for i in range(0, len(data), chunk):
        out += record(rtype, request_id, data[i:i + chunk])
    return out + record(rtype, request_id)


def begin_record(request_id=1, keep_conn=False, role=RESPONDER, padding=0):
    body = struct.pack(">HB5x", role, KEEP_CONN if keep_conn else 0)
    return record(BEGIN_REQUEST, request_id, body, padding)


def request_head(params, request_id=1, **kw):
    """A request's BEGIN_REQUEST and its whole PARAMS stream."""
    return begin_record(request_id, **kw) + stream_records(PARAMS, request_id, encode_params(params))


def get_values(*names):
    """A GET_VALUES management record asking for names."""
    return record(GET_VALUES, 0, b"".join(encode_params({n: ""}) for n in names))


class Response:
    def __init__(self):
        self.stdout = b""
        self.stderr = b""
        self.app_status = None
        self.protocol_status = None
        self.events = []  # (monotonic time, type, content)

    @property
    def complete(self):
        return self.app_status is not None

    def split(self):
        head, sep, body = self.stdout.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("no header block in %r" % self.stdout[:200])
        headers = []
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            headers.append((name.decode().strip(), value.decode().strip()))
        return headers, body

    @property
    def headers(self):
        return self.split()[0]

    @property
    def body(self):
        return self.split()[1]

    def header(self, name):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    @property
    def status(self):
        s = self.header("Status")
        if s:
            return int(s.split()[0])
        return 302 if self.header("Location") else 200


class Client:
    def __init__(self, address, timeout=20):
        if isinstance(address, tuple):
            self.sock = socket.create_connection(address, timeout=timeout)
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(address)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def begin(self, params, request_id=1, keep_conn=False, role=RESPONDER):
        self.send(request_head(params, request_id, keep_conn=keep_conn, role=role))

    def send_stdin(self, data, request_id=1, end=True):
        for i in range(0, len(data), 65535):
            self.send(record(STDIN, request_id, data[i:i + 65535]))
        if end:
            self.send(record(STDIN, request_id))

    def read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed with %d of %d bytes" % (len(self.buf), n))
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_record(self):
        version, rtype, rid, clen, plen, _ = struct.unpack(">BBHHBB", self.read_exact(8))
        content = self.read_exact(clen)
        self.read_exact(plen)
        return rtype, rid, content

    def read_response(self, request_id=1, response=None):
        resp = response or Response()
        while True:
            rtype, rid, content = self.read_record()
            resp.events.append((time.monotonic(), rtype, content))
            if rtype == STDOUT:
                resp.stdout += content
            elif rtype == STDERR:
                resp.stderr += content
            elif rtype == END_REQUEST:
                resp.app_status, resp.protocol_status = struct.unpack(">IB3x", content)
                return resp

    def request(self, params, stdin=b"", request_id=1, keep_conn=False):
        if stdin:
            self.begin(params, request_id, keep_conn)
            self.send_stdin(stdin, request_id)
        else:
            # The head and the body's end in one write, as a web server
            # sends a request without a body: the daemon may answer, and
            # close, as soon as it has read the head (a bad header block
            # is answered at once), and a second write would then fail.
            self.send(request_head(params, request_id, keep_conn=keep_conn) + record(STDIN, request_id))
        return self.read_response(request_id)


def request(address, params, stdin=b"", timeout=20):
    with Client(address, timeout) as c:
        return c.request(params, stdin)


def is_closed(sock, timeout):
    """True if the peer closes the connection within timeout seconds."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (socket.timeout, TimeoutError):
        return False
    except ConnectionError:
        return True
