"""Exit 0 when a Kafka broker answers a Metadata request and lists at least one broker (or at
least N with `--brokers N`).

Stdlib only, so the stack can check Kafka before any project virtualenv exists.
"""

import socket
import struct
import sys


def metadata_brokers(host: str, port: int) -> int:
    client_id = b"nbzx-stack"
    # Metadata v4: topics=null (all), allow_auto_topic_creation=false. v0-v3 are gone in Kafka 4.
    body = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id + struct.pack(">ib", -1, 0)
    with socket.create_connection((host, port), timeout=3) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _read(s, 4))[0]
        resp = _read(s, size)
    _corr, _throttle, brokers = struct.unpack(">iii", resp[:12])
    return int(brokers)


def _read(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


if __name__ == "__main__":
    host, _, port = sys.argv[1].rpartition(":")
    want = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--brokers" else 1
    try:
        n = metadata_brokers(host, int(port))
    except (OSError, struct.error) as exc:
        print(f"kafka not ready: {exc}")
        sys.exit(1)
    print(f"kafka ready: {n} broker(s)")
    sys.exit(0 if n >= want else 1)
