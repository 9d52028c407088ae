"""Specification of the `aggregate` and `process` glue: accumulators in and out, keyed state
and timers, which event outputs and errors belong to."""

import unittest

from tests import fake_bindings as fb

fb.install()

COUNTER = """
import weir

@weir.aggregate
class Count(weir.Aggregate):
    def create(self):
        return {"n": 0}
    def add(self, acc, event):
        if event.payload == b"bad":
            raise weir.EventError("bad payload")
        acc["n"] += 1
    def merge(self, a, b):
        return {"n": a["n"] + b["n"]}
    def finish(self, key, window, acc):
        return {"key": key, "start": window.start, "n": acc["n"]}
"""


WINDOWS = """
import weir

@weir.aggregate
class Modes(weir.Aggregate):
    def create(self):
        return {"n": 0}
    def add(self, acc, event):
        acc["n"] += 1
    def merge(self, a, b):
        return {"n": a["n"] + b["n"]}
    def finish(self, key, window, acc):
        mode = acc.get("mode")
        if mode == "raise":
            raise ValueError("boom")
        if mode == "refuse":
            raise weir.EventError("cannot finish")
        if mode == "event":
            return weir.Output(b"x")
        if mode == "none":
            return None
        if mode == "many":
            return [key.encode(), f"{window.start}..{window.end}", {"n": acc["n"]}]
        return {"key": key, "start": window.start, "end": window.end, "n": acc["n"]}
"""


class AggregateGlue(unittest.TestCase):
    def setUp(self):
        self.world = fb.make_app("aggregate", COUNTER).WitWorld()
        self.world.configure("{}")

    def test_add_updates_targets_and_keeps_untouched_accumulators_byte_for_byte(self):
        accs = fb.pack_accumulators([self.world.create(), b'{"n": 5}', b'{"n":1}'])
        targets = b"".join(fb._u32(t) for t in [0, 2, 0])
        batch = fb.pack_batch([{"payload": b"x"}] * 3)
        out = fb.unpack_accumulators(self.world.add(accs, targets, batch))
        self.assertEqual(out, [b'{"n":2}', b'{"n": 5}', b'{"n":2}'])

    def test_an_empty_accumulator_is_a_new_one(self):
        out = fb.unpack_accumulators(
            self.world.add(
                fb.pack_accumulators([b""]), fb._u32(0), fb.pack_batch([{"payload": b"x"}])
            )
        )
        self.assertEqual(out, [b'{"n":1}'])

    def test_add_errors_name_the_event(self):
        accs = fb.pack_accumulators([b'{"n":0}'])
        batch = fb.pack_batch([{"payload": b"x"}, {"payload": b"bad"}])
        with self.assertRaises(fb.Err) as cm:
            self.world.add(accs, fb._u32(0) * 2, batch)
        self.assertEqual(cm.exception.value, fb.EventError(1, "bad payload"))
        with self.assertRaises(fb.Err) as cm:
            self.world.add(accs, fb._u32(3), fb.pack_batch([{"payload": b"x"}]))
        self.assertIn("target 3 is not an accumulator index", cm.exception.value.message)
        with self.assertRaises(fb.Err) as cm:
            self.world.add(
                fb.pack_accumulators([b"{oops"]), fb._u32(0), fb.pack_batch([{"payload": b"x"}])
            )
        self.assertIn("cannot decode accumulator", cm.exception.value.message)

    def test_merge_and_finish(self):
        merged = self.world.merge(
            fb.pack_accumulators([b'{"n":2}', b'{"n":3}']), fb.pack_groups([2])
        )
        self.assertIsInstance(merged, fb.Accumulators)
        self.assertEqual(fb.unpack_accumulators(merged), [b'{"n":5}'])
        out = self.world.finish(fb.pack_windows([("é".encode(), 10, 20)]), merged)
        self.assertEqual(fb.unpack_results(out, 1), [('{"key":"é","start":10,"n":5}'.encode(), 0)])


MERGES = """
import weir

@weir.aggregate
class Trail(weir.Aggregate):
    def create(self):
        return {"seen": []}
    def add(self, acc, event):
        acc["seen"].append(event.text)
    def merge(self, a, b):
        if "bad" in b["seen"]:
            raise weir.EventError(f"cannot merge {b['seen']} into {a['seen']}")
        if "boom" in b["seen"]:
            raise ValueError("boom")
        if "none" in b["seen"]:
            return None
        return {"seen": a["seen"] + b["seen"]}
    def finish(self, key, window, acc):
        return acc
"""


