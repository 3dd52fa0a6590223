"""RFC 7386 merge patch and RFC 6902 JSON patch, checked against the RFCs' own examples."""

from __future__ import annotations

from typing import Any

import pytest

from revision_controller.testing.patches import PatchError, json_patch, merge_patch


@pytest.mark.parametrize(("target", "patch", "expected"), [
    # RFC 7386 appendix A
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
])
def test_merge_patch_rfc7386_examples(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


def test_merge_patch_leaves_its_arguments_alone() -> None:
    target = {"spec": {"list": [1, 2], "keep": {"x": 1}}}
    patch = {"spec": {"list": [3], "keep": {"y": 2}}}
    result = merge_patch(target, patch)
    result["spec"]["keep"]["z"] = 3
    assert target == {"spec": {"list": [1, 2], "keep": {"x": 1}}}
    assert patch == {"spec": {"list": [3], "keep": {"y": 2}}}


def test_json_patch_add_remove_replace() -> None:
    document = {"a": {"b": 1}, "list": [1, 2]}
    result = json_patch(document, [
        {"op": "add", "path": "/a/c", "value": 2},
        {"op": "add", "path": "/list/0", "value": 0},
        {"op": "add", "path": "/list/-", "value": 3},
        {"op": "remove", "path": "/a/b"},
        {"op": "replace", "path": "/list/1", "value": 10},
    ])
    assert result == {"a": {"c": 2}, "list": [0, 10, 2, 3]}
    assert document == {"a": {"b": 1}, "list": [1, 2]}


def test_json_patch_move_and_copy() -> None:
    document = {"from": {"x": [1]}, "to": {}}
    result = json_patch(document, [
        {"op": "copy", "from": "/from/x", "path": "/to/copied"},
        {"op": "move", "from": "/from/x", "path": "/to/moved"},
    ])
    assert result == {"from": {}, "to": {"copied": [1], "moved": [1]}}
    result["to"]["copied"].append(2)
    assert result["to"]["moved"] == [1]


def test_json_patch_pointer_escapes() -> None:
    document = {"a/b": 1, "m~n": 2}
    result = json_patch(document, [
        {"op": "test", "path": "/a~1b", "value": 1},
        {"op": "replace", "path": "/m~0n", "value": 3},
        {"op": "add", "path": "/~01", "value": "tilde-one"},
    ])
    assert result == {"a/b": 1, "m~n": 3, "~1": "tilde-one"}


def test_json_patch_whole_document() -> None:
    assert json_patch({"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}]) == {"b": 2}


@pytest.mark.parametrize("value", [1, 1.0])
def test_json_patch_test_compares_json_values(value: float) -> None:
    document = {"n": 1, "flag": True, "obj": {"a": [1, {"b": None}]}}
    json_patch(document, [{"op": "test", "path": "/n", "value": value},
                          {"op": "test", "path": "/obj", "value": {"a": [1, {"b": None}]}}])


@pytest.mark.parametrize("operation", [
    {"op": "test", "path": "/n", "value": 2},
    {"op": "test", "path": "/flag", "value": 1},  # true is not 1 in JSON
    {"op": "test", "path": "/n", "value": "1"},
    {"op": "remove", "path": "/missing"},
    {"op": "replace", "path": "/missing", "value": 1},
    {"op": "add", "path": "/missing/child", "value": 1},
    {"op": "add", "path": "/list/5", "value": 1},
    {"op": "add", "path": "/list/01", "value": 1},
    {"op": "remove", "path": "/list/-"},
    {"op": "move", "from": "/obj", "path": "/obj/inside"},
    {"op": "copy", "from": "/missing", "path": "/x"},
    {"op": "add", "path": "no-leading-slash", "value": 1},
    {"op": "add", "path": "/x"},
    {"op": "frobnicate", "path": "/n"},
    {"path": "/n"},
    "not an object",
])
def test_json_patch_rejects(operation: Any) -> None:
    document = {"n": 1, "flag": True, "list": [1], "obj": {}}
    with pytest.raises(PatchError):
        json_patch(document, [operation])


def test_json_patch_is_all_or_nothing() -> None:
    document = {"n": 1}
    with pytest.raises(PatchError, match="test failed"):
        json_patch(document, [{"op": "replace", "path": "/n", "value": 2},
                              {"op": "test", "path": "/n", "value": 3}])
    assert document == {"n": 1}
