"""Whether a host answers on HTTPS: `python -m tools.reachable HOST` exits 0 if a TCP connection
to HOST:443 opens within 5 seconds, 1 otherwise. Standard library only: the Makefile runs it in a
venv that has nothing installed yet, to tell pip not to retry an index that cannot be reached."""

import socket
import sys


def reachable(host: str, timeout: float = 5.0) -> bool:
    """:return: whether a TCP connection to `host`:443 opens within `timeout` seconds."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(0 if reachable(sys.argv[1]) else 1)
