"""One mapping of HTTP failures, for sources and channels alike."""

from __future__ import annotations

import pytest
import requests
import urllib3

from pipeline.errors import PermanentFailure, TemporaryFailure
from pipeline.http_errors import exchange_failure, innermost_reason, status_failure


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, None),
        (204, None),
        (304, None),  # redirects and "not modified" are the caller's to handle
        (301, None),
        (400, PermanentFailure),
        (401, PermanentFailure),
        (404, PermanentFailure),
        (422, PermanentFailure),
        (429, TemporaryFailure),
        (500, TemporaryFailure),
        (503, TemporaryFailure),
    ],
)
def test_a_status_means_the_same_failure_everywhere(status, expected):
    assert status_failure(status) is expected


@pytest.mark.parametrize(
    ("exc", "words", "unknown"),
    [
        (requests.ConnectTimeout("x"), "cannot connect (ConnectTimeout)", False),
        (requests.exceptions.SSLError("x"), "cannot connect (SSLError)", False),
        (requests.ReadTimeout("x"), "no answer within 2.5 s; the post may have been made", True),
        (requests.ConnectionError("reset by peer"), "connection failed (ConnectionError)", True),
        (
            requests.ConnectionError(urllib3.exceptions.NewConnectionError(None, "refused")),
            "connection failed (ConnectionError)",
            False,
        ),
        (requests.exceptions.ChunkedEncodingError("x"), "the answer was broken", True),
    ],
)
def test_a_request_without_an_answer_is_temporary_and_says_whether_it_may_have_arrived(
    exc, words, unknown
):
    failure = exchange_failure(exc, service="Example", timeout=2.5)
    assert isinstance(failure, TemporaryFailure)
    assert failure.reason.startswith(f"Example: {words}")
    assert failure.unknown_outcome is unknown


def test_the_innermost_reason_is_the_one_shown():
    inner = OSError("[Errno 111] Connection refused")
    wrapped = requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", inner))
    assert innermost_reason(wrapped) == "[Errno 111] Connection refused"
