//! The pattern language, table-driven: every operator against one Event JSON, then every way a
//! pattern can be invalid, each with the pointer it must report.

use serde_json::{Value, json};

use super::*;

fn event() -> Value {
    json!({
        "id": "0192f3c4-6a1e-7b2c-9d3e-4f5a6b7c8d9e",
        "stream_type": "order",
        "stream_id": "o-1001",
        "revision": 0,
        "position": 4711,
        "type": "OrderPlaced",
        "data": {
            "total": 42.5,
            "count": 3,
            "currency": "EUR",
            "code": "5",
            "customer": {"name": "Ada Lovelace", "tier": "gold", "address": {"country": "NL"}},
            "tags": ["new", "priority"],
            "lines": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 5}],
            "matrix": [[1, 2], [3, [4]]],
            "note": null,
            "empty": "",
            "flag": true,
            "ip": "10.0.0.33",
            "ip6": "2001:db8::1",
            "path": "/usr/lib/libfoo.so",
            "file": "photo.PNG",
            "big": 9_007_199_254_740_993_u64,
            "nothing": [],
            "obj": {},
            "delta": -2.5,
            "zero": 0,
            "mixed": ["a", 7, null, false],
            "glob": "a*b",
            "people": [
                {"name": "Ada", "langs": ["en", "fr"], "age": 36},
                {"name": "Grace", "langs": ["en"], "age": 85, "retired": true}
            ]
        },
        "metadata": {"correlation_id": "c-9"},
        "recorded_at": "2026-11-23T10:15:30.123456Z"
    })
}

