//! Just enough HTTP/1.0 for a Prometheus scrape: one request head in, one
//! response out, connection closed.
use alloc::format;
use alloc::string::String;

/// Longest request head accepted.
pub const MAX_REQUEST: usize = 2048;

/// A request head's method and target (the first two words of its first
/// line), and whether the head is complete (its blank line is there).
fn request_line(request: &[u8]) -> (bool, &[u8], &[u8]) {
    let complete =
        request.windows(4).any(|w| w == b"\r\n\r\n") || request.windows(2).any(|w| w == b"\n\n");
    let line_end = request
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(request.len());
    let mut words = request[..line_end].split(|&b| b == b' ');
    let method = words.next().unwrap_or(b"");
    let path = words.next().unwrap_or(b"");
    (complete, method, path)
}

/// The target of a complete `GET` request head (`/capture?uplink=0`), for
/// a server that answers other paths before [`http_response`]; `None`
/// while the head is incomplete, for another method, or a target that is
/// not UTF-8.
pub fn get_target(request: &[u8]) -> Option<&str> {
    match request_line(request) {
        (true, b"GET", path) => core::str::from_utf8(path).ok(),
        _ => None,
    }
}

/// A whole response: status line, the headers, `body`; the connection
/// closes after it.
pub fn response(status: &str, kind: &str, body: &str) -> String {
    format!(
        "HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The response to the request head received so far, or `None` while it is
/// incomplete (no blank line yet and under [`MAX_REQUEST`]). `metrics` is
/// called only for `GET /metrics`.
pub fn http_response(request: &[u8], metrics: impl FnOnce() -> String) -> Option<String> {
    let (complete, method, path) = request_line(request);
    if !complete && request.len() < MAX_REQUEST {
        return None;
    }
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
    Some(response(status, kind, &body))
}