class MergeGlue(unittest.TestCase):
    """`merge` gets every merge due together in one call, as groups of accumulators; the user's
    pairwise `merge` folds each group left to right."""

    def setUp(self):
        self.world = fb.make_app("aggregate", MERGES).WitWorld()
        self.world.configure("{}")

    def merge(self, groups):
        """`merge` on lists of accumulators (bytes), one list per group; the merged bytes."""
        out = self.world.merge(
            fb.pack_accumulators([acc for group in groups for acc in group]),
            fb.pack_groups([len(group) for group in groups]),
        )
        self.assertIsInstance(out, fb.Accumulators)
        return fb.unpack_accumulators(out)

    def fails(self, accumulators, groups):
        """The `WindowError` of a `merge` call on raw columns."""
        with self.assertRaises(fb.Err) as cm:
            self.world.merge(fb.pack_accumulators(accumulators), groups)
        self.assertIsInstance(cm.exception.value, fb.WindowError)
        return cm.exception.value

    def test_groups_of_one_two_and_three_fold_left_to_right_in_group_order(self):
        out = self.merge(
            [
                [b'{"seen": ["kept", "as stored"]}'],
                [b'{"seen":["a"]}', b'{"seen":["b"]}'],
                [b'{"seen":["c"]}', b"", b'{"seen":["d","e"]}'],  # empty: a new accumulator
                [b""],
                [b'{"seen":["f"]}', b'{"seen":["g"]}'],
            ]
        )
        self.assertEqual(
            out,
            [
                b'{"seen": ["kept", "as stored"]}',
                b'{"seen":["a","b"]}',
                b'{"seen":["c","d","e"]}',
                b"",
                b'{"seen":["f","g"]}',
            ],
        )
        self.assertEqual(self.merge([]), [])
        self.assertEqual(
            self.world.merge(fb.Accumulators(b"", b""), b""), fb.Accumulators(b"", b"")
        )

    def test_a_failing_group_is_named_by_its_index(self):
        ok = [b'{"seen":["a"]}', b'{"seen":["b"]}']
        for failing, message in [
            ([b'{"seen":["x"]}', b'{"seen":["bad"]}'], "cannot merge ['bad'] into ['x']"),
            ([b'{"seen":[]}', b'{"seen":["y"]}', b'{"seen":["boom"]}'], "ValueError: boom (at "),
            ([b'{"seen":["x"]}', b'{"seen":["none"]}'], "merge returned None"),
            ([b'{"seen":["x"]}', b"{oops"], "cannot decode accumulator"),
        ]:
            with self.assertRaises(fb.Err) as cm:
                self.merge([ok, failing, ok, failing])
            error = cm.exception.value
            self.assertIsInstance(error, fb.WindowError)
            self.assertEqual(error.index, 1)
            self.assertTrue(error.message.startswith(message), error.message)
        with self.assertRaises(fb.Err) as cm:
            self.merge([[b'{"seen":[]}', b'{"seen":["bad"]}'], ok])
        self.assertEqual(cm.exception.value, fb.WindowError(0, "cannot merge ['bad'] into []"))

    def test_malformed_groups_are_refused_naming_the_group(self):
        accs = [b'{"seen":["a"]}', b'{"seen":["b"]}', b'{"seen":["c"]}']
        self.assertEqual(
            self.fails(accs, fb.pack_groups([1, 0, 2])),
            fb.WindowError(
                1, "malformed groups: group 1 is empty (it starts and ends at accumulator 1)"
            ),
        )
        self.assertEqual(
            self.fails(accs, fb.pack_groups([0, 3])),
            fb.WindowError(
                0, "malformed groups: group 0 is empty (it starts and ends at accumulator 0)"
            ),
        )
        self.assertEqual(
            self.fails(accs, fb._u32(2) + fb._u32(1)),
            fb.WindowError(
                1,
                "malformed groups: group 1 ends at accumulator 1, before it starts (2): "
                "group ends must increase",
            ),
        )
        self.assertEqual(
            self.fails(accs, fb.pack_groups([1, 3])),
            fb.WindowError(
                1,
                "malformed groups: group 1 ends at accumulator 4, but the call has 3 accumulators",
            ),
        )
        self.assertEqual(
            self.fails(accs, fb.pack_groups([3])[:3]),
            fb.WindowError(0, "malformed groups: 3 bytes, not a whole number of u32 ends"),
        )

    def test_merge_before_configure_names_the_first_group(self):
        world = fb.make_app("aggregate", MERGES).WitWorld()
        with self.assertRaises(fb.Err) as cm:
            world.merge(fb.pack_accumulators([b"", b""]), fb.pack_groups([2]))
        self.assertEqual(
            cm.exception.value, fb.WindowError(0, "`merge` called before a successful `configure`")
        )


