"""Serving errors are the general errors too, and do not shadow them on the REST client."""

from __future__ import annotations

import luminary.serving  # noqa: F401 - the serving errors must be loaded for this test
from luminary.errors import InvalidArgumentError, NotFoundError
from luminary.serving import InvalidInputError, ModelNotFoundError
from luminary.store._rest import error_from_body


def test_serving_errors_are_catchable_as_the_general_errors() -> None:
    assert issubclass(InvalidInputError, InvalidArgumentError)
    assert issubclass(ModelNotFoundError, NotFoundError)
    assert InvalidInputError.http_status == 400
    assert ModelNotFoundError.grpc_code == "NOT_FOUND"


def test_rest_client_maps_shared_codes_to_the_general_classes() -> None:
    missing = error_from_body(404, {"code": "not_found", "message": "no run 'x'"})
    invalid = error_from_body(400, {"code": "invalid_argument", "message": "bad"})
    assert type(missing) is NotFoundError
    assert type(invalid) is InvalidArgumentError
