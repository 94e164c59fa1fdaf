"""The plain-data codec that carries values out of the sandbox, and the harness's own JSON writer.

Both halves run on both sides: inside the sandboxed test process (:mod:`rlaif.sandbox.harness`)
:func:`encode` turns what the candidate's code returned into plain data and :func:`dumps` writes the
harness's messages; in the parent :func:`decode` turns the data back into builtins for the verdict.

Guarantees: :func:`encode` reads a value only through the base types' own methods (a subclass that
overrides ``__eq__``/``__iter__``/``__int__`` is read by its real contents, never by its own logic)
and accepts builtin types only; :func:`decode` yields builtins only, and raises ``ValueError`` on
anything malformed. Every name :func:`encode` and :func:`dumps` call (builtins, the base types'
methods, the limits, the C string escaper) is bound when this module is imported -- in the zygote,
long before any candidate code runs -- so rebinding builtins, ``json`` or this module's globals
changes nothing they do. Non-guarantee: code that reaches into the closures themselves (``gc``,
frames) can change them; that is why the parent judges values, never a verdict the sandbox sends.

Standard library only: it is loaded by the sandbox zygote, which stays small so that forking it is
cheap.
"""

from __future__ import annotations

import json
import math

MAX_DEPTH = 100
MAX_ITEMS = 200_000
_BIG_INT_BITS = 2_000  # below 640 decimal digits: no int/str limit a program can set applies


class Unencodable(Exception):
    """The value is not plain data (or is too large) and cannot be compared safely."""


class Unsafe(ValueError):
    """A well-formed value that would cost the reader too much to build (hash flooding)."""


def _make_subclass_encoder():
    """The encoder's slow path: subclasses of builtin types, read with the base type's own methods.

    Kept apart from the exact-type path so that the common case (exact builtins) stays a short
    chain of identity checks. Everything is bound now, at import."""
    _isinstance, _complex, type_name, _Unencodable = (
        isinstance,
        complex,
        type.__dict__["__name__"].__get__,
        Unencodable,
    )
    _int, _float, _str, _list, _tuple, _dict, _set, _frozenset, _bytes = (
        int, float, str, list, tuple, dict, set, frozenset, bytes,
    )  # fmt: skip
    int_value, float_value, str_value, complex_value = (
        int.__int__,
        float.__float__,
        str.__str__,
        complex.__complex__,
    )
    tuple_iter, list_iter, set_iter, frozenset_iter = (
        tuple.__iter__,
        list.__iter__,
        set.__iter__,
        frozenset.__iter__,
    )
    dict_items, bytes_hex = dict.items, bytes.hex

    def subclass(enc, v, t, depth, budget):
        if _isinstance(v, _int):
            return enc(int_value(v), depth, budget)
        if _isinstance(v, _float):
            return enc(float_value(v), depth, budget)
        if _isinstance(v, _str):
            return str_value(v)
        if _isinstance(v, _tuple):
            return {"t": [enc(x, depth + 1, budget) for x in tuple_iter(v)]}
        if _isinstance(v, _list):
            return [enc(x, depth + 1, budget) for x in list_iter(v)]
        if _isinstance(v, _dict):
            return {"d": [[enc(k, depth + 1, budget), enc(x, depth + 1, budget)] for k, x in dict_items(v)]}
        if _isinstance(v, _frozenset):
            return {"f": [enc(x, depth + 1, budget) for x in frozenset_iter(v)]}
        if _isinstance(v, _set):
            return {"s": [enc(x, depth + 1, budget) for x in set_iter(v)]}
        if _isinstance(v, _complex):
            return enc(_complex(complex_value(v)), depth, budget)
        if _isinstance(v, _bytes):
            return {"b": bytes_hex(v)}
        raise _Unencodable(f"value of type {type_name(t)!s}")

    return subclass


def _make_encode():
    """:func:`encode`, with every builtin and limit it uses bound now (at import, before any
    candidate code)."""
    _type, _isfinite, _format, _repr, _Unencodable = type, math.isfinite, format, repr, Unencodable
    _int, _float, _str, _list, _tuple, _dict, _set, _frozenset = (
        int,
        float,
        str,
        list,
        tuple,
        dict,
        set,
        frozenset,
    )
    _complex, _bytes, _bytearray, _bool = complex, bytes, bytearray, bool
    tuple_iter, list_iter, set_iter, frozenset_iter = (
        tuple.__iter__,
        list.__iter__,
        set.__iter__,
        frozenset.__iter__,
    )
    dict_items, bytes_hex, bytearray_hex, bit_length = dict.items, bytes.hex, bytearray.hex, int.bit_length
    max_depth, big_int_bits, default_items, subclass = (
        MAX_DEPTH,
        _BIG_INT_BITS,
        MAX_ITEMS,
        _make_subclass_encoder(),
    )

    def enc(v, depth, budget):
        if depth > max_depth:
            raise _Unencodable("value nested too deeply")
        budget[0] -= 1
        if budget[0] < 0:
            raise _Unencodable("value has too many elements")
        t = _type(v)
        if v is None or t is _bool or t is _str:
            return v
        if t is _int:
            return v if bit_length(v) < big_int_bits else {"I": _format(v, "x")}
        if t is _float:
            return v if _isfinite(v) else {"F": _repr(v)}
        if t is _list:
            return [enc(x, depth + 1, budget) for x in list_iter(v)]
        if t is _tuple:
            return {"t": [enc(x, depth + 1, budget) for x in tuple_iter(v)]}
        if t is _dict:
            return {"d": [[enc(k, depth + 1, budget), enc(x, depth + 1, budget)] for k, x in dict_items(v)]}
        if t is _set:
            return {"s": [enc(x, depth + 1, budget) for x in set_iter(v)]}
        if t is _frozenset:
            return {"f": [enc(x, depth + 1, budget) for x in frozenset_iter(v)]}
        if t is _complex:
            return {"c": [enc(v.real, depth + 1, budget), enc(v.imag, depth + 1, budget)]}
        if t is _bytes:
            return {"b": bytes_hex(v)}
        if t is _bytearray:
            return {"y": bytearray_hex(v)}
        return subclass(enc, v, t, depth, budget)

    def encode(value, *, max_items: int = default_items):
        """A JSON-able form of ``value`` that :func:`decode` turns back into builtins only.

        Subclasses of builtin types are converted through the base type's own methods, so a value
        whose class overrides ``__eq__``/``__iter__`` is compared by its real contents, never by its
        own logic.
        """
        return enc(value, 0, [max_items])

    return encode


