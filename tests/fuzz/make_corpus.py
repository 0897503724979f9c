#!/usr/bin/env python3
"""Writes the committed seed corpus of the fuzz targets (tests/fuzz/corpus/*); run it after editing a seed.

request_parser seeds are an 8-byte prefix (see fuzz_request_parser.cpp) followed by what a client sends:
  byte 0: limits profile in bits 0-1 (0 defaults, 1 small, 2 tiny), bit 2 feeds the split run byte by byte;
  bytes 1-7: split points, each at byte * len(payload) / 256.
message_rewriter seeds are request bodies as they are.
upstream_path seeds are a 2-byte prefix (byte 0: upstream base path, byte 1: strip prefixes; see
fuzz_upstream_path.cpp) followed by a request target.
"""
import pathlib
import random

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT, SMALL, TINY, BYTE_BY_BYTE = 0, 1, 2, 4
SPREAD = bytes([20, 45, 70, 110, 150, 200, 240])


def req(*lines, body=b""):
    return b"".join(l + b"\r\n" for l in lines) + b"\r\n" + body


GET = req(b"GET /v1/models HTTP/1.1", b"Host: 127.0.0.1:9000", b"Authorization: Bearer sk-client")
CHAT = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
POST = req(b"POST /v1/chat/completions HTTP/1.1", b"Host: 127.0.0.1:9000",
           b"Content-Type: application/json", b"Content-Length: %d" % len(CHAT), body=CHAT)


def chunked(*extra_head, chunks=b"4;name=value\r\nWiki\r\n5 ;ext\r\npedia\r\n0\r\n\r\n"):
    return req(b"POST /v1/chat/completions HTTP/1.1", b"Host: x", *extra_head,
               b"Transfer-Encoding: chunked") + chunks


