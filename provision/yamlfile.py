"""Safe YAML loading that remembers where every mapping key was written.

Errors about a variable must name its file and line, so mappings are loaded
as :class:`LocatedDict`, which keeps the location of each key. Only PyYAML's
SafeLoader is used: no tag can construct arbitrary Python objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from provision.errors import Location, YamlError


class LocatedDict(dict[str, Any]):
    """A dict that knows the file and line where each of its keys stands."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.locations: dict[str, Location] = {}
        self.location: Location | None = None

    def where(self, key: str) -> Location | None:
        """The location of ``key``, else of the mapping itself."""
        return self.locations.get(key, self.location)

    def located_copy(self, values: dict[str, Any]) -> LocatedDict:
        """``values`` (this mapping's keys, new values) with this mapping's locations."""
        copy = LocatedDict(values)
        copy.locations, copy.location = dict(self.locations), self.location
        return copy


class LocatedList(list[Any]):
    """A list that knows the file and line of each of its items."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.locations: list[Location] = []

    def where(self, index: int) -> Location | None:
        return self.locations[index] if 0 <= index < len(self.locations) else None

    def located_copy(self, items: list[Any]) -> LocatedList:
        """``items`` (as many as this list's) with this list's locations."""
        copy = LocatedList(items)
        copy.locations = list(self.locations)
        return copy


# libyaml's parser when PyYAML was built with it: several times faster on a
# large inventory, with the same safe constructors and the same marks.
_SafeBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LocatingLoader(_SafeBase):  # type: ignore[valid-type,misc]
    """SafeLoader whose mappings are LocatedDicts and sequences LocatedLists."""

    source_name = "<string>"


def _construct_mapping(loader: _LocatingLoader, node: yaml.MappingNode) -> LocatedDict:
    loader.flatten_mapping(node)
    result = LocatedDict()
    result.location = _location(loader, node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, (dict, list)):
            raise YamlError("a mapping key must be a scalar", _location(loader, key_node))
        key_text = str(key) if not isinstance(key, str) else key
        if key_text in result:
            raise YamlError(f"duplicate key {key_text!r}", _location(loader, key_node))
        result[key_text] = loader.construct_object(value_node, deep=True)
        result.locations[key_text] = _location(loader, key_node)
    return result


def _construct_sequence(loader: _LocatingLoader, node: yaml.SequenceNode) -> LocatedList:
    result = LocatedList(loader.construct_object(item, deep=True) for item in node.value)
    result.locations = [_location(loader, item) for item in node.value]
    return result


def _location(loader: _LocatingLoader, node: yaml.Node) -> Location:
    mark = node.start_mark
    return Location(loader.source_name, mark.line + 1, mark.column + 1)


_LocatingLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)
_LocatingLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml_text(text: str, source_name: str) -> Any:
    """Parse one YAML document; errors carry ``source_name:line:column``."""
    loader = _LocatingLoader(text)
    loader.source_name = source_name
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if mark is None:
            raise YamlError(problem, Location(source_name)) from None
        raise YamlError(problem, Location(source_name, mark.line + 1, mark.column + 1)) from None
    except yaml.YAMLError as exc:
        raise YamlError(str(exc), Location(source_name)) from None
    finally:
        loader.dispose()


def load_yaml_file(path: Path) -> Any:
    """Read and parse a YAML file; an unreadable file is a YamlError too."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlError(f"cannot read file: {exc}", Location(str(path))) from None
    return load_yaml_text(text, str(path))