/// (what the case shows, pattern, whether it matches [`event`]).
fn matching_cases() -> Vec<(&'static str, Value, bool)> {
    vec![
        // Exact values, AND across fields, OR within a list.
        ("exact string", json!({"type": ["OrderPlaced"]}), true),
        (
            "exact string differs",
            json!({"type": ["OrderShipped"]}),
            false,
        ),
        (
            "any value of the list",
            json!({"type": ["OrderShipped", "OrderPlaced"]}),
            true,
        ),
        (
            "exact is case-sensitive",
            json!({"type": ["orderplaced"]}),
            false,
        ),
        (
            "all fields must match",
            json!({"stream_type": ["order"], "type": ["OrderPlaced"]}),
            true,
        ),
        (
            "one field fails",
            json!({"stream_type": ["order"], "type": ["Nope"]}),
            false,
        ),
        ("exact number", json!({"position": [4711]}), true),
        ("zero revision", json!({"revision": [0]}), true),
        ("number by value", json!({"position": [4711.0]}), true),
        (
            "number in exponent form",
            json!({"position": [4.711e3]}),
            true,
        ),
        (
            "string never equals number",
            json!({"position": ["4711"]}),
            false,
        ),
        (
            "number never equals string",
            json!({"data": {"code": [5]}}),
            false,
        ),
        (
            "string equals string",
            json!({"data": {"code": ["5"]}}),
            true,
        ),
        (
            "integers compare exactly",
            json!({"data": {"big": [9_007_199_254_740_993_u64]}}),
            true,
        ),
        (
            "neighbouring integer",
            json!({"data": {"big": [9_007_199_254_740_992_u64]}}),
            false,
        ),
        ("true", json!({"data": {"flag": [true]}}), true),
        (
            "false is not true",
            json!({"data": {"flag": [false]}}),
            false,
        ),
        (
            "boolean is not a string",
            json!({"data": {"flag": ["true"]}}),
            false,
        ),
        ("null", json!({"data": {"note": [null]}}), true),
        (
            "empty string is not null",
            json!({"data": {"empty": [null]}}),
            false,
        ),
        ("empty string", json!({"data": {"empty": [""]}}), true),
        (
            "null is not empty string",
            json!({"data": {"note": [""]}}),
            false,
        ),
        // Nesting and missing fields.
        (
            "nested field",
            json!({"data": {"customer": {"address": {"country": ["NL"]}}}}),
            true,
        ),
        (
            "nested field differs",
            json!({"data": {"customer": {"address": {"country": ["BE"]}}}}),
            false,
        ),
        (
            "object is not a leaf value",
            json!({"data": {"customer": ["gold"]}}),
            false,
        ),
        (
            "cannot descend into a scalar",
            json!({"data": {"total": {"x": [42.5]}}}),
            false,
        ),
        ("missing field", json!({"data": {"missing": ["x"]}}), false),
        ("missing parent", json!({"nope": {"deeper": ["x"]}}), false),
        (
            "metadata is a field",
            json!({"metadata": {"correlation_id": ["c-9"]}}),
            true,
        ),
        // Arrays in the event.
        (
            "any array element",
            json!({"data": {"tags": ["priority"]}}),
            true,
        ),
        (
            "no array element",
            json!({"data": {"tags": ["old"]}}),
            false,
        ),
        (
            "objects in an array",
            json!({"data": {"lines": {"sku": ["B-2"]}}}),
            true,
        ),
        (
            "one element satisfies all",
            json!({"data": {"lines": {"sku": ["B-2"], "qty": [5]}}}),
            true,
        ),
        (
            "no mixing elements",
            json!({"data": {"lines": {"sku": ["A-1"], "qty": [5]}}}),
            false,
        ),
        (
            "nested arrays flatten",
            json!({"data": {"matrix": [4]}}),
            true,
        ),
        (
            "nested arrays, no element",
            json!({"data": {"matrix": [5]}}),
            false,
        ),
        (
            "numeric over arrays",
            json!({"data": {"matrix": [{"numeric": [">", 3]}]}}),
            true,
        ),
        (
            "numeric in array objects",
            json!({"data": {"lines": {"qty": [{"numeric": [">", 4]}]}}}),
            true,
        ),
        // prefix
        ("prefix", json!({"type": [{"prefix": "Order"}]}), true),
        (
            "prefix is case-sensitive",
            json!({"type": [{"prefix": "order"}]}),
            false,
        ),
        (
            "prefix ignoring case",
            json!({"type": [{"prefix": {"equals-ignore-case": "oRDER"}}]}),
            true,
        ),
        (
            "prefix ignoring case differs",
            json!({"type": [{"prefix": {"equals-ignore-case": "invoice"}}]}),
            false,
        ),
        (
            "prefix only on strings",
            json!({"revision": [{"prefix": "0"}]}),
            false,
        ),
        (
            "prefix over array",
            json!({"data": {"tags": [{"prefix": "pri"}]}}),
            true,
        ),
        (
            "empty prefix",
            json!({"data": {"empty": [{"prefix": ""}]}}),
            true,
        ),
        (
            "prefix longer than value",
            json!({"type": [{"prefix": "OrderPlacedNow"}]}),
            false,
        ),
        // suffix
        (
            "suffix",
            json!({"data": {"file": [{"suffix": ".PNG"}]}}),
            true,
        ),
        (
            "suffix is case-sensitive",
            json!({"data": {"file": [{"suffix": ".png"}]}}),
            false,
        ),
        (
            "suffix ignoring case",
            json!({"data": {"file": [{"suffix": {"equals-ignore-case": ".png"}}]}}),
            true,
        ),
        (
            "suffix ignoring case differs",
            json!({"data": {"file": [{"suffix": {"equals-ignore-case": ".jpg"}}]}}),
            false,
        ),
        // equals-ignore-case
        (
            "equals ignoring case",
            json!({"data": {"currency": [{"equals-ignore-case": "eur"}]}}),
            true,
        ),
        (
            "equals ignoring case differs",
            json!({"data": {"currency": [{"equals-ignore-case": "usd"}]}}),
            false,
        ),
        (
            "equals ignoring case, nested",
            json!({"data": {"customer": {"name": [{"equals-ignore-case": "ADA LOVELACE"}]}}}),
            true,
        ),
        (
            "equals ignoring case, not a prefix",
            json!({"data": {"currency": [{"equals-ignore-case": "eu"}]}}),
            false,
        ),
        (
            "equals ignoring case only on strings",
            json!({"data": {"count": [{"equals-ignore-case": "3"}]}}),
            false,
        ),
        // wildcard
        (
            "wildcard",
            json!({"data": {"path": [{"wildcard": "*/lib/*.so"}]}}),
            true,
        ),
        (
            "wildcard differs",
            json!({"data": {"path": [{"wildcard": "*/bin/*"}]}}),
            false,
        ),
        (
            "wildcard as prefix",
            json!({"type": [{"wildcard": "Order*"}]}),
            true,
        ),
        (
            "wildcard as suffix",
            json!({"type": [{"wildcard": "*Placed"}]}),
            true,
        ),
        (
            "wildcard with several stars",
            json!({"type": [{"wildcard": "O*d*d"}]}),
            true,
        ),
        (
            "wildcard without stars is exact",
            json!({"type": [{"wildcard": "Order"}]}),
            false,
        ),
        // anything-but
        (
            "anything-but the value",
            json!({"type": [{"anything-but": "OrderPlaced"}]}),
            false,
        ),
        (
            "anything-but another",
            json!({"type": [{"anything-but": "OrderShipped"}]}),
            true,
        ),
        (
            "anything-but a list with it",
            json!({"type": [{"anything-but": ["OrderShipped", "OrderPlaced"]}]}),
            false,
        ),
        (
            "anything-but a number",
            json!({"data": {"count": [{"anything-but": 3}]}}),
            false,
        ),
        (
            "anything-but a number by value",
            json!({"data": {"count": [{"anything-but": 3.0}]}}),
            false,
        ),
        (
            "anything-but other numbers",
            json!({"data": {"count": [{"anything-but": [1, 2]}]}}),
            true,
        ),
        (
            "anything-but a string passes a number",
            json!({"data": {"count": [{"anything-but": "3"}]}}),
            true,
        ),
        (
            "anything-but over array",
            json!({"data": {"tags": [{"anything-but": "new"}]}}),
            true,
        ),
        (
            "anything-but every element",
            json!({"data": {"tags": [{"anything-but": ["new", "priority"]}]}}),
            false,
        ),
        (
            "anything-but needs a value",
            json!({"data": {"missing": [{"anything-but": "x"}]}}),
            false,
        ),
        (
            "anything-but passes null",
            json!({"data": {"note": [{"anything-but": "x"}]}}),
            true,
        ),
        (
            "anything-but prefix",
            json!({"type": [{"anything-but": {"prefix": "Order"}}]}),
            false,
        ),
        (
            "anything-but another prefix",
            json!({"type": [{"anything-but": {"prefix": "Invoice"}}]}),
            true,
        ),
        (
            "anything-but suffix",
            json!({"data": {"file": [{"anything-but": {"suffix": ".PNG"}}]}}),
            false,
        ),
        (
            "anything-but another suffix",
            json!({"data": {"file": [{"anything-but": {"suffix": ".jpg"}}]}}),
            true,
        ),
        (
            "anything-but ignoring case",
            json!({"type": [{"anything-but": {"equals-ignore-case": "orderplaced"}}]}),
            false,
        ),
        (
            "anything-but ignoring case, list",
            json!({"type": [{"anything-but": {"equals-ignore-case": ["a", "ORDERPLACED"]}}]}),
            false,
        ),
        (
            "anything-but ignoring case, others",
            json!({"type": [{"anything-but": {"equals-ignore-case": ["a", "b"]}}]}),
            true,
        ),
        (
            "anything-but wildcard",
            json!({"data": {"path": [{"anything-but": {"wildcard": "*/lib/*"}}]}}),
            false,
        ),
        (
            "anything-but another wildcard",
            json!({"data": {"path": [{"anything-but": {"wildcard": "*/bin/*"}}]}}),
            true,
        ),
        // numeric
        (
            "greater than",
            json!({"data": {"total": [{"numeric": [">", 40]}]}}),
            true,
        ),
        (
            "greater than itself",
            json!({"data": {"total": [{"numeric": [">", 42.5]}]}}),
            false,
        ),
        (
            "at least itself",
            json!({"data": {"total": [{"numeric": [">=", 42.5]}]}}),
            true,
        ),
        (
            "less than itself",
            json!({"data": {"total": [{"numeric": ["<", 42.5]}]}}),
            false,
        ),
        (
            "at most itself",
            json!({"data": {"total": [{"numeric": ["<=", 42.5]}]}}),
            true,
        ),
        (
            "equal",
            json!({"data": {"total": [{"numeric": ["=", 42.5]}]}}),
            true,
        ),
        (
            "equal in exponent form",
            json!({"data": {"total": [{"numeric": ["=", 4.25e1]}]}}),
            true,
        ),
        (
            "not equal",
            json!({"data": {"total": [{"numeric": ["=", 42]}]}}),
            false,
        ),
        (
            "inside a range",
            json!({"data": {"count": [{"numeric": [">", 0, "<=", 5]}]}}),
            true,
        ),
        (
            "open lower end",
            json!({"data": {"count": [{"numeric": [">", 3, "<", 10]}]}}),
            false,
        ),
        (
            "closed lower end",
            json!({"data": {"count": [{"numeric": [">=", 3, "<", 10]}]}}),
            true,
        ),
        (
            "open upper end",
            json!({"data": {"count": [{"numeric": [">", 0, "<", 3]}]}}),
            false,
        ),
        (
            "negative bounds",
            json!({"data": {"count": [{"numeric": [">", -1e9, "<", -1]}]}}),
            false,
        ),
        (
            "numeric only on numbers",
            json!({"data": {"code": [{"numeric": ["=", 5]}]}}),
            false,
        ),
        (
            "numeric on a missing field",
            json!({"data": {"missing": [{"numeric": [">", 0]}]}}),
            false,
        ),
        // exists
        (
            "null exists",
            json!({"data": {"note": [{"exists": true}]}}),
            true,
        ),
        (
            "missing does not exist",
            json!({"data": {"missing": [{"exists": true}]}}),
            false,
        ),
        (
            "missing is absent",
            json!({"data": {"missing": [{"exists": false}]}}),
            true,
        ),
        (
            "present is not absent",
            json!({"data": {"total": [{"exists": false}]}}),
            false,
        ),
        (
            "an object is not a leaf",
            json!({"data": {"customer": [{"exists": true}]}}),
            false,
        ),
        (
            "an object counts as absent",
            json!({"data": {"customer": [{"exists": false}]}}),
            true,
        ),
        (
            "an empty array is absent",
            json!({"data": {"nothing": [{"exists": false}]}}),
            true,
        ),
        (
            "an empty object is absent",
            json!({"data": {"obj": {"x": [{"exists": false}]}}}),
            true,
        ),
        (
            "a missing parent is absent",
            json!({"nope": {"deeper": [{"exists": false}]}}),
            true,
        ),
        (
            "an array exists",
            json!({"data": {"tags": [{"exists": true}]}}),
            true,
        ),
        (
            "exists in array objects",
            json!({"data": {"lines": {"sku": [{"exists": true}], "color": [{"exists": false}]}}}),
            true,
        ),
        (
            "exists or a value",
            json!({"data": {"missing": [{"exists": false}, "x"]}}),
            true,
        ),
        // Scalars of every JSON type, in and out of arrays: types are never converted.
        ("null in an array", json!({"data": {"mixed": [null]}}), true),
        (
            "false in an array",
            json!({"data": {"mixed": [false]}}),
            true,
        ),
        (
            "true not in the array",
            json!({"data": {"mixed": [true]}}),
            false,
        ),
        (
            "number in a mixed array",
            json!({"data": {"mixed": [7]}}),
            true,
        ),
        (
            "digits are not the number",
            json!({"data": {"mixed": ["7"]}}),
            false,
        ),
        ("false is not zero", json!({"data": {"mixed": [0]}}), false),
        (
            "zero is not false",
            json!({"data": {"zero": [false]}}),
            false,
        ),
        ("zero is not null", json!({"data": {"zero": [null]}}), false),
        ("zero", json!({"data": {"zero": [0]}}), true),
        ("zero as a float", json!({"data": {"zero": [0.0]}}), true),
        ("negative number", json!({"data": {"delta": [-2.5]}}), true),
        (
            "negated number differs",
            json!({"data": {"delta": [2.5]}}),
            false,
        ),
        (
            "null is not a missing field",
            json!({"data": {"missing": [null]}}),
            false,
        ),
        (
            "null is not an object",
            json!({"data": {"customer": [null]}}),
            false,
        ),
        (
            "null is not an empty array",
            json!({"data": {"nothing": [null]}}),
            false,
        ),
        // Arrays of objects holding arrays: any element, but one element for the sub-pattern.
        (
            "array field of an array element",
            json!({"data": {"people": {"langs": ["fr"]}}}),
            true,
        ),
        (
            "array field of the same element",
            json!({"data": {"people": {"name": ["Ada"], "langs": ["fr"]}}}),
            true,
        ),
        (
            "array field of another element",
            json!({"data": {"people": {"name": ["Grace"], "langs": ["fr"]}}}),
            false,
        ),
        (
            "boolean of an array element",
            json!({"data": {"people": {"retired": [true]}}}),
            true,
        ),
        // prefix, on nested fields and arrays.
        (
            "prefix of a nested field",
            json!({"data": {"customer": {"name": [{"prefix": "Ada "}]}}}),
            true,
        ),
        (
            "prefix in array objects",
            json!({"data": {"lines": {"sku": [{"prefix": "B-"}]}}}),
            true,
        ),
        (
            "prefix ignoring case over array",
            json!({"data": {"tags": [{"prefix": {"equals-ignore-case": "PRI"}}]}}),
            true,
        ),
        (
            "empty prefix never matches null",
            json!({"data": {"note": [{"prefix": ""}]}}),
            false,
        ),
        (
            "prefix never matches a boolean",
            json!({"data": {"flag": [{"prefix": "t"}]}}),
            false,
        ),
        // suffix, on nested fields and arrays.
        (
            "suffix over array",
            json!({"data": {"tags": [{"suffix": "ity"}]}}),
            true,
        ),
        (
            "suffix of a nested field",
            json!({"data": {"customer": {"address": {"country": [{"suffix": "L"}]}}}}),
            true,
        ),
        (
            "suffix in array objects",
            json!({"data": {"lines": {"sku": [{"suffix": "-2"}]}}}),
            true,
        ),
        (
            "suffix only on strings",
            json!({"data": {"count": [{"suffix": "3"}]}}),
            false,
        ),
        (
            "suffix longer than value",
            json!({"data": {"currency": [{"suffix": "XEUR"}]}}),
            false,
        ),
        // equals-ignore-case, on arrays and non-strings.
        (
            "equals ignoring case over array",
            json!({"data": {"tags": [{"equals-ignore-case": "PRIORITY"}]}}),
            true,
        ),
        (
            "equals ignoring case in array objects",
            json!({"data": {"people": {"name": [{"equals-ignore-case": "grace"}]}}}),
            true,
        ),
        (
            "equals ignoring case never matches null",
            json!({"data": {"note": [{"equals-ignore-case": "null"}]}}),
            false,
        ),
        (
            "equals ignoring case never matches a boolean",
            json!({"data": {"flag": [{"equals-ignore-case": "TRUE"}]}}),
            false,
        ),
        // wildcard, on arrays, escapes and non-strings.
        (
            "wildcard over array",
            json!({"data": {"tags": [{"wildcard": "p*y"}]}}),
            true,
        ),
        (
            "wildcard in array objects",
            json!({"data": {"lines": {"sku": [{"wildcard": "*-2"}]}}}),
            true,
        ),
        (
            "wildcard is case-sensitive",
            json!({"data": {"file": [{"wildcard": "*.png"}]}}),
            false,
        ),
        (
            "a lone star matches the empty string",
            json!({"data": {"empty": [{"wildcard": "*"}]}}),
            true,
        ),
        (
            "a lone star matches only strings",
            json!({"data": {"count": [{"wildcard": "*"}]}}),
            false,
        ),
        (
            "a lone star never matches null",
            json!({"data": {"note": [{"wildcard": "*"}]}}),
            false,
        ),
        (
            "an escaped star is a star",
            json!({"data": {"glob": [{"wildcard": "a\\*b"}]}}),
            true,
        ),
        (
            "an escaped star is not a wildcard",
            json!({"data": {"path": [{"wildcard": "\\*lib*"}]}}),
            false,
        ),
        // anything-but, on nested fields, arrays and every type.
        (
            "anything-but a list of numbers with it",
            json!({"data": {"count": [{"anything-but": [3, 4]}]}}),
            false,
        ),
        (
            "anything-but a negative number",
            json!({"data": {"delta": [{"anything-but": -2.5}]}}),
            false,
        ),
        (
            "anything-but passes a boolean",
            json!({"data": {"flag": [{"anything-but": "true"}]}}),
            true,
        ),
        (
            "anything-but of a nested field",
            json!({"data": {"customer": {"tier": [{"anything-but": ["silver", "bronze"]}]}}}),
            true,
        ),
        (
            "anything-but never matches an object",
            json!({"data": {"customer": [{"anything-but": "x"}]}}),
            false,
        ),
        (
            "anything-but never matches an empty array",
            json!({"data": {"nothing": [{"anything-but": "x"}]}}),
            false,
        ),
        (
            "anything-but in array objects",
            json!({"data": {"lines": {"sku": [{"anything-but": "A-1"}]}}}),
            true,
        ),
        (
            "anything-but in the same array object",
            json!({"data": {"lines": {"sku": [{"anything-but": "A-1"}], "qty": [2]}}}),
            false,
        ),
        (
            "anything-but prefix passes a number",
            json!({"data": {"count": [{"anything-but": {"prefix": "3"}}]}}),
            true,
        ),
        (
            "anything-but prefix over array",
            json!({"data": {"tags": [{"anything-but": {"prefix": "n"}}]}}),
            true,
        ),
        (
            "anything-but suffix of every element",
            json!({"data": {"lines": {"sku": [{"anything-but": {"suffix": "-1"}}], "qty": [2]}}}),
            false,
        ),
        (
            "anything-but ignoring case, every element",
            json!({"data": {"tags": [{"anything-but": {"equals-ignore-case": ["NEW", "PRIORITY"]}}]}}),
            false,
        ),
        // numeric, on every type, nested fields and arrays.
        (
            "both ends inclusive at one value",
            json!({"data": {"count": [{"numeric": [">=", 3, "<=", 3]}]}}),
            true,
        ),
        (
            "equal to an integer written as a float",
            json!({"data": {"count": [{"numeric": ["=", 3.0]}]}}),
            true,
        ),
        (
            "equal to zero",
            json!({"data": {"zero": [{"numeric": ["=", 0]}]}}),
            true,
        ),
        (
            "below zero",
            json!({"data": {"delta": [{"numeric": ["<", 0]}]}}),
            true,
        ),
        (
            "a negative range",
            json!({"data": {"delta": [{"numeric": [">=", -2.5, "<", -2]}]}}),
            true,
        ),
        (
            "numeric never matches a boolean",
            json!({"data": {"flag": [{"numeric": [">", 0]}]}}),
            false,
        ),
        (
            "numeric never matches null",
            json!({"data": {"note": [{"numeric": ["<", 1]}]}}),
            false,
        ),
        (
            "numeric over a mixed array",
            json!({"data": {"mixed": [{"numeric": ["=", 7]}]}}),
            true,
        ),
        (
            "numeric of a nested field",
            json!({"data": {"customer": {"address": {"country": [{"numeric": [">", 0]}]}}}}),
            false,
        ),
        (
            "numeric in array objects",
            json!({"data": {"people": {"age": [{"numeric": [">", 80]}]}}}),
            true,
        ),
        (
            "numeric in the same array object",
            json!({"data": {"people": {"name": ["Ada"], "age": [{"numeric": [">", 80]}]}}}),
            false,
        ),
        // exists, on every type, nested fields and arrays.
        (
            "a present null is not absent",
            json!({"data": {"note": [{"exists": false}]}}),
            false,
        ),
        (
            "an empty string exists",
            json!({"data": {"empty": [{"exists": true}]}}),
            true,
        ),
        (
            "zero exists",
            json!({"data": {"zero": [{"exists": true}]}}),
            true,
        ),
        (
            "a nested field exists",
            json!({"data": {"customer": {"address": {"country": [{"exists": true}]}}}}),
            true,
        ),
        (
            "a missing nested field",
            json!({"data": {"customer": {"address": {"city": [{"exists": true}]}}}}),
            false,
        ),
        (
            "nested arrays exist",
            json!({"data": {"matrix": [{"exists": true}]}}),
            true,
        ),
        (
            "absent from one array object",
            json!({"data": {"people": {"retired": [{"exists": false}]}}}),
            true,
        ),
        (
            "present in one array object",
            json!({"data": {"people": {"retired": [{"exists": true}]}}}),
            true,
        ),
        (
            "present in another array object",
            json!({"data": {"people": {"name": ["Ada"], "retired": [{"exists": true}]}}}),
            false,
        ),
        (
            "absent from no array object",
            json!({"data": {"lines": {"sku": [{"exists": false}]}}}),
            false,
        ),
        // cidr
        (
            "inside an IPv4 block",
            json!({"data": {"ip": [{"cidr": "10.0.0.0/24"}]}}),
            true,
        ),
        (
            "outside an IPv4 block",
            json!({"data": {"ip": [{"cidr": "10.0.1.0/24"}]}}),
            false,
        ),
        (
            "inside an IPv6 block",
            json!({"data": {"ip6": [{"cidr": "2001:db8::/32"}]}}),
            true,
        ),
        (
            "cidr only on addresses",
            json!({"data": {"currency": [{"cidr": "0.0.0.0/0"}]}}),
            false,
        ),
        // $or
        (
            "$or, second branch",
            json!({"$or": [{"type": ["Nope"]}, {"stream_type": ["order"]}]}),
            true,
        ),
        (
            "$or, no branch",
            json!({"$or": [{"type": ["Nope"]}, {"stream_type": ["invoice"]}]}),
            false,
        ),
        (
            "$or and a field",
            json!({
                "type": ["OrderPlaced"],
                "$or": [
                    {"data": {"total": [{"numeric": [">", 100]}]}},
                    {"data": {"customer": {"tier": ["gold"]}}}
                ]
            }),
            true,
        ),
        (
            "$or but the field fails",
            json!({"type": ["Nope"], "$or": [{"type": ["OrderPlaced"]}, {"stream_type": ["order"]}]}),
            false,
        ),
        (
            "$or nested in a field",
            json!({"data": {"$or": [{"currency": ["USD"]}, {"count": [3]}]}}),
            true,
        ),
        (
            "$or inside $or",
            json!({"$or": [{"type": ["X"]}, {"$or": [{"type": ["Y"]}, {"data": {"flag": [true]}}]}]}),
            true,
        ),
        (
            "$or per array element",
            json!({"data": {"lines": {"$or": [{"sku": ["Z"]}, {"qty": [5]}]}}}),
            true,
        ),
        (
            "$or over null and booleans",
            json!({"$or": [{"data": {"note": [null]}}, {"data": {"flag": [false]}}]}),
            true,
        ),
        (
            "$or with no branch of the right type",
            json!({"$or": [{"data": {"missing": [null]}}, {"data": {"flag": ["true"]}}]}),
            false,
        ),
        (
            "$or in array objects",
            json!({"data": {"people": {"$or": [
                {"name": ["Ada"], "age": [{"numeric": [">", 80]}]},
                {"retired": [true]}
            ]}}}),
            true,
        ),
        (
            "$or branches in array objects are each one element",
            json!({"data": {"people": {"$or": [
                {"name": ["Ada"], "retired": [true]},
                {"name": ["Grace"], "langs": ["fr"]}
            ]}}}),
            false,
        ),
        (
            "$or and a field descend into the same array element",
            json!({
                "data": {"people": {"name": ["Ada"]}},
                "$or": [
                    {"data": {"people": {"age": [{"numeric": [">", 80]}]}}},
                    {"type": ["Nope"]}
                ]
            }),
            false,
        ),
        (
            "$or and a field, both in one array element",
            json!({
                "data": {"people": {"name": ["Grace"]}},
                "$or": [
                    {"data": {"people": {"age": [{"numeric": [">", 80]}]}}},
                    {"type": ["Nope"]}
                ]
            }),
            true,
        ),
        (
            "nested $or branches and a field in one array element",
            json!({
                "data": {"people": {"langs": ["en"]}},
                "$or": [
                    {"type": ["Nope"]},
                    {"$or": [
                        {"data": {"people": {"name": ["Ada"], "retired": [true]}}},
                        {"data": {"people": {"$or": [{"age": [36]}, {"age": [37]}], "langs": ["fr"]}}}
                    ]}
                ]
            }),
            true,
        ),
        (
            "a field and an $or over two arrays of objects",
            json!({
                "data": {"lines": {"qty": [5]}, "people": {"name": ["Ada"]}},
                "$or": [
                    {"data": {"lines": {"sku": ["A-1"]}}},
                    {"data": {"people": {"age": [85]}}}
                ]
            }),
            false,
        ),
        (
            "$or with exists",
            json!({"$or": [{"data": {"missing": [{"exists": true}]}}, {"data": {"absent": [{"exists": false}]}}]}),
            true,
        ),
    ]
}

