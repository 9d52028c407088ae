"""Specification of the `transform` glue: what `process` may return and how it becomes output
events, errors per event, configuration, and the packed layout it reads and writes."""

import unittest

from tests import fake_bindings as fb

fb.install()


def run(app, events, config="{}"):
    world = app.WitWorld()
    world.configure(config)
    return fb.unpack_batch(world.process(fb.pack_batch(events)))


EVENTS = [
    {"payload": b'{"n":1}', "key": b"a", "time": 10, "headers": [(b"h", b"1")]},
    {"payload": b'{"n":2}', "key": b"", "time": -5},
    {
        "payload": b'{"n":3}',
        "key": "é".encode(),
        "time": 1 << 40,
        "headers": [(b"x", b"y"), (b"x", b"z")],
    },
]


class TransformOutputs(unittest.TestCase):
    def test_forwarding_every_event_reproduces_the_input(self):
        app = fb.make_app(
            "transform", "import weir\n@weir.transform\ndef process(e, c):\n    return e\n"
        )
        out = run(app, EVENTS)
        self.assertEqual(
            [(o["payload"], o["key"], o["time"], o["headers"], o["origin"]) for o in out],
            [
                (e["payload"], e["key"], e["time"], e.get("headers", []), i)
                for i, e in enumerate(EVENTS)
            ],
        )

    def test_none_drops_and_payloads_inherit_key_time_headers(self):
        app = fb.make_app(
            "transform",
            (
                "import weir\n@weir.transform\ndef process(e, c):\n"
                "    n = e.json['n']\n"
                "    return None if n == 2 else ('text é' if n == 1 else {'m': n * 10})\n"
            ),
        )
        out = run(app, EVENTS)
        self.assertEqual([o["payload"] for o in out], ["text é".encode(), b'{"m":30}'])
        self.assertEqual(
            [(o["key"], o["time"], o["origin"]) for o in out],
            [(b"a", 10, 0), ("é".encode(), 1 << 40, 2)],
        )
        self.assertEqual(out[1]["headers"], [(b"x", b"y"), (b"x", b"z")])

    def test_a_list_emits_several_events_in_order_with_the_same_origin(self):
        app = fb.make_app(
            "transform",
            (
                "import weir\n@weir.transform\ndef process(e, c):\n"
                "    return [e, b'copy', weir.Output([1, 2], key='k2', time=7, headers={'a': 'b'})]\n"
            ),
        )
        out = run(app, EVENTS[:2])
        self.assertEqual([o["origin"] for o in out], [0, 0, 0, 1, 1, 1])
        self.assertEqual([o["payload"] for o in out][:3], [b'{"n":1}', b"copy", b"[1,2]"])
        self.assertEqual(
            (out[2]["key"], out[2]["time"], out[2]["headers"]), (b"k2", 7, [(b"a", b"b")])
        )
        self.assertEqual((out[4]["key"], out[4]["time"]), (b"", -5))

    def test_replace_changes_only_the_given_fields(self):
        app = fb.make_app(
            "transform",
            (
                "import weir\n@weir.transform\ndef process(e, c):\n"
                "    return e.replace(key=e.key + b'!')\n"
            ),
        )
        out = run(app, EVENTS)
        self.assertEqual([o["key"] for o in out], [b"a!", b"!", "é!".encode()])
        self.assertEqual([o["payload"] for o in out], [e["payload"] for e in EVENTS])
        self.assertEqual(out[0]["headers"], [(b"h", b"1")])

    def test_event_fields_and_headers_read_from_the_batch(self):
        app = fb.make_app(
            "transform",
            (
                "import weir\nseen = []\n@weir.transform\ndef process(e, c):\n"
                "    seen.append((e.index, e.key, e.key_str, e.time, e.text, e.json, e.headers,\n"
                "                 e.header_items, e.header('x')))\n"
            ),
        )
        run(app, EVENTS)
        self.assertEqual(
            app.seen[0], (0, b"a", "a", 10, '{"n":1}', {"n": 1}, {"h": "1"}, [("h", "1")], None)
        )
        self.assertEqual(app.seen[1][1:3], (b"", None))
        self.assertEqual(app.seen[2][6:], ({"x": "y"}, [("x", "y"), ("x", "z")], "y"))


