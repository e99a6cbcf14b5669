from bookvault.gateway.headers import connection_named, filter_response_headers, read_request_headers


def test_hop_by_hop_request_headers_are_not_forwarded() -> None:
    head = read_request_headers(
        [
            (b"host", b"gateway.example"),
            (b"connection", b"keep-alive"),
            (b"keep-alive", b"timeout=5"),
            (b"proxy-connection", b"keep-alive"),
            (b"te", b"trailers"),
            (b"trailer", b"x-checksum"),
            (b"transfer-encoding", b"chunked"),
            (b"upgrade", b"h2c"),
            (b"proxy-authorization", b"Basic cHJveHk6c2VjcmV0"),
            (b"proxy-authenticate", b"Basic"),
            (b"accept", b"application/json"),
        ]
    )
    assert head.forward == [("accept", "application/json")]
    assert head.chunked
    assert head.host == b"gateway.example"


def test_headers_named_in_connection_are_not_forwarded() -> None:
    head = read_request_headers(
        [
            (b"x-session-hint", b"abc"),  # arrives before the Connection header naming it
            (b"connection", b"close, X-Session-Hint"),
            (b"connection", b"x-other"),
            (b"x-other", b"1"),
            (b"x-kept", b"2"),
        ]
    )
    assert head.forward == [("x-kept", "2")]


def test_headers_the_gateway_sets_are_read_not_forwarded() -> None:
    head = read_request_headers(
        [
            (b"x-request-id", b"abc"),
            (b"x-forwarded-for", b"10.0.0.1"),
            (b"x-forwarded-for", b"10.0.0.2"),
            (b"x-forwarded-proto", b"https"),
            (b"x-forwarded-host", b"books.example"),
            (b"forwarded", b"for=10.0.0.9"),
            (b"x-real-ip", b"10.0.0.9"),
            (b"content-length", b"12"),
            (b"authorization", b"Bearer t0ken"),
        ]
    )
    assert head.forward == [("authorization", "Bearer t0ken")]
    assert head.authorization == "Bearer t0ken"
    assert head.request_id == b"abc"
    assert head.forwarded_for == [b"10.0.0.1", b"10.0.0.2"]
    assert head.forwarded_proto == b"https"
    assert head.forwarded_host == b"books.example"
    assert head.content_length == b"12"


def test_authorization_named_in_connection_is_neither_forwarded_nor_used() -> None:
    head = read_request_headers([(b"authorization", b"Bearer t"), (b"connection", b"authorization")])
    assert head.forward == []
    assert head.authorization is None


def test_hop_by_hop_response_headers_are_dropped_and_names_lower_cased() -> None:
    kept = filter_response_headers(
        [
            (b"Content-Type", b"application/json"),
            (b"Content-Length", b"42"),
            (b"Connection", b"keep-alive, X-Upstream-Debug"),
            (b"X-Upstream-Debug", b"pool=3"),
            (b"Keep-Alive", b"timeout=5"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Proxy-Authenticate", b"Basic"),
            (b"Upgrade", b"h2c"),
            (b"X-Request-Id", b"echoed-by-upstream"),
            (b"ETag", b'"v1"'),
        ]
    )
    assert kept == [
        (b"content-type", b"application/json"),
        (b"content-length", b"42"),
        (b"etag", b'"v1"'),
    ]


def test_connection_tokens_are_trimmed_and_case_folded() -> None:
    assert connection_named([b" Close ,X-A,, x-b "]) == {b"close", b"x-a", b"x-b"}