#[test]
fn every_operator_matches_as_documented() {
    let event = event();
    let mut failures = Vec::new();
    for (what, source, expected) in matching_cases() {
        let pattern = match Pattern::compile(&source) {
            Ok(pattern) => pattern,
            Err(error) => {
                failures.push(format!("{what}: does not compile: {error}"));
                continue;
            }
        };
        if pattern.matches(&event) != expected {
            failures.push(format!("{what}: {source} should give {expected}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// (pattern, pointer of the offending part, what is wrong).
fn invalid_cases() -> Vec<(Value, &'static str, PatternErrorKind)> {
    use PatternErrorKind as K;
    let affix = K::InvalidOperand {
        expected: "a string or {\"equals-ignore-case\": string}",
    };
    let string = K::InvalidOperand {
        expected: "a string",
    };
    vec![
        (json!(["x"]), "", K::NotAnObject),
        (json!("x"), "", K::NotAnObject),
        (json!({}), "", K::EmptyObject),
        (json!({"data": {}}), "/data", K::EmptyObject),
        (json!({"type": "OrderPlaced"}), "/type", K::NotObjectOrArray),
        (json!({"type": 5}), "/type", K::NotObjectOrArray),
        (json!({"type": null}), "/type", K::NotObjectOrArray),
        (json!({"type": []}), "/type", K::EmptyMatcherList),
        (json!({"type": ["a", ["b"]]}), "/type/1", K::NestedArray),
        (
            json!({"type": [{}]}),
            "/type/0",
            K::OperatorKeyCount { found: 0 },
        ),
        (
            json!({"type": [{"prefix": "a", "suffix": "b"}]}),
            "/type/0",
            K::OperatorKeyCount { found: 2 },
        ),
        (
            json!({"type": [{"contains": "a"}]}),
            "/type/0/contains",
            K::UnknownOperator,
        ),
        (
            json!({"type": [{"$or": "a"}]}),
            "/type/0/$or",
            K::UnknownOperator,
        ),
        (
            json!({"type": [{"prefix": 5}]}),
            "/type/0/prefix",
            affix.clone(),
        ),
        (
            json!({"type": [{"prefix": {"other": "x"}}]}),
            "/type/0/prefix",
            affix.clone(),
        ),
        (
            json!({"type": [{"suffix": ["x"]}]}),
            "/type/0/suffix",
            affix,
        ),
        (
            json!({"type": [{"prefix": {"equals-ignore-case": 5}}]}),
            "/type/0/prefix/equals-ignore-case",
            string.clone(),
        ),
        (
            json!({"type": [{"equals-ignore-case": ["a"]}]}),
            "/type/0/equals-ignore-case",
            string.clone(),
        ),
        (
            json!({"type": [{"wildcard": 1}]}),
            "/type/0/wildcard",
            string.clone(),
        ),
        (
            json!({"type": [{"wildcard": "a**"}]}),
            "/type/0/wildcard",
            K::ConsecutiveWildcards,
        ),
        (
            json!({"type": [{"wildcard": "a\\b"}]}),
            "/type/0/wildcard",
            K::InvalidWildcardEscape,
        ),
        (
            json!({"type": [{"exists": "yes"}]}),
            "/type/0/exists",
            K::InvalidOperand {
                expected: "true or false",
            },
        ),
        (
            json!({"data": {"total": [{"numeric": [">", "5"]}]}}),
            "/data/total/0/numeric/1",
            K::NumericOperandNotNumber,
        ),
        (
            json!({"data": {"total": [{"numeric": ["!=", 5]}]}}),
            "/data/total/0/numeric/0",
            K::InvalidNumericOperator { after: "" },
        ),
        (
            json!({"data": {"total": [{"numeric": [5, 5]}]}}),
            "/data/total/0/numeric/0",
            K::InvalidNumericOperator { after: "" },
        ),
        (
            json!({"data": {"total": [{"numeric": [">", 5, ">", 6]}]}}),
            "/data/total/0/numeric/2",
            K::InvalidNumericOperator {
                after: " (here \"<\" or \"<=\")",
            },
        ),
        (
            json!({"data": {"total": [{"numeric": [">", 5, "<", "6"]}]}}),
            "/data/total/0/numeric/3",
            K::NumericOperandNotNumber,
        ),
        (
            json!({"data": {"total": [{"numeric": ["<", 5, ">", 1]}]}}),
            "/data/total/0/numeric",
            K::InvalidNumericShape,
        ),
        (
            json!({"data": {"total": [{"numeric": ["=", 5, "<", 6]}]}}),
            "/data/total/0/numeric",
            K::InvalidNumericShape,
        ),
        (
            json!({"data": {"total": [{"numeric": [">"]}]}}),
            "/data/total/0/numeric",
            K::InvalidNumericShape,
        ),
        (
            json!({"data": {"total": [{"numeric": [">", 1, "<"]}]}}),
            "/data/total/0/numeric",
            K::InvalidNumericShape,
        ),
        (
            json!({"data": {"total": [{"numeric": 5}]}}),
            "/data/total/0/numeric",
            K::InvalidNumericShape,
        ),
        (
            json!({"data": {"total": [{"numeric": [">", 10, "<", 5]}]}}),
            "/data/total/0/numeric",
            K::EmptyNumericRange,
        ),
        (
            json!({"data": {"total": [{"numeric": [">", 5, "<=", 5]}]}}),
            "/data/total/0/numeric",
            K::EmptyNumericRange,
        ),
        (
            json!({"type": [{"anything-but": ["a", 1]}]}),
            "/type/0/anything-but/1",
            K::MixedAnythingButList,
        ),
        (
            json!({"type": [{"anything-but": [1, "a"]}]}),
            "/type/0/anything-but/1",
            K::MixedAnythingButList,
        ),
        (
            json!({"type": [{"anything-but": [null]}]}),
            "/type/0/anything-but/0",
            K::InvalidOperand {
                expected: "a string or a number",
            },
        ),
        (
            json!({"type": [{"anything-but": []}]}),
            "/type/0/anything-but",
            K::EmptyOperand,
        ),
        (
            json!({"type": [{"anything-but": true}]}),
            "/type/0/anything-but",
            K::InvalidOperand {
                expected: "a string, a number, an array of only strings or only numbers, or an \
                           object with prefix, suffix, wildcard or equals-ignore-case",
            },
        ),
        (
            json!({"type": [{"anything-but": {"prefix": ""}}]}),
            "/type/0/anything-but/prefix",
            K::EmptyOperand,
        ),
        (
            json!({"type": [{"anything-but": {"suffix": 3}}]}),
            "/type/0/anything-but/suffix",
            string.clone(),
        ),
        (
            json!({"type": [{"anything-but": {"numeric": [">", 1]}}]}),
            "/type/0/anything-but/numeric",
            K::InvalidOperand {
                expected: "one of prefix, suffix, wildcard or equals-ignore-case (under anything-but)",
            },
        ),
        (
            json!({"type": [{"anything-but": {"prefix": "a", "suffix": "b"}}]}),
            "/type/0/anything-but",
            K::OperatorKeyCount { found: 2 },
        ),
        (
            json!({"type": [{"anything-but": {"equals-ignore-case": ["a", 1]}}]}),
            "/type/0/anything-but/equals-ignore-case/1",
            string,
        ),
        (
            json!({"type": [{"anything-but": {"equals-ignore-case": []}}]}),
            "/type/0/anything-but/equals-ignore-case",
            K::InvalidOperand {
                expected: "a string or a non-empty array of strings",
            },
        ),
        (
            json!({"data": {"ip": [{"cidr": "10.0.0.0/33"}]}}),
            "/data/ip/0/cidr",
            K::InvalidCidr,
        ),
        (json!({"$or": [{"type": ["a"]}]}), "/$or", K::InvalidOr),
        (json!({"$or": {"type": ["a"]}}), "/$or", K::InvalidOr),
        (
            json!({"$or": [{"type": ["a"]}, "b"]}),
            "/$or/1",
            K::NotAnObject,
        ),
        (
            json!({"$or": [{"type": ["a"]}, {}]}),
            "/$or/1",
            K::EmptyObject,
        ),
        (
            json!({"data": {"$or": [{"a": ["x"]}, {"b": [{"bad": 1}]}]}}),
            "/data/$or/1/b/0/bad",
            K::UnknownOperator,
        ),
        (
            json!({"a/b": {"c~d": "x"}}),
            "/a~1b/c~0d",
            K::NotObjectOrArray,
        ),
    ]
}

#[test]
fn invalid_patterns_are_rejected_with_a_pointer_to_the_offending_part() {
    let mut failures = Vec::new();
    for (source, pointer, kind) in invalid_cases() {
        match Pattern::compile(&source) {
            Ok(_) => failures.push(format!("{source}: compiled")),
            Err(error) if error.pointer() != pointer || *error.kind() != kind => {
                failures.push(format!(
                    "{source}: got {:?} at {:?}, want {kind:?} at {pointer:?}",
                    error.kind(),
                    error.pointer()
                ))
            }
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_read_as_a_problem_detail() {
    let error = Pattern::compile(&json!({"data": {"total": [{"numeric": [">", "5"]}]}}))
        .expect_err("invalid");
    assert_eq!(
        error.to_string(),
        "the pattern at /data/total/0/numeric/1 must be a number"
    );
    let error = Pattern::compile(&json!({})).expect_err("invalid");
    assert_eq!(
        error.to_string(),
        "the pattern is an empty object; name at least one field"
    );
}

fn nested(depth: usize) -> Value {
    let mut pattern = json!({"leaf": ["x"]});
    for _ in 1..depth {
        pattern = json!({"a": pattern});
    }
    pattern
}

#[test]
fn nesting_is_bounded_by_max_pattern_depth() {
    assert!(Pattern::compile(&nested(MAX_PATTERN_DEPTH)).is_ok());
    let error = Pattern::compile(&nested(MAX_PATTERN_DEPTH + 1)).expect_err("too deep");
    assert_eq!(
        *error.kind(),
        PatternErrorKind::TooDeep {
            max_depth: MAX_PATTERN_DEPTH
        }
    );
    assert_eq!(error.pointer(), "/a".repeat(MAX_PATTERN_DEPTH));
}

#[test]
fn matchers_are_bounded_by_max_pattern_matchers() {
    let at_limit = json!({"position": (0..MAX_PATTERN_MATCHERS).collect::<Vec<_>>()});
    let pattern = Pattern::compile(&at_limit).expect("at the limit");
    assert_eq!(pattern.matcher_count(), MAX_PATTERN_MATCHERS);

    let over = json!({"position": (0..=MAX_PATTERN_MATCHERS).collect::<Vec<_>>()});
    let error = Pattern::compile(&over).expect_err("over the limit");
    assert_eq!(error.pointer(), format!("/position/{MAX_PATTERN_MATCHERS}"));

    // The values of an anything-but list count too.
    let list: Vec<_> = (0..MAX_PATTERN_MATCHERS).collect();
    let error = Pattern::compile(&json!({"a": ["x"], "b": [{"anything-but": list}]}))
        .expect_err("over the limit");
    assert_eq!(
        *error.kind(),
        PatternErrorKind::TooManyMatchers {
            max_matchers: MAX_PATTERN_MATCHERS
        }
    );
}

#[test]
fn size_is_bounded_by_max_pattern_bytes() {
    let big = json!({"type": ["x".repeat(MAX_PATTERN_BYTES)]});
    let error = Pattern::compile(&big).expect_err("too large");
    assert_eq!(error.pointer(), "");
    assert_eq!(
        *error.kind(),
        PatternErrorKind::TooLarge {
            max_bytes: MAX_PATTERN_BYTES
        }
    );
    let error = Pattern::parse(&big.to_string()).expect_err("too large");
    assert!(matches!(error.kind(), PatternErrorKind::TooLarge { .. }));
}

#[test]
fn wildcards_are_bounded_by_max_wildcard_bytes() {
    let long = json!({"type": [{"wildcard": "*".to_owned() + &"a".repeat(MAX_WILDCARD_BYTES)}]});
    let error = Pattern::compile(&long).expect_err("too long");
    assert_eq!(error.pointer(), "/type/0/wildcard");
}

#[test]
fn parse_reports_invalid_json() {
    let error = Pattern::parse("{\"type\": [").expect_err("invalid");
    assert_eq!(error.pointer(), "");
    assert!(matches!(error.kind(), PatternErrorKind::InvalidJson(_)));
    assert!(
        Pattern::parse(r#"{"type": ["OrderPlaced"]}"#)
            .expect("valid")
            .matches(&event())
    );
}

#[test]
fn a_pattern_serialises_as_written_and_deserialises_by_compiling() {
    let source = json!({"data": {"total": [{"numeric": [">", 100]}]}});
    let pattern: Pattern = serde_json::from_value(source.clone()).expect("compiles");
    assert_eq!(serde_json::to_value(&pattern).expect("serialises"), source);
    assert_eq!(pattern.as_json(), &source);

    let error = serde_json::from_value::<Pattern>(json!({"type": "x"})).expect_err("invalid");
    assert!(error.to_string().contains("/type"), "{error}");
}

#[test]
fn a_non_object_event_matches_only_absence() {
    let absent = Pattern::compile(&json!({"type": [{"exists": false}]})).expect("valid");
    let present = Pattern::compile(&json!({"type": ["x"]})).expect("valid");
    assert!(absent.matches(&json!(null)));
    assert!(!present.matches(&json!(["x"])));
}

#[test]
fn case_folding_handles_non_ascii_text() {
    let event = json!({"city": "ÖSTERSUND", "word": "ΟΔΟΣ"});
    for (pattern, expected) in [
        (json!({"city": [{"equals-ignore-case": "östersund"}]}), true),
        (
            json!({"city": [{"prefix": {"equals-ignore-case": "öst"}}]}),
            true,
        ),
        (
            json!({"city": [{"suffix": {"equals-ignore-case": "SUND"}}]}),
            true,
        ),
        (json!({"word": [{"equals-ignore-case": "οδοσ"}]}), true),
    ] {
        let compiled = Pattern::compile(&pattern).expect("valid");
        assert_eq!(compiled.matches(&event), expected, "{pattern}");
    }
}

#[test]
fn combinations_of_or_branches_are_bounded_by_max_pattern_alternatives() {
    // Each field holds an `$or` of two branches: n fields make 2^n combinations.
    let fields = |n: u32| {
        let object: serde_json::Map<String, Value> = (0..n)
            .map(|i| {
                (
                    format!("f{i}"),
                    json!({"$or": [{"a": ["x"]}, {"b": ["y"]}]}),
                )
            })
            .collect();
        Value::Object(object)
    };
    assert_eq!(2_usize.pow(8), MAX_PATTERN_ALTERNATIVES);
    assert!(Pattern::compile(&fields(8)).is_ok());
    let error = Pattern::compile(&fields(9)).expect_err("over the limit");
    assert_eq!(error.pointer(), "");
    assert_eq!(
        *error.kind(),
        PatternErrorKind::TooManyAlternatives {
            max_alternatives: MAX_PATTERN_ALTERNATIVES
        }
    );
    // Nested one level down, the error points at the object over the limit.
    let error = Pattern::compile(&json!({"data": fields(9)})).expect_err("over the limit");
    assert_eq!(error.pointer(), "/data");
}
