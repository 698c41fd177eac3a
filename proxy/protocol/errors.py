"""Protocol errors say who is at fault, and carry the MySQL code and SQLSTATE to send.

Messages never include SQL text, values or secrets: they are sent to the client and logged.
"""

from __future__ import annotations


class MysqlError(Exception):
    """An error that is reported to the client as an ERR packet."""

    def __init__(self, code: int, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.sqlstate = sqlstate
        self.message = message


class ClientProtocolError(MysqlError):
    """The client broke the protocol; the connection cannot continue."""

    def __init__(self, message: str) -> None:
        super().__init__(1835, "08S01", message)  # ER_MALFORMED_PACKET


class BackendError(MysqlError):
    """An ERR packet from the backend, passed through unchanged."""


class BackendUnavailable(MysqlError):
    def __init__(self, message: str = "backend server unavailable") -> None:
        super().__init__(2013, "HY000", message)


# Codes the proxy itself raises.
ER_ACCESS_DENIED = (1045, "28000")
ER_UNKNOWN_COM = (1047, "08S01")
ER_NET_PACKET_TOO_LARGE = (1153, "08S01")
ER_UNSUPPORTED_PS = (1295, "HY000")
ER_NOT_SUPPORTED_YET = (1235, "42000")
ER_UNKNOWN_ERROR = (1105, "HY000")
