"""The Python kit operators (plugins/python/kit-*) against the rules of plugins/kit/README.md,
case by case; the end-to-end comparison with the other languages is tests/e2e/kit.rs."""

import os
import unittest

from tests import fake_bindings as fb

fb.install()

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")


def plugin(name):
    return os.path.join(ROOT, "plugins", "python", name, "app.py")


class KitFilter(unittest.TestCase):
    def setUp(self):
        self.world = fb.load_app("transform", plugin("kit-filter")).WitWorld()

    def run_filter(self, config, payloads):
        self.world.configure(config)
        batch = fb.pack_batch([{"payload": p, "key": b"k", "time": 5} for p in payloads])
        return [(o["payload"], o["origin"]) for o in fb.unpack_batch(self.world.process(batch))]

    def test_keeps_fields_in_keep_order_compactly_and_drops_the_rest(self):
        out = self.run_filter(
            '{"min": 10, "keep": ["b", "amount", "a", "zz"]}',
            [
                '{"a": "é\\"\\\\", "amount": 10, "b": [1, {"c": null}], "d": 1}'.encode(),
                b'{"amount": 9.5, "a": 1}',
                b'{"amount": "12"}',
                b'{"amount": true}',
                b'{"other": 50}',
                b'{"amount": 10.5}',
            ],
        )
        self.assertEqual(
            out,
            [
                ('{"b":[1,{"c":null}],"amount":10,"a":"é\\"\\\\"}'.encode(), 0),
                (b'{"amount":10.5}', 5),
            ],
        )

    def test_empty_keep_reserializes_every_field_in_input_order(self):
        out = self.run_filter('{"field": "x"}', [b'{ "z": 1, "x": 0, "a": "\\u00e9" }'])
        self.assertEqual(out, [('{"z":1,"x":0,"a":"é"}'.encode(), 0)])

    def test_a_payload_that_is_not_an_object_fails_the_event(self):
        for bad in [b"[1,2,3]", b"not json {", b"NaN", b""]:
            self.world.configure("{}")
            with self.assertRaises(fb.Err) as cm:
                self.world.process(fb.pack_batch([{"payload": b'{"amount":1}'}, {"payload": bad}]))
            self.assertEqual(cm.exception.value.index, 1)
            self.assertTrue(
                cm.exception.value.message.startswith("payload is not a JSON object"), bad
            )

    def test_config_errors_name_the_field(self):
        for config, field in [
            ('{"min": "10"}', "`min`"),
            ('{"keep": "a"}', "`keep`"),
            ('{"field": 3}', "`field`"),
            ('{"mn": 3}', "`mn`"),
        ]:
            with self.assertRaises(fb.Err) as cm:
                self.world.configure(config)
            self.assertIn(field, cm.exception.value)


class KitSum(unittest.TestCase):
    def setUp(self):
        self.world = fb.load_app("aggregate", plugin("kit-sum")).WitWorld()
        self.world.configure('{"field": "amount"}')

    def add(self, acc, payloads):
        batch = fb.pack_batch([{"payload": p} for p in payloads])
        return self.world.add(fb.pack_accumulators([acc]), fb._u32(0) * len(payloads), batch)

    def test_counts_and_sums_then_finishes_in_the_kit_format(self):
        acc = fb.unpack_accumulators(
            self.add(self.world.create(), [b'{"amount":5}', b'{"amount":-2}'])
        )[0]
        other = fb.unpack_accumulators(self.add(b"", [b'{"amount":10}']))[0]
        merged = self.world.merge(fb.pack_accumulators([acc, other]), fb.pack_groups([2]))
        (acc,) = fb.unpack_accumulators(merged)
        out = self.world.finish(
            fb.pack_windows([("chloé".encode(), 1000, 2000), (b"", 0, 1000)]),
            fb.pack_accumulators([acc, b""]),
        )
        self.assertEqual(
            fb.unpack_results(out, 2),
            [
                ('{"key":"chloé","start":1000,"end":2000,"count":3,"sum":13}'.encode(), 0),
                (b'{"key":"","start":0,"end":1000,"count":0,"sum":0}', 1),
            ],
        )

    def test_the_sum_wraps_around_like_a_64_bit_integer(self):
        acc = fb.unpack_accumulators(
            self.add(b"", [b'{"amount":9223372036854775807}', b'{"amount":2}'])
        )[0]
        self.assertEqual(acc, b'{"count":2,"sum":-9223372036854775807}')

    def test_non_integer_fields_fail_the_event_naming_the_problem(self):
        for payload, words in [
            (b'{"amount":"12"}', 'is "12", not a 64-bit integer'),
            (b'{"user":"a"}', "missing"),
            (b'{"amount":1.0}', "not a 64-bit integer"),
            (b'{"amount":true}', "not a 64-bit integer"),
            (b"[1]", "not a JSON object"),
            (b'{"amount":9223372036854775808}', "not a 64-bit integer"),
        ]:
            with self.assertRaises(fb.Err) as cm:
                self.add(b"", [b'{"amount":1}', payload])
            self.assertEqual(cm.exception.value.index, 1)
            self.assertIn(words, cm.exception.value.message)


if __name__ == "__main__":
    unittest.main()
