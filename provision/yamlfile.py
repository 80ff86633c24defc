"""Safe YAML loading that remembers where every mapping key was written.

Errors about a variable must name its file and line, so mappings are loaded
as :class:`LocatedDict`, which keeps the location of each key. Only PyYAML's
SafeLoader is used: no tag can construct arbitrary Python objects. Ansible's
``!unsafe`` gives an :class:`UnsafeText`; its ``!vault`` tag gives an :class:`~provision.inventory.vault.EncryptedValue`
(decrypted only when needed), and a whole file written by ``ansible-vault
encrypt`` is decrypted with the run's vault before it is parsed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from provision.errors import Location, YamlError

if TYPE_CHECKING:
    from provision.inventory.vault import EncryptedValue, Vault

# provision.inventory.vault is imported where it is used: the inventory
# package imports this module, so a top-level import would go round in a circle.


class UnsafeText(str):
    """Text never to be templated (Ansible's ``!unsafe``, and what a
    ``constructed`` source computes): ``{{`` in it stays as written."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (UnsafeText, (str(self),))


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


def _construct_vault(loader: _LocatingLoader, node: yaml.Node) -> EncryptedValue:
    from provision.inventory.vault import EncryptedValue

    if not isinstance(node, yaml.ScalarNode):
        raise YamlError("a !vault value must be the text ansible-vault encrypt_string printed", _location(loader, node))
    return EncryptedValue(str(loader.construct_scalar(node)), _location(loader, node))


_LocatingLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)
_LocatingLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _construct_unsafe(loader: _LocatingLoader, node: yaml.Node) -> UnsafeText:
    if not isinstance(node, yaml.ScalarNode):
        raise YamlError("!unsafe is for a text value", _location(loader, node))
    return UnsafeText(loader.construct_scalar(node))


_LocatingLoader.add_constructor("!vault", _construct_vault)
_LocatingLoader.add_constructor("!unsafe", _construct_unsafe)


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


def read_text_file(path: Path, vault: Vault | None = None) -> tuple[str, bool]:
    """A file's text, decrypted first when ``ansible-vault encrypt`` wrote it;
    and whether it was. An unreadable file is a YamlError."""
    from provision.inventory.vault import Vault, is_encrypted

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise YamlError(f"cannot read file: {exc.strerror or exc}", Location(str(path))) from None
    encrypted = is_encrypted(data)
    if encrypted:
        data = (vault or Vault()).decrypt(data.decode("ascii", "replace"), Location(str(path)))
    try:
        return data.decode("utf-8"), encrypted
    except UnicodeDecodeError as exc:
        raise YamlError(f"cannot read file: not UTF-8 text ({exc.reason} at byte {exc.start})", Location(str(path))) from None


def load_yaml_file(path: Path, vault: Vault | None = None) -> Any:
    """Read and parse a YAML file; an unreadable file is a YamlError too.

    Every string of an encrypted file is marked as vault text (a secret)."""
    from provision.inventory.vault import mark_decrypted

    text, encrypted = read_text_file(path, vault)
    data = load_yaml_text(text, str(path))
    return mark_decrypted(data) if encrypted else data
