//! Just enough HTTP/1.0 for a Prometheus scrape: one request head in, one
//! response out, connection closed.
use alloc::format;
use alloc::string::String;

/// Longest request head accepted.
pub const MAX_REQUEST: usize = 2048;

/// The response to the request head received so far, or `None` while it is
/// incomplete (no blank line yet and under [`MAX_REQUEST`]). `metrics` is
/// called only for `GET /metrics`.
pub fn http_response(request: &[u8], metrics: impl FnOnce() -> String) -> Option<String> {
    let complete =
        request.windows(4).any(|w| w == b"\r\n\r\n") || request.windows(2).any(|w| w == b"\n\n");
    if !complete && request.len() < MAX_REQUEST {
        return None;
    }
    let line_end = request
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(request.len());
    let mut words = request[..line_end].split(|&b| b == b' ');
    let method = words.next().unwrap_or(b"");
    let path = words.next().unwrap_or(b"");
    let (status, kind, body) = if !complete {
        (
            "431 Request Header Fields Too Large",
            "text/plain",
            String::from("request too large\n"),
        )
    } else if method != b"GET" {
        (
            "405 Method Not Allowed",
            "text/plain",
            String::from("only GET is served\n"),
        )
    } else if path == b"/metrics" || path.starts_with(b"/metrics?") {
        (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics(),
        )
    } else {
        (
            "404 Not Found",
            "text/plain",
            String::from("aggdom serves /metrics\n"),
        )
    };
    Some(format!(
        "HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ))
}
