"""Plugin registries: built-ins, entry points from installed packages, clashes, suggestions."""

from __future__ import annotations

import sys
import types
from importlib import metadata

import pytest

from gtn_search.errors import ConfigError, UnknownNameError
from gtn_search.registry import OPS, Registry


def test_builtin_ops_cover_the_paper_and_more():
    from search_spaces.ops import PAPER_OPS

    for name in PAPER_OPS + ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3"):
        assert name in OPS
    assert OPS.entries()[0].description


def test_unknown_name_suggests():
    with pytest.raises(UnknownNameError, match="did you mean 'sep_conv_3x3'"):
        OPS.get("sep_conv3x3")


def test_register_refuses_clashes():
    reg: Registry = Registry("widget", "gtn_search.test_widgets", "gtn_search.errors")

    @reg.register("a")
    def first():
        """First widget."""

    reg.register("a")(first)  # same object again: harmless
    with pytest.raises(ConfigError, match="registered twice"):
        reg.add("a", lambda: None)
    assert reg.names() == ["a"] and reg.entries()[0].description == "First widget."


def _fake_entry_points(module_name: str, names: dict[str, str], group: str):
    eps = [metadata.EntryPoint(name=n, value=f"{module_name}:{attr}", group=group) for n, attr in names.items()]
    return lambda group=None, **_: [ep for ep in eps if ep.group == group]


def test_entry_points_are_merged_and_clashes_refused(monkeypatch):
    mod = types.ModuleType("fake_plugin_pkg")

    def tiny_op(c_in, c_out, stride):
        """A plugin op."""
        from search_spaces.ops import Identity

        return Identity(c_in, c_out, stride)

    mod.tiny_op = tiny_op
    monkeypatch.setitem(sys.modules, "fake_plugin_pkg", mod)
    monkeypatch.setattr(OPS, "_loaded", False)  # make the real registry read entry points again
    monkeypatch.setattr(metadata, "entry_points", _fake_entry_points("fake_plugin_pkg", {"tiny": "tiny_op"}, "gtn_search.ops"))
    try:
        assert OPS.get("tiny") is tiny_op and "conv_3x3" in OPS
        assert next(e for e in OPS.entries() if e.name == "tiny").source == "entry point fake_plugin_pkg:tiny_op"
    finally:
        OPS.unregister("tiny")

    monkeypatch.setattr(OPS, "_loaded", False)
    monkeypatch.setattr(metadata, "entry_points", _fake_entry_points("fake_plugin_pkg", {"conv_3x3": "tiny_op"}, "gtn_search.ops"))
    with pytest.raises(ConfigError, match="'conv_3x3' is registered twice: by search_spaces.ops .* and by entry point"):
        OPS.names()


def test_broken_plugin_is_reported(monkeypatch):
    reg: Registry = Registry("op", "gtn_search.ops", "search_spaces.ops")
    monkeypatch.setattr(metadata, "entry_points", _fake_entry_points("no_such_module_xyz", {"bad": "f"}, "gtn_search.ops"))
    with pytest.raises(ConfigError, match="plugin 'bad'.*failed to import"):
        reg.names()