PARSER = {
    # ordinary traffic
    "get": (DEFAULT, GET),
    "get_bytewise": (BYTE_BY_BYTE, GET),
    "post_json": (DEFAULT, POST),
    "post_json_bytewise": (BYTE_BY_BYTE, POST),
    "pipelined": (DEFAULT, GET + POST + GET),
    "pipelined_small_limits": (SMALL, GET + POST),
    "leading_empty_lines": (DEFAULT, b"\r\n\r\n\n" + GET),
    "bare_lf": (DEFAULT, b"GET / HTTP/1.1\nHost: x\n\nGET /b HTTP/1.1\nHost: x\n\n"),
    "http10_keepalive": (DEFAULT, req(b"GET / HTTP/1.0", b"Connection: keep-alive") + req(b"GET / HTTP/1.0")),
    "connection_close": (DEFAULT, req(b"GET / HTTP/1.1", b"Connection: close") + GET),
    "expect_continue": (DEFAULT, req(b"POST /v1/chat/completions HTTP/1.1", b"Expect: 100-continue",
                                     b"Content-Length: %d" % len(CHAT), body=CHAT)),
    "content_length_zero": (DEFAULT, req(b"POST / HTTP/1.1", b"Content-Length: 0") + GET),
    "same_content_length_twice": (DEFAULT, req(b"POST / HTTP/1.1", b"Content-Length: 5",
                                               b"Content-Length: 5", body=b"hello")),
    "chunked_ext_trailers": (DEFAULT, chunked(chunks=b"4;name=value\r\nWiki\r\n5 ;ext\r\npedia\r\n"
                                              b"E\r\n in\r\n\r\nchunks.\r\n0;last\r\nX-Trailer: 1\r\n"
                                              b"Checksum: abc\r\n\r\n") + GET),
    "chunked_bytewise": (BYTE_BY_BYTE, chunked()),
    "chunked_lf_only": (DEFAULT, b"POST / HTTP/1.1\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n"),
    "chunked_small_limits": (SMALL, chunked(chunks=b"20\r\n" + b"a" * 32 + b"\r\n20\r\n" + b"b" * 32
                                            + b"\r\n1\r\nc\r\n0\r\n\r\n")),
    "chunked_case": (DEFAULT, req(b"POST / HTTP/1.1", b"transfer-encoding: Chunked") + b"1\r\nx\r\n0\r\n\r\n"),
    "trailer_over_limit": (SMALL, chunked(chunks=b"1\r\nx\r\n0\r\n" + b"X-Pad: " + b"p" * 300 + b"\r\n\r\n")),
    "too_many_headers": (SMALL, req(b"GET / HTTP/1.1", *[b"X-H%d: %d" % (i, i) for i in range(12)])),
    "tiny_limits": (TINY, req(b"POST / HTTP/1.1", b"A: 1", b"Content-Length: 9", body=b"123456789")),
    "head_over_limit": (SMALL, req(b"GET /" + b"a" * 300 + b" HTTP/1.1", b"Host: x")),
    "content_length_over_limit": (SMALL, req(b"POST / HTTP/1.1", b"Content-Length: 65", body=b"z" * 65)),
    "content_length_huge": (DEFAULT, req(b"POST / HTTP/1.1", b"Content-Length: 99999999999999999999999")),
    "chunk_size_huge": (DEFAULT, chunked(chunks=b"fffffffffffffffffff\r\nx\r\n0\r\n\r\n")),
    # issue 8 attack inputs
    "two_content_lengths": (DEFAULT, req(b"POST /v1/chat/completions HTTP/1.1", b"Content-Length: 5",
                                         b"Content-Length: 40", body=b"hello" + GET)),
    "content_length_and_te": (DEFAULT, req(b"POST / HTTP/1.1", b"Content-Length: 6",
                                           b"Transfer-Encoding: chunked") + b"0\r\n\r\n" + GET),
    "content_length_plus": (DEFAULT, req(b"POST / HTTP/1.1", b"Content-Length: +34", body=b"x" * 34)),
    "content_length_minus_zero": (DEFAULT, req(b"POST / HTTP/1.1", b"Content-Length: -0") + GET),
    "content_length_list": (DEFAULT, req(b"POST / HTTP/1.1", b"Content-Length: 5, 5", body=b"hello")),
    "chunk_size_0x": (DEFAULT, chunked(chunks=b"0x40\r\n" + b"a" * 64 + b"\r\n0\r\n\r\n")),
    "chunk_size_space": (DEFAULT, chunked(chunks=b" 40\r\n" + b"a" * 64 + b"\r\n0\r\n\r\n")),
    "chunk_size_plus": (DEFAULT, chunked(chunks=b"+40\r\n" + b"a" * 64 + b"\r\n0\r\n\r\n")),
    "chunk_missing_crlf": (DEFAULT, chunked(chunks=b"3\r\nabcX\r\n0\r\n\r\n")),
    "chunk_missing_crlf_smuggle": (DEFAULT, chunked(chunks=b"3\r\nabc" + GET + b"0\r\n\r\n")),
    "second_transfer_encoding": (DEFAULT, req(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked",
                                              b"Transfer-Encoding: identity") + b"0\r\n\r\n"),
    "transfer_encoding_gzip_chunked": (DEFAULT, req(b"POST / HTTP/1.1", b"Transfer-Encoding: gzip, chunked")
                                       + b"0\r\n\r\n"),
    "transfer_encoding_chunked_twice": (DEFAULT, req(b"POST / HTTP/1.1", b"Transfer-Encoding: chunked, chunked")
                                        + b"0\r\n\r\n"),
    "transfer_encoding_http10": (DEFAULT, req(b"POST / HTTP/1.0", b"Transfer-Encoding: chunked") + b"0\r\n\r\n"),
    "nul_in_header": (DEFAULT, req(b"GET / HTTP/1.1", b"X-Test: a\x00b")),
    "bare_cr_in_header": (DEFAULT, req(b"GET / HTTP/1.1", b"X-Test: a\rb", b"Host: x")),
    "obs_fold": (DEFAULT, req(b"GET / HTTP/1.1", b"X-Test: a", b" folded", b"Host: x")),
    "space_before_colon": (DEFAULT, req(b"GET / HTTP/1.1", b"Host : x")),
    "absolute_form": (DEFAULT, req(b"GET http://api.openai.com/v1/models HTTP/1.1", b"Host: api.openai.com")),
    "http09": (DEFAULT, b"GET /\r\n\r\n"),
    "http2_preface": (DEFAULT, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    "http20_request_line": (DEFAULT, req(b"GET / HTTP/2.0", b"Host: x")),
    "trace_lower": (DEFAULT, req(b"trace / HTTP/1.1", b"Host: x") + req(b"Trace / HTTP/1.1", b"Host: x")),
    "connect": (DEFAULT, req(b"CONNECT api.openai.com:443 HTTP/1.1", b"Host: api.openai.com:443")),
    "dot_segments": (DEFAULT, req(b"GET /../../admin HTTP/1.1") + req(b"GET /%2e%2e/%2e%2e/admin HTTP/1.1")),
    "long_path": (DEFAULT, req(b"GET /" + b"p" * 3000 + b" HTTP/1.1", b"Host: x")),
}

REWRITER = {
    "five_with_system": b'{"model":"gpt-4o","messages":[{"role":"system","content":"Be brief."},'
                        b'{"role":"user","content":"a"},{"role":"assistant","content":"b"},'
                        b'{"role":"user","content":"c"},{"role":"assistant","content":"d"},'
                        b'{"role":"user","content":"e"}],"stream":true}',
    "system_not_first": b'{"messages":[{"role":"user","content":"a"},{"role":"system","content":"S"},'
                        b'{"role":"user","content":"b"},{"role":"user","content":"c"},{"role":"user","content":"d"}]}',
    "short": b'{"model":"m","messages":[{"role":"system","content":"S"},{"role":"user","content":"a"}]}',
    "system_upper_pretty": b'{\n  "messages" : [\n    { "role" : "SYSTEM", "content" : "S" } ,\n'
                           b'    {"role":"user","content":"a"},\r\n\t{"role":"user","content":"b"} ,'
                           b'{"role":"user","content":"c"},\n {"role":"user","content":"d"}\n  ] ,\n'
                           b'  "model" : "x"\n}\n',
    "nested_parts": b'{"model":"gpt-4o","messages":[{"role":"system","content":[{"type":"text","text":"S ]}"}]},'
                    b'{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url",'
                    b'"image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]},'
                    b'{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":'
                    b'{"name":"f","arguments":"{\\"a\\":[1,{\\"b\\":\\"]\\"}]}"}}]},'
                    b'{"role":"tool","tool_call_id":"c1","content":"{\\"ok\\":true}"},'
                    b'{"role":"user","content":"next"}],"tools":[{"type":"function","function":'
                    b'{"name":"f","parameters":{"type":"object","properties":{}}}}]}',
    "unicode_escapes": b'{"model":"\\u0067pt","messages":[{"role":"sys\\u0074em","content":"\\u00e9\\ud83d\\ude00'
                       b'\\"\\\\\\/\\b\\f\\n\\r\\t"},{"role":"user","content":"\xc3\xa9\xf0\x9f\x98\x80"},'
                       b'{"role":"user","content":"\\u005d\\u007d"},{"role":"user","content":"c"},'
                       b'{"role":"user","content":"d"}]}',
    "escaped_messages_key": b'{"messag\\u0065s":[{"role":"system","content":"S"},{"role":"user","content":"a"},'
                            b'{"role":"user","content":"b"},{"role":"user","content":"c"},'
                            b'{"role":"user","content":"d"}]}',
    "duplicate_messages_key": b'{"messages":[1,2,3],"model":"a","messages":[{"role":"system","content":"S"},'
                              b'{"role":"user","content":"a"},{"role":"user","content":"b"},'
                              b'{"role":"user","content":"c"},{"role":"user","content":"d"}],"model":"b"}',
    "duplicate_messages_key_escaped": b'{"messages":[{"role":"system","content":"S"},{"role":"user","content":"a"},'
                                      b'{"role":"user","content":"b"},{"role":"user","content":"c"},'
                                      b'{"role":"user","content":"d"}],"messag\\u0065s":[{"role":"system",'
                                      b'"content":"T"},{"role":"user","content":"1"},{"role":"user","content":"2"},'
                                      b'{"role":"user","content":"3"}]}',
    "duplicate_messages": b'{"messages":[{"role":"system","content":"S"},{"role":"user","content":"a"},'
                          b'{"role":"user","content":"a"},{"role":"system","content":"S"},'
                          b'{"role":"user","content":"a"},{"role":"user","content":"a"}]}',
    "duplicate_keys_in_message": b'{"messages":[{"role":"user","role":"system","content":"S"},{"role":"user"},'
                                 b'{"role":"user"},{"role":"user"},{"role":"user"}]}',
    "big_numbers": b'{"model":"m","temperature":1e308,"seed":12345678901234567890123,"top_p":-0,'
                   b'"messages":[{"role":"system","content":"S","n":1.0e-400},{"role":"user","content":"a",'
                   b'"n":9007199254740993},{"role":"user","n":-1.5E+3},{"role":"user","n":0.1},'
                   b'{"role":"user","n":18446744073709551616}]}',
    "scalars_as_messages": b'{"messages":[{"role":"system"},1,"two",null,true,[],{},false]}',
    "system_as_string": b'{"messages":["system",{"role":"user"},{"role":"user"},{"role":"user"},{"role":"user"}]}',
    "messages_not_array": b'{"model":"m","messages":{"role":"system"}}',
    "top_level_array": b'[{"role":"system"},{"role":"user"},{"role":"user"},{"role":"user"},{"role":"user"}]',
    "empty_object": b"{}",
    "model_only": b'{"model":"gpt-4o-mini"}',
    "model_not_string": b'{"model":42,"messages":[]}',
    "truncated": b'{"model":"m","messages":[{"role":"system","content":"S"},{"role":"user"',
    "garbage_after": b'{"messages":[]} x',
    "deep_nesting": b'{"messages":[{"role":"system"},' + b"[" * 200 + b"]" * 200 + b',{},{},{}]}',
    "utf8_bom": b'\xef\xbb\xbf{"messages":[]}',
}

# (base index, strip index, target); bases: "", "/", "/prefix/openai", "/v1", "/api/v1/", "/a%2Fb/v1";
# strips: none, ["/release", "/test"], ["/v1"]
PATHS = {
    "chat": (2, 0, b"/v1/chat/completions"),
    "chat_query": (3, 0, b"/v1/models?limit=5&after=/../../x"),
    "dotdot": (2, 0, b"/../../admin"),
    "dotdot_encoded": (2, 0, b"/%2e%2e/%2e%2e/admin"),
    "dotdot_mixed_case": (2, 0, b"/v1/%2E%2e/%2e./admin"),
    "dotdot_inside": (2, 0, b"/v1/models/../../../admin"),
    "dotdot_resolves_inside": (2, 0, b"/v1/a/./b/../models"),
    "dotdot_slash_encoded": (2, 0, b"/v1/..%2f..%2fadmin"),
    "dotdot_backslash": (2, 0, b"/v1/..\\..\\admin"),
    "dotdot_backslash_encoded": (2, 0, b"/v1/..%5c..%5cadmin"),
    "double_encoded": (2, 0, b"/v1/%252e%252e/%252e%252e/admin"),
    "trailing_dot": (1, 0, b"/v1/models/."),
    "trailing_dotdot": (1, 0, b"/v1/models/.."),
    "empty_segments": (2, 0, b"//..//v1//models"),
    "strip_prefix": (0, 1, b"/release/v1/models"),
    "strip_prefix_only": (0, 1, b"/test"),
    "strip_prefix_dotdot": (2, 1, b"/release/../../admin"),
    "v1v1": (3, 2, b"/v1/v1/chat/completions"),
    "base_v1": (4, 0, b"/v1/models"),
    "encoded_base": (5, 0, b"/v1/models/org%2Fmodel"),
    "percent_garbage": (2, 0, b"/%%2e%2e/%zz/%/%2"),
    "utf8": (2, 0, b"/v1/\xc3\xa9/\xff\xfe/x"),
    "fragment": (2, 0, b"/v1/models#/../../admin"),
}


def write(directory, seeds):
    # Regression seeds (reproducers of fixed findings, see FINDINGS.md) are kept; the rest is written anew.
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.iterdir():
        if not old.name.startswith("regression"):
            old.unlink()
    for name, data in seeds.items():
        (directory / name).write_bytes(data)


write(HERE / "corpus" / "request_parser",
      {name: bytes([flags]) + SPREAD + payload for name, (flags, payload) in PARSER.items()})
write(HERE / "corpus" / "message_rewriter", REWRITER)
write(HERE / "corpus" / "upstream_path", {name: bytes([b, s]) + t for name, (b, s, t) in PATHS.items()})
# fuzz_secret_masking: length byte, position byte, key characters, spellings, text around (see README.md).
MASK_CHARS = bytes(random.Random(7).randrange(256) for _ in range(61))
MASK_ERROR = (b'{"error":{"message":"Incorrect API key provided: . You can find your API key at '
              b'https://platform.openai.com","type":"invalid_request_error","code":"invalid_api_key"}}')


def masking(length, where, spellings, around):
    n = length - 3
    return bytes([(length - 9) % 56, where]) + MASK_CHARS[:n] + bytes(spellings[:n]) + around


MASKING = {f"error-{name}": masking(40, 128, [spelling] * 61, MASK_ERROR)
           for spelling, name in enumerate(["raw", "json-u-lower", "json-u-upper", "percent-upper", "percent-lower",
                                            "json-slash", "percent-twice", "percent-in-json", "json-in-percent"])}
MASKING["mixed"] = masking(51, 60, [i % 9 for i in range(61)], MASK_ERROR)
MASKING["sse"] = masking(40, 30, [1] * 61, b'data: {"error":{"message":"key "}}\n\n')
MASKING["header"] = masking(40, 200, [3] * 61, b"https://example.test/callback?api_key=&state=1")
MASKING["empty-around"] = masking(9, 0, [2] * 61, b"")
write(HERE / "corpus" / "secret_masking", MASKING)

print(f"{len(PARSER)} request_parser, {len(REWRITER)} message_rewriter, {len(PATHS)} upstream_path, {len(MASKING)} secret_masking seeds")