class FinishGlue(unittest.TestCase):
    """`finish` gets every window that fires in one call; the user's `finish` runs per window."""

    def setUp(self):
        self.world = fb.make_app("aggregate", WINDOWS).WitWorld()
        self.world.configure("{}")

    def finish(self, windows):
        """`finish` on `(key, start, end, accumulator)` tuples; the `(payload, origin)` pairs."""
        out = self.world.finish(
            fb.pack_windows([w[:3] for w in windows]),
            fb.pack_accumulators([w[3] for w in windows]),
        )
        self.assertIsInstance(out, fb.Results)
        return fb.unpack_results(out, len(windows))

    def test_several_windows_with_zero_one_or_many_payloads_each(self):
        out = self.finish(
            [
                (b"a", 0, 10, b'{"n":1}'),
                (b"", 10, 20, b""),  # no key; an empty accumulator is a new one
                ("é".encode(), -5, 5, b'{"n":2,"mode":"many"}'),
                (b"b", 0, 10, b'{"n":3,"mode":"none"}'),
                (b"c", 1_700_000_000_000, 1_700_000_060_000, b'{"n":4}'),
            ]
        )
        self.assertEqual(
            out,
            [
                (b'{"key":"a","start":0,"end":10,"n":1}', 0),
                (b'{"key":"","start":10,"end":20,"n":0}', 1),
                ("é".encode(), 2),
                (b"-5..5", 2),
                (b'{"n":2}', 2),
                (b'{"key":"c","start":1700000000000,"end":1700000060000,"n":4}', 4),
            ],
        )

    def test_no_windows_and_no_payloads(self):
        self.assertEqual(self.finish([]), [])
        empty = self.world.finish(fb.pack_windows([]), fb.pack_accumulators([]))
        self.assertEqual(empty, fb.Results(b"", b"", b""))
        self.assertEqual(self.finish([(b"k", 0, 1, b'{"mode":"none"}')] * 3), [])

    def test_a_failing_window_is_named_by_its_index(self):
        ok = (b"a", 0, 10, b'{"n":1}')
        for failing, message in [
            ((b"b", 0, 10, b'{"mode":"refuse"}'), "cannot finish"),
            ((b"", 0, 10, b'{"mode":"raise"}'), "ValueError: boom (at "),
            ((b"b", 0, 10, b'{"mode":"event"}'), "TypeError: finish returns payloads"),
            ((b"b", 0, 10, b"{oops"), "cannot decode accumulator"),
        ]:
            with self.assertRaises(fb.Err) as cm:
                self.finish([ok, failing, ok, failing])
            error = cm.exception.value
            self.assertIsInstance(error, fb.WindowError)
            self.assertEqual(error.index, 1)
            self.assertTrue(error.message.startswith(message), error.message)
        with self.assertRaises(fb.Err) as cm:
            self.finish([(b"", 0, 10, b'{"mode":"refuse"}'), ok])
        self.assertEqual(cm.exception.value, fb.WindowError(0, "cannot finish"))

    def test_finish_before_configure_names_the_first_window(self):
        world = fb.make_app("aggregate", WINDOWS).WitWorld()
        with self.assertRaises(fb.Err) as cm:
            world.finish(fb.pack_windows([(b"a", 0, 1)]), fb.pack_accumulators([b""]))
        self.assertEqual(
            cm.exception.value, fb.WindowError(0, "`finish` called before a successful `configure`")
        )

    def test_state_version_and_migrate(self):
        self.assertEqual(self.world.state_version(), 0)
        self.assertEqual(self.world.migrate(0, b'{"n":1}'), b'{"n":1}')
        with self.assertRaises(fb.Err) as cm:
            self.world.migrate(3, b"old")
        self.assertIn("cannot migrate accumulators from state version 3 to 0", cm.exception.value)
        versioned = fb.make_app(
            "aggregate",
            COUNTER.replace(
                "    def create(self):",
                "    state_version = 2\n"
                "    def migrate(self, version, old):\n"
                "        return {'n': weir.loads(old)['count']}\n"
                "    def create(self):",
            ),
        ).WitWorld()
        self.assertEqual(versioned.state_version(), 2)
        versioned.configure("{}")
        self.assertEqual(versioned.migrate(1, b'{"count":7}'), b'{"n":7}')

    def test_an_aggregate_must_define_every_method(self):
        with self.assertRaises(TypeError) as cm:
            fb.make_app(
                "aggregate",
                "import weir\n@weir.aggregate\nclass A(weir.Aggregate):\n    def create(self): return 0\n",
            )
        self.assertIn("add, merge, finish", str(cm.exception))


