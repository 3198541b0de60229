"""The protocol messages are wire-compatible with Triton's own client package."""

from __future__ import annotations

from typing import Any

import pytest

from luminary.serving._proto import grpc_service_pb2 as ours
from luminary.serving._proto import model_config_pb2 as ours_config
from tests._components import import_component

triton_service = import_component("tritonclient.grpc.service_pb2", "triton")
triton_config = import_component("tritonclient.grpc.model_config_pb2", "triton")


def _mismatches(mine: Any, theirs: Any, path: str) -> list[str]:
    problems = []
    for field in mine.fields:
        other = theirs.fields_by_name.get(field.name)
        where = f"{path}.{field.name}"
        if other is None:
            problems.append(f"{where}: not in Triton's message")
            continue
        if (field.number, field.type, field.is_repeated) != (
            other.number,
            other.type,
            other.is_repeated,
        ):
            problems.append(f"{where}: number/type/label differ")
        if field.message_type is not None and other.message_type is not None:
            problems += _mismatches(field.message_type, other.message_type, where)
        if field.enum_type is not None and other.enum_type is not None:
            for value in field.enum_type.values:
                if other.enum_type.values_by_name[value.name].number != value.number:
                    problems.append(f"{where}: enum value {value.name} differs")
    return problems


@pytest.mark.parametrize(("mine", "theirs"), [(ours, triton_service), (ours_config, triton_config)])
def test_every_message_matches_tritons_field_numbers_and_types(mine: Any, theirs: Any) -> None:
    problems = []
    for name, descriptor in mine.DESCRIPTOR.message_types_by_name.items():
        problems += _mismatches(descriptor, theirs.DESCRIPTOR.message_types_by_name[name], name)
    assert problems == []


def test_service_methods_have_tritons_paths_and_types() -> None:
    mine = ours.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    theirs = triton_service.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert mine.full_name == "inference.GRPCInferenceService"
    for method in mine.methods:
        other = theirs.methods_by_name[method.name]
        assert method.input_type.full_name == other.input_type.full_name
        assert method.output_type.full_name == other.output_type.full_name
        assert (method.client_streaming, method.server_streaming) == (
            other.client_streaming,
            other.server_streaming,
        )


def test_messages_round_trip_through_tritons_classes() -> None:
    request = ours.ModelInferRequest(model_name="mlp", id="7")
    request.inputs.add(name="x", datatype="FP32", shape=[2, 16])
    request.raw_input_contents.append(b"\0" * 128)
    parsed = triton_service.ModelInferRequest.FromString(request.SerializeToString())
    assert parsed.model_name == "mlp"
    assert list(parsed.inputs[0].shape) == [2, 16]
    assert parsed.raw_input_contents[0] == b"\0" * 128


def test_both_packages_load_in_one_process() -> None:
    # Same package name ("inference"), separate descriptor pools: no duplicate-symbol error.
    assert ours.DESCRIPTOR.pool is not triton_service.DESCRIPTOR.pool
