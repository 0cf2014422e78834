"""Errors answered in vLLM's OpenAI error shape: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

import json
from http import HTTPStatus


def error_type(status: int) -> str:
    """OpenAI-style type name from the status phrase: 503 -> ServiceUnavailableError."""
    name = HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    return name if name.endswith("Error") else name + "Error"


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_ or error_type(status)
        self.param = param

    def body(self) -> bytes:
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.status}
        return json.dumps({"error": error}, separators=(",", ":")).encode()
