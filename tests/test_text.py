"""The text tools and how their uses are counted."""

from agentctl.processes.builtin.text import apply_calls, tool_schemas


def test_tools_apply_in_order_and_are_counted() -> None:
    result = apply_calls("Hello", [("UPPER", {"text": "Hello"}), ("LOWER", {}), ("UPPER", {})])
    assert result.text == "HELLO"
    assert result.tool_uses == {"UPPER": 2, "LOWER": 1}


def test_unknown_tools_are_skipped_and_reported() -> None:
    result = apply_calls("x", [("REVERSE", {"text": "x"})])
    assert result.text == "x"
    assert result.tool_uses == {"UPPER": 0, "LOWER": 0}
    assert result.note is not None and "REVERSE" in result.note


def test_tool_schemas_are_strict_objects() -> None:
    names = {t["function"]["name"] for t in tool_schemas()}
    assert names == {"UPPER", "LOWER"}
    assert all(t["function"]["parameters"]["additionalProperties"] is False for t in tool_schemas())