encode = _make_encode()


def _make_decode():
    """:func:`decode` and the hash-flooding check, with every builtin they use bound now (at import,
    in the zygote: the test process decodes the worker's call arguments after the program ran)."""
    import builtins as b

    type, bool, int, float, str, list, dict, len, tuple = (
        b.type, b.bool, b.int, b.float, b.str, b.list, b.dict, b.len, b.tuple,
    )  # fmt: skip
    set, frozenset, zip, all, complex, hash, ValueError, TypeError = (
        b.set, b.frozenset, b.zip, b.all, b.complex, b.hash, b.ValueError, b.TypeError,
    )  # fmt: skip
    bytes, bytearray = b.bytes.fromhex, b.bytearray.fromhex
    Refused = Unsafe

    def decode(obj):
        """Plain builtins from :func:`encode`'s output; anything malformed raises ``ValueError``."""
        t = type(obj)
        if obj is None or t is bool or t is int or t is float or t is str:
            return obj
        if t is list:
            return [decode(x) for x in obj]
        if t is not dict or len(obj) != 1:
            raise ValueError(f"malformed encoded value ({t.__name__})")
        ((tag, payload),) = obj.items()
        if tag == "I" and type(payload) is str:
            return int(payload, 16)
        if tag == "F" and payload in ("nan", "inf", "-inf"):
            return float(payload)
        if tag == "b" and type(payload) is str:
            return bytes(payload)
        if tag == "y" and type(payload) is str:
            return bytearray(payload)
        if type(payload) is not list:
            raise ValueError(f"malformed encoded value (tag {tag!r})")
        if tag == "t":
            return tuple(decode(x) for x in payload)
        if tag == "s":
            return set(_spread([decode(x) for x in payload]))
        if tag == "f":
            return frozenset(_spread([decode(x) for x in payload]))
        if tag == "d":
            if not all(type(kv) is list and len(kv) == 2 for kv in payload):
                raise ValueError("malformed encoded dict")
            keys = _spread([decode(k) for k, _ in payload])
            return dict(zip(keys, [decode(v) for _, v in payload], strict=True))
        if tag == "c" and len(payload) == 2:
            re_, im = decode(payload[0]), decode(payload[1])
            if type(re_) not in (int, float) or type(im) not in (int, float):
                raise ValueError("malformed encoded complex")
            return complex(re_, im)
        raise ValueError(f"malformed encoded value (tag {tag!r})")

    def _spread(items: list) -> list:
        """``items``, unless many of them hash alike: building a set or dict of n keys with one hash
        costs n**2 comparisons (a set of ``1 + k * (2**61 - 1)`` took minutes), so such a value is
        refused (:class:`Unsafe`), in linear time, before any set or dict is built from it."""
        if len(items) > 64:
            try:
                distinct = len({hash(x) for x in items})
            except TypeError:
                return items  # unhashable: building the set raises TypeError as it would have
            if 2 * distinct < len(items):
                raise Refused(f"{len(items) - distinct} of {len(items)} keys hash alike (hash flooding)")
        return items

    return decode


decode = _make_decode()


def _make_dumps():
    """A JSON writer for the harness's own messages that calls nothing the candidate can replace:
    the C string escaper and the base types' ``__repr__`` are bound at import (``json.dumps`` looks
    up module globals at call time, so a program could patch it)."""
    escape = getattr(json.encoder, "c_encode_basestring_ascii", None) or json.encoder.encode_basestring_ascii
    _type, int_repr, float_repr, join, dict_items = type, int.__repr__, float.__repr__, str.join, dict.items
    _str, _int, _float, _list, _dict, _TypeError = str, int, float, list, dict, TypeError

    def dumps(obj) -> str:
        t = _type(obj)
        if obj is None:
            return "null"
        if obj is True:
            return "true"
        if obj is False:
            return "false"
        if t is _str:
            return escape(obj)
        if t is _int:
            return int_repr(obj)
        if t is _float:
            return float_repr(obj)
        if t is _list:
            return "[" + join(",", [dumps(x) for x in obj]) + "]"
        if t is _dict:
            return "{" + join(",", [escape(k) + ":" + dumps(v) for k, v in dict_items(obj)]) + "}"
        raise _TypeError("not a message value")

    return dumps


dumps = _make_dumps()
