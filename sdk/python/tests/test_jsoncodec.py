"""`weir.Projection` writes what `weir.dumps` writes for the dict of the same fields."""

import unittest

from weir import JSONError, Projection, dumps, loads


class ProjectionWritesWhatDumpsWrites(unittest.TestCase):
    def test_fields_in_projection_order_missing_ones_skipped(self):
        doc = loads('{"user": "bo", "amount": 25, "note": "a \\"q\\" \\\\ é", "seq": 0}'.encode())
        keep = Projection(["note", "missing", "amount", "note"])
        self.assertEqual(keep.names, ["note", "missing", "amount"])
        self.assertEqual(keep.dumps(doc), '{"note":"a \\"q\\" \\\\ é","amount":25}'.encode())
        self.assertEqual(Projection(["missing"]).dumps(doc), b"{}")

    def test_every_kind_of_value_as_dumps_writes_it(self):
        doc = loads(
            b'{"s":"\\u0001\\t","i":-12,"big":123456789012345678901234,"f":1.5e3,"t":true,'
            b'"F":false,"n":null,"a":[1,{"b":[]}],"o":{"k\\"":"v"},"k\\"ey":1}'
        )
        names = list(doc)
        self.assertEqual(Projection(names).dumps(doc), dumps({k: doc[k] for k in names}))

    def test_a_value_that_cannot_be_written_is_a_json_error(self):
        with self.assertRaises(JSONError):
            Projection(["s"]).dumps({"s": "\ud800"})
        with self.assertRaises(TypeError):
            Projection([1])


if __name__ == "__main__":
    unittest.main()
