import pytest

from bookvault.bench.wrk import _lua_script, parse_wrk_output

SAMPLE = """Running 2s test @ http://127.0.0.1:19999
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   493.06us  161.11us   3.10ms   73.01%
    Req/Sec    61.33k     2.01k   64.20k    80.00%
  Latency Distribution
     50%  409.00us
     75%  498.00us
     90%  591.00us
     99%    1.21ms
  146919 requests in 2.10s, 68.42MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  69973.69
Transfer/sec:     32.57MB
"""


def test_wrk_output_is_read_whole() -> None:
    result = parse_wrk_output(SAMPLE)
    assert result.requests_per_s == 69973.69
    assert result.requests == 146919
    assert result.non_2xx == 7
    assert result.socket_errors == 3
    assert result.latency_ms == pytest.approx({"p50": 0.409, "p75": 0.498, "p90": 0.591, "p99": 1.21})


def test_garbage_is_refused() -> None:
    with pytest.raises(ValueError, match="unexpected wrk output"):
        parse_wrk_output("wrk: connection refused")


def test_lua_script_quotes_paths_and_headers() -> None:
    script = _lua_script(["/books/1", '/search?q="x"'], {"Authorization": "Bearer a.b.c"})
    assert 'wrk.headers["Authorization"] = "Bearer a.b.c"' in script
    assert '"/search?q=\\"x\\""' in script
    with pytest.raises(ValueError, match="printable"):
        _lua_script(["/a\nb"], {})
