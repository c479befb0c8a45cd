"""DNS messages (RFC 1035) with struct: the little the embedded resolver needs.

A query is parsed into its header fields and one question; an answer copies
the question and adds resource records.  Names are compared lower-case and
without the trailing dot.  Anything malformed raises Malformed, so the server
can answer FORMERR (or drop it) instead of crashing.
"""
import socket
import struct

HEADER = struct.Struct(">HHHHHH")          # id, flags, qd, an, ns, ar counts
QUESTION_TAIL = struct.Struct(">HH")       # qtype, qclass
RR_HEAD = struct.Struct(">HHIH")           # type, class, ttl, rdlength

A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, OPT, ANY = 1, 2, 5, 6, 12, 15, 16, 28, 41, 255
IN = 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5

QR, AA, TC, RD, RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080
UDP_MAX = 512                              # without EDNS(0)
TYPE_NAMES = {A: "A", NS: "NS", CNAME: "CNAME", SOA: "SOA", PTR: "PTR", MX: "MX", TXT: "TXT",
              AAAA: "AAAA", OPT: "OPT", ANY: "ANY"}


class Malformed(ValueError):
    pass


def encode_name(name):
    """'web.example' -> b'\\x03web\\x07example\\x00'."""
    out = bytearray()
    for label in name.rstrip(".").split(".") if name.strip(".") else []:
        raw = label.encode("ascii", "strict") if label.isascii() else label.encode("idna")
        if not 0 < len(raw) < 64:
            raise Malformed(f"bad label in {name!r}")
        out += bytes([len(raw)]) + raw
    out += b"\x00"
    if len(out) > 255:
        raise Malformed(f"name too long: {name!r}")
    return bytes(out)


def decode_name(data, offset):
    """(name, offset after it), following compression pointers (guarded against loops)."""
    labels, end, jumps = [], None, 0
    while True:
        if offset >= len(data):
            raise Malformed("name runs past the message")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise Malformed("truncated pointer")
            if end is None:
                end = offset + 2
            jumps += 1
            if jumps > 32:
                raise Malformed("compression loop")
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length & 0xC0:
            raise Malformed("unknown label type")
        offset += 1
        if length == 0:
            break
        if offset + length > len(data):
            raise Malformed("label runs past the message")
        labels.append(data[offset:offset + length].decode("ascii", "replace"))
        offset += length
    return ".".join(labels), (end if end is not None else offset)


class Query:
    """A parsed query: id, flags, (name, qtype, qclass), the raw question bytes,
    and the UDP size the client accepts (EDNS(0) OPT record, else 512)."""

    def __init__(self, data):
        if len(data) < HEADER.size:
            raise Malformed("shorter than a header")
        self.id, self.flags, qd, an, ns, ar = HEADER.unpack_from(data)
        if self.flags & QR:
            raise Malformed("not a query")
        if qd != 1:
            raise Malformed(f"{qd} questions (one is supported)")
        self.name, end = decode_name(data, HEADER.size)
        if end + QUESTION_TAIL.size > len(data):
            raise Malformed("truncated question")
        self.qtype, self.qclass = QUESTION_TAIL.unpack_from(data, end)
        end += QUESTION_TAIL.size
        self.question = data[HEADER.size:end]
        self.opcode = (self.flags >> 11) & 0xF
        self.udp_size = UDP_MAX
        # Skip answer/authority records, look for OPT among the additional ones.
        offset = end
        for i in range(an + ns + ar):
            try:
                _, offset = decode_name(data, offset)
                rtype, rclass, _, rdlen = RR_HEAD.unpack_from(data, offset)
            except struct.error:
                raise Malformed("truncated record") from None
            offset += RR_HEAD.size + rdlen
            if i >= an + ns and rtype == OPT:
                self.udp_size = max(UDP_MAX, min(rclass, 4096))

    @property
    def key(self):
        return self.name.lower().rstrip(".")


def rdata_a(ip):
    return socket.inet_aton(ip)


def rdata_name(name):
    return encode_name(name)


def response(query, rcode=NOERROR, answers=(), authoritative=True, recursion=True,
             max_size=UDP_MAX):
    """The answer to `query`: answers are (rtype, ttl, rdata) for the question's
    name (a pointer to it: 0xC00C).  Over max_size the answers are dropped and
    TC is set, so the client retries over TCP."""
    flags = QR | (query.opcode << 11) | (query.flags & RD) | (rcode & 0xF)
    if authoritative:
        flags |= AA
    if recursion:
        flags |= RA
    body = bytearray()
    for rtype, ttl, rdata in answers:
        body += b"\xc0\x0c" + RR_HEAD.pack(rtype, IN, ttl, len(rdata)) + rdata
    count = len(answers)
    if HEADER.size + len(query.question) + len(body) > max_size:
        flags |= TC
        body, count = bytearray(), 0
    return HEADER.pack(query.id, flags, 1, count, 0, 0) + query.question + bytes(body)


def error(data, rcode):
    """An error answer even to a query that could not be parsed (FORMERR), when
    at least the header is there; None otherwise."""
    if len(data) < HEADER.size:
        return None
    qid, flags = struct.unpack_from(">HH", data)
    if flags & QR:
        return None
    flags = QR | (flags & (0x7800 | RD)) | RA | (rcode & 0xF)
    return HEADER.pack(qid, flags, 0, 0, 0, 0)


# --- the client side: for tests and the benchmark -----------------------------------
def query(name, qtype=A, qid=0x1234, recursion=True):
    flags = RD if recursion else 0
    return HEADER.pack(qid, flags, 1, 0, 0, 0) + encode_name(name) + QUESTION_TAIL.pack(qtype, IN)


def parse_response(data):
    """-> {"id", "rcode", "flags", "name", "answers": [(name, type, ttl, value)]}; A
    values as dotted quads, names decoded, anything else as raw bytes."""
    if len(data) < HEADER.size:
        raise Malformed("shorter than a header")
    qid, flags, qd, an, _, _ = HEADER.unpack_from(data)
    offset, name = HEADER.size, None
    for _ in range(qd):
        name, offset = decode_name(data, offset)
        offset += QUESTION_TAIL.size
    answers = []
    for _ in range(an):
        rname, offset = decode_name(data, offset)
        try:
            rtype, _, ttl, rdlen = RR_HEAD.unpack_from(data, offset)
        except struct.error:
            raise Malformed("truncated record") from None
        offset += RR_HEAD.size
        rdata = data[offset:offset + rdlen]
        if len(rdata) != rdlen:
            raise Malformed("truncated rdata")
        if rtype == A and rdlen == 4:
            value = socket.inet_ntoa(rdata)
        elif rtype in (PTR, CNAME, NS):
            value = decode_name(data, offset)[0]
        else:
            value = rdata
        offset += rdlen
        answers.append((rname, rtype, ttl, value))
    return {"id": qid, "flags": flags, "rcode": flags & 0xF, "name": name, "answers": answers}
