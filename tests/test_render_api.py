"""What provision.roles.render relies on in Jinja2, checked against the installed Jinja.

render.py shares one large context among many renders instead of copying it
(``_run_shared``: the documented ``Template.new_context(vars, shared=True)``,
then ``root_render_func``, the one undocumented call) and evaluates
expressions as ``{% set result = ... %}`` templates. pyproject.toml pins the
Jinja range; each test here fails if Jinja changes a behaviour relied on, so
that a new Jinja release is checked before the pin moves.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment

from provision.errors import TemplateError
from provision.roles.render import Renderer, compile_expression, evaluate_shared, make_environment, render_shared


class CountingMap(ChainMap[str, Any]):
    """A mapping that counts how often it is walked as a whole (what a copy does)."""

    walks = 0

    def __iter__(self) -> Iterator[str]:
        CountingMap.walks += 1
        return super().__iter__()

    def keys(self) -> Any:
        CountingMap.walks += 1
        return super().keys()


@pytest.fixture
def big_context() -> CountingMap:
    CountingMap.walks = 0
    return CountingMap({f"var{i}": i for i in range(1000)} | {"name": "mx1", "items": [1, 2, 3]})


def test_a_shared_context_is_read_in_place_not_copied(big_context: CountingMap) -> None:
    env = make_environment([])
    template = env.from_string("{{ name }}:{% for i in items %}{{ i }}{% endfor %}:{{ var999 }}")
    assert render_shared(template, big_context) == "mx1:123:999"
    assert CountingMap.walks == 0  # Template.render(**context) would have copied it (walked it) twice
    # The control: the ordinary render copies, so the count above can fail.
    template.render(big_context)
    assert CountingMap.walks > 0


def test_the_context_is_the_parent_as_given(big_context: CountingMap) -> None:
    env = make_environment([])
    template = env.from_string("x")
    parent = ChainMap(big_context, template.globals)
    # Jinja2 annotates vars as a dict, but with shared=True any mapping is used as the parent as it is
    # (what this test proves); provision.roles.render casts for the same reason.
    context = template.new_context(parent, shared=True)  # type: ignore[arg-type]
    assert context.parent is parent


def test_assignments_never_write_to_the_shared_context() -> None:
    env = make_environment([])
    shared: dict[str, Any] = {"name": "mx1", "p": {}}
    template = env.from_string(
        "{% set name = 'changed' %}{% set extra = 1 %}{% for x in [1] %}{% set name = 'loop' %}{% endfor %}{{ name }}"
    )
    assert render_shared(template, shared) == "changed"
    assert shared == {"name": "mx1", "p": {}}


def test_a_top_level_set_is_exported_with_its_python_value() -> None:
    env = make_environment([])
    expression = compile_expression(env, "[a, {'k': b}] + [none]")
    value = evaluate_shared(expression, {"a": 1, "b": (2, 3)})
    assert value == [1, {"k": (2, 3)}, None]
    assert evaluate_shared(compile_expression(env, "a > 0"), {"a": 1}) is True


def test_an_undefined_result_raises_with_its_name() -> None:
    env = make_environment([])
    with pytest.raises(jinja2.UndefinedError, match="'missing' is undefined"):
        evaluate_shared(compile_expression(env, "missing"), {})
    with pytest.raises(jinja2.UndefinedError, match="has no attribute 'nope'"):
        evaluate_shared(compile_expression(env, "d.nope"), {"d": {}})


def test_an_expression_cannot_carry_more_template_code() -> None:
    env = make_environment([])
    with pytest.raises(jinja2.TemplateSyntaxError):
        compile_expression(env, "1 %}{% set other = 2")
    with pytest.raises(jinja2.TemplateSyntaxError):
        compile_expression(env, "1 %}text{% set result = 2")


def test_error_lines_map_back_to_the_template(tmp_path: Path) -> None:
    (tmp_path / "t.j2").write_text("line one\nline two\n{{ 1 // zero }}\nline four\n")
    renderer = Renderer([tmp_path])
    with pytest.raises(TemplateError) as caught:
        renderer.render_template("t.j2", {"zero": 0})
    assert caught.value.location is not None
    assert caught.value.location.line == 3
    assert str(caught.value.location.file).endswith("t.j2")


def test_environments_are_sandboxed() -> None:
    assert isinstance(make_environment([]), SandboxedEnvironment)
    assert isinstance(make_environment([], immutable=True), ImmutableSandboxedEnvironment)
    renderer = Renderer([], immutable=True)
    with pytest.raises(TemplateError, match="unsafe"):
        renderer.render_string("{{ lipsum.__globals__['os'].popen('id').read() }}", {}, "test")
    with pytest.raises(TemplateError, match="unsafe"):
        renderer.evaluate("{{ ''.__class__.__mro__ }}", {}, "test")
    with pytest.raises(TemplateError, match="unsafe"):
        renderer.evaluate("shared.append(1)", {"shared": []}, "test")
    # Role templates may build their own dicts (postfix's main.cf does).
    assert Renderer([]).render_string("{% set p = {} %}{% set _ = p.update({'a': 1}) %}{{ p.a }}", {}, "test") == "1"


def test_inventory_values_get_no_filter_that_touches_the_controller() -> None:
    with pytest.raises(TemplateError, match="local_ca_pem"):
        Renderer([], immutable=True).render_string("{{ '/tmp' | local_ca_pem }}", {}, "test")


def test_bare_names_and_constant_strings_take_the_short_way_with_the_same_result() -> None:
    renderer = Renderer([])
    context = {"flag": False, "true": "a variable named true", "items": [1, 2]}
    assert renderer.evaluate("flag", context, "test") is False
    assert renderer.evaluate("{{ items }}", context, "test") == [1, 2]
    assert renderer.evaluate("true", context, "test") is True  # the literal, as Jinja reads it
    with pytest.raises(TemplateError, match="'missing' is undefined"):
        renderer.evaluate("missing", context, "test")
    assert renderer.render_string("0644", context, "test") == "0644"
    assert renderer.render_string("a\r\nb", context, "test") == "a\nb"  # Jinja's newline normalisation still applies