class TransformErrors(unittest.TestCase):
    def test_an_event_error_names_the_failing_event(self):
        app = fb.make_app(
            "transform",
            (
                "import weir\n@weir.transform\ndef process(e, c):\n"
                "    if e.index == 1:\n        raise weir.EventError('bad event')\n    return e\n"
            ),
        )
        world = app.WitWorld()
        world.configure("{}")
        with self.assertRaises(fb.Err) as cm:
            world.process(fb.pack_batch(EVENTS))
        self.assertEqual(cm.exception.value, fb.EventError(1, "bad event"))

    def test_any_exception_fails_its_event_with_type_and_place(self):
        app = fb.make_app(
            "transform",
            "import weir\n@weir.transform\ndef process(e, c):\n    return e.json['missing']\n",
        )
        world = app.WitWorld()
        world.configure("{}")
        with self.assertRaises(fb.Err) as cm:
            world.process(fb.pack_batch(EVENTS))
        err = cm.exception.value
        self.assertEqual(err.index, 0)
        self.assertTrue(err.message.startswith("KeyError: 'missing' (at test_app_"), err.message)

    def test_invalid_json_payload_is_an_event_error(self):
        app = fb.make_app(
            "transform", "import weir\n@weir.transform\ndef process(e, c):\n    return e.json\n"
        )
        world = app.WitWorld()
        world.configure("{}")
        with self.assertRaises(fb.Err) as cm:
            world.process(fb.pack_batch([{"payload": b"{}"}, {"payload": b"NaN"}]))
        self.assertEqual(
            cm.exception.value, fb.EventError(1, "payload is not JSON: NaN is not a JSON number")
        )

    def test_unsupported_return_value_is_an_event_error(self):
        app = fb.make_app(
            "transform", "import weir\n@weir.transform\ndef process(e, c):\n    return [[1]]\n"
        )
        world = app.WitWorld()
        world.configure("{}")
        with self.assertRaises(fb.Err) as cm:
            world.process(fb.pack_batch(EVENTS))
        self.assertIn("cannot hold another list", cm.exception.value.message)

    def test_process_before_configure_is_refused(self):
        app = fb.make_app(
            "transform", "import weir\n@weir.transform\ndef process(e, c):\n    return e\n"
        )
        with self.assertRaises(fb.Err) as cm:
            app.WitWorld().process(fb.pack_batch(EVENTS))
        self.assertIn("before a successful `configure`", cm.exception.value.message)


class TransformConfig(unittest.TestCase):
    def test_configure_hook_result_is_what_process_receives(self):
        app = fb.make_app(
            "transform",
            (
                "import weir\n@weir.transform\ndef process(e, c):\n    return c\n"
                "@weir.configure\ndef configure(config):\n    return {'got': config}\n"
            ),
        )
        out = run(app, EVENTS[:1], config='{"a":1}')
        self.assertEqual(out[0]["payload"], b'{"got":{"a":1}}')

    def test_config_errors_refuse_configure_with_the_message(self):
        app = fb.make_app(
            "transform",
            (
                "import weir\n@weir.configure\ndef configure(config):\n"
                "    raise weir.ConfigError('config field `min`: expected a number')\n"
                "@weir.transform\ndef process(e, c):\n    return e\n"
            ),
        )
        with self.assertRaises(fb.Err) as cm:
            app.WitWorld().configure("{}")
        self.assertEqual(cm.exception.value, "config field `min`: expected a number")
        with self.assertRaises(fb.Err) as cm:
            app.WitWorld().configure("{bad")
        self.assertTrue(cm.exception.value.startswith("config is not valid JSON"))

    def test_a_module_exports_one_operator_of_the_world_being_built(self):
        with self.assertRaises(TypeError) as cm:
            fb.make_app(
                "aggregate", "import weir\n@weir.transform\ndef process(e, c):\n    return e\n"
            )
        self.assertIn("world `aggregate`", str(cm.exception))
        with self.assertRaises(TypeError) as cm:
            fb.make_app(
                "transform",
                (
                    "import weir\n@weir.transform\ndef a(e, c):\n    return e\n"
                    "@weir.transform\ndef b(e, c):\n    return e\n"
                ),
            )
        self.assertIn("already exports", str(cm.exception))


class Logging(unittest.TestCase):
    def test_log_and_print_reach_the_host_log_once_configured(self):
        app = fb.make_app(
            "transform",
            (
                "import weir\n@weir.transform\ndef process(e, c):\n"
                "    weir.log.info('hello')\n    print('printed')\n    return e\n"
            ),
        )
        import sys

        from weir import log

        saved = sys.stdout
        sys.stdout = log.LogWriter(2)
        try:
            fb.log_records.clear()
            run(app, EVENTS[:1])
        finally:
            sys.stdout = saved
        self.assertEqual(fb.log_records, [(fb.Level.INFO, "hello"), (fb.Level.INFO, "printed")])


if __name__ == "__main__":
    unittest.main()