DEDUP = """
import weir

@weir.process
class Dedup(weir.Process):
    def on_event(self, event, state):
        if event.payload == b"boom":
            raise ValueError("boom")
        seen = state.get("seen", [])
        if event.payload.decode() in seen:
            return None
        state.set("seen", seen + [event.payload.decode()])
        state.register_event_timer(event.time + 100)
        return event
    def on_timer(self, key, time, state):
        state.delete("seen")
        return [{"expired": key}, weir.Output(b"late", time=time + 1)]
"""

RUNS = """
import weir

@weir.process
class Pairs(weir.Process):
    def on_events(self, key, events, state):
        previous = None
        for event in events:
            if event.payload == b"fail":
                raise weir.EventError("cannot pair", event=previous)
            if previous is not None:
                yield {"pair": [previous.payload.decode(), event.payload.decode()]}
            previous = event
"""


class ProcessGlue(unittest.TestCase):
    def setUp(self):
        fb.keyed_state.clear()
        fb.keyed_timers.clear()

    def test_on_event_uses_keyed_state_and_timers(self):
        world = fb.make_app("process", DEDUP).WitWorld()
        world.configure("{}")
        batch = fb.pack_batch(
            [{"payload": p, "key": b"k", "time": t} for p, t in [(b"a", 1), (b"b", 2), (b"a", 3)]]
        )
        out = fb.unpack_batch(world.on_events(b"k", batch))
        self.assertEqual([(o["payload"], o["origin"]) for o in out], [(b"a", 0), (b"b", 1)])
        self.assertEqual(fb.keyed_state, {"seen": b'["a","b"]'})
        self.assertEqual(fb.keyed_timers, {101, 102})
        out = fb.unpack_batch(world.on_timer(b"k", 101))
        self.assertEqual(
            [(o["payload"], o["key"], o["time"]) for o in out],
            [(b'{"expired":"k"}', b"k", 101), (b"late", b"k", 102)],
        )
        self.assertEqual(fb.keyed_state, {})

    def test_processing_time_timers_and_their_domain(self):
        app = """
import weir

@weir.process
class Idle(weir.Process):
    def on_event(self, event, state):
        state.register_processing_timer(state.processing_time() + 500)
        state.delete_processing_timer(1)
    def on_timer(self, key, time, state):
        return {"time": time, "domain": state.timer_domain}
"""
        world = fb.make_app("process", app).WitWorld()
        world.configure("{}")
        world.on_events(b"k", fb.pack_batch([{"payload": b"a"}]))
        self.assertEqual(fb.keyed_timers, {("processing", 1_700_000_009_500)})
        fb.timer_domain[0] = fb.TimeDomain.PROCESSING_TIME
        try:
            out = fb.unpack_batch(world.on_timer(b"k", 1_700_000_009_500))
        finally:
            fb.timer_domain[0] = fb.TimeDomain.EVENT_TIME
        self.assertEqual(
            [o["payload"] for o in out], [b'{"time":1700000009500,"domain":"processing"}']
        )

    def test_on_event_errors_name_the_event(self):
        world = fb.make_app("process", DEDUP).WitWorld()
        world.configure("{}")
        with self.assertRaises(fb.Err) as cm:
            world.on_events(b"k", fb.pack_batch([{"payload": b"a"}, {"payload": b"boom"}]))
        self.assertEqual(cm.exception.value.index, 1)
        self.assertTrue(cm.exception.value.message.startswith("ValueError: boom (at "))

    def test_on_events_outputs_belong_to_the_latest_event_taken(self):
        world = fb.make_app("process", RUNS).WitWorld()
        world.configure("{}")
        out = fb.unpack_batch(
            world.on_events(b"k", fb.pack_batch([{"payload": p} for p in [b"a", b"b", b"c"]]))
        )
        self.assertEqual(
            [(o["payload"], o["origin"]) for o in out],
            [(b'{"pair":["a","b"]}', 1), (b'{"pair":["b","c"]}', 2)],
        )
        with self.assertRaises(fb.Err) as cm:
            world.on_events(b"k", fb.pack_batch([{"payload": p} for p in [b"a", b"b", b"fail"]]))
        self.assertEqual(cm.exception.value, fb.EventError(1, "cannot pair"))


if __name__ == "__main__":
    unittest.main()
