"""The SDK's one door to the bindings componentize-py generates for the world being built, and
the registration of a plugin's glue class as the component's exports.

componentize-py generates a `wit_world` package for the world named on its command line and
exports the class `WitWorld` of the app module. The SDK's decorators (`@weir.transform`,
`@weir.aggregate`, `@weir.process`) build that class and store it as `WitWorld` in the module
that used the decorator, so the app module needs no boilerplate. Outside a build (unit tests,
an IDE) the generated modules are absent and `wit_world` is None until tests install fakes.
"""

import sys

try:
    import wit_world
    from componentize_py_types import Err
    from wit_world.imports import types
except ImportError:  # not inside a component build
    wit_world = None
    types = None

    class Err(Exception):
        """Stand-in for componentize_py_types.Err outside a component build."""

        def __init__(self, value):
            super().__init__(value)
            self.value = value


#: The export that tells each world apart in the generated `WitWorld` protocol.
_WORLD_MARKERS = {"transform": "process", "aggregate": "add", "process": "on_events"}


def built_world():
    """The world being built (`transform`, `aggregate` or `process`), or None outside a build."""
    if wit_world is None:
        return None
    for world, marker in _WORLD_MARKERS.items():
        if hasattr(wit_world.WitWorld, marker):
            return world
    return None


def export(world, glue_class, module_name, what):
    """Makes `glue_class` the exports of the component built from module `module_name`.

    `what` names the decorated object in errors. Refuses a world other than the one being
    built and a second export from the same module.
    """
    building = built_world()
    if building is not None and building != world:
        raise TypeError(
            f"{what} is exported with @weir.{world}, but the component is being built for "
            f'world `{building}`: set `world = "{world}"` in weir-plugin.toml'
        )
    if wit_world is not None:
        missing = [
            name
            for name in getattr(wit_world.WitWorld, "__abstractmethods__", ())
            if not hasattr(glue_class, name)
        ]
        if missing:
            raise TypeError(
                f"the WIT world `{world}` exports {', '.join(sorted(missing))}, which this "
                f"version of the weir Python SDK does not implement"
            )
    module = sys.modules[module_name]
    previous = getattr(module, "WitWorld", None)
    if previous is not None and getattr(previous, "_weir_world", None) is not None:
        raise TypeError(
            f"module `{module_name}` already exports a {previous._weir_world} operator; "
            f"a plugin exports exactly one (found another: {what})"
        )
    glue_class._weir_world = world
    module.WitWorld = glue_class
    return glue_class
