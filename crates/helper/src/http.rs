//! A minimal HTTP/1.1 client for the Docker Engine API over its Unix socket.
//!
//! One connection per request. Normal responses are read whole (framed by
//! `Content-Length`, `Transfer-Encoding: chunked`, or the connection's end);
//! [`Conn::start_stream`] returns the connection after the response head for
//! the hijacked exec stream. The parsing functions are pure, for tests.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest normal response body accepted (engine answers here are small).
const MAX_BODY: usize = 8 * 1024 * 1024;
/// How long to wait for a (non-streaming) response before giving up.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Status line and headers of a response.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// `(lowercased name, value)` pairs.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The value of header `name` (lowercase), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn is_chunked(&self) -> bool {
        self.headers.iter().any(|(n, v)| {
            n == "transfer-encoding"
                && v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("chunked"))
        })
    }
}

/// A complete response.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The decoded body.
    pub body: Vec<u8>,
}

/// Parses the response head at the start of `buf`. Returns the head and its
/// length (the body starts there), or `None` if more bytes are needed.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, String> {
    // Find the empty line ending the head (CRLF, tolerating bare LF).
    let mut end = None;
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            let line = &buf[line_start..i];
            if line.is_empty() || line == b"\r" {
                end = Some(i + 1);
                break;
            }
            line_start = i + 1;
        }
    }
    let Some(end) = end else {
        if buf.len() > MAX_HEAD {
            return Err("response head too large".into());
        }
        return Ok(None);
    };
    let text =
        std::str::from_utf8(&buf[..end]).map_err(|_| String::from("response head is not UTF-8"))?;
    let mut lines = text.lines();
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(1..))
        .and_then(|r| r.strip_prefix(' '))
        .and_then(|r| r.get(..3))
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| {
            let mut m = String::from("bad HTTP status line: ");
            m.push_str(&status_line.chars().take(80).collect::<String>());
            m
        })?;
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| String::from("malformed response header"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Some((Head { status, headers }, end)))
}

/// Parses a hexadecimal chunk size line (extensions after `;` ignored).
fn chunk_size(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.split(|&b| b == b';').next()?;
    let digits = std::str::from_utf8(digits).ok()?.trim();
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    usize::from_str_radix(digits, 16).ok()
}

/// Decodes a complete chunked body from `data`; `Ok(None)` if incomplete.
pub fn decode_chunked(data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let bad = || String::from("malformed chunked response body");
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let Some(nl) = data[pos..].iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let size = chunk_size(&data[pos..pos + nl]).ok_or_else(bad)?;
        pos += nl + 1;
        if size == 0 {
            // Trailer section: header lines up to an empty line.
            loop {
                let Some(nl) = data[pos..].iter().position(|&b| b == b'\n') else {
                    return Ok(None);
                };
                let line = &data[pos..pos + nl];
                pos += nl + 1;
                if line.is_empty() || line == b"\r" {
                    return Ok(Some(body));
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err("response body too large".into());
        }
        // Data, then CRLF.
        if data.len() < pos + size + 1 {
            return Ok(None);
        }
        body.extend_from_slice(&data[pos..pos + size]);
        pos += size;
        match data[pos] {
            b'\n' => pos += 1,
            b'\r' => match data.get(pos + 1) {
                None => return Ok(None),
                Some(b'\n') => pos += 2,
                Some(_) => return Err(bad()),
            },
            _ => return Err(bad()),
        }
    }
}

/// The body of the response with head `head`, if `rest` (the bytes after the
/// head) holds all of it. `eof` tells that no more bytes will come.
pub fn body_if_complete(head: &Head, rest: &[u8], eof: bool) -> Result<Option<Vec<u8>>, String> {
    let truncated = || String::from("engine closed the connection in the middle of a response");
    if (100..200).contains(&head.status) || head.status == 204 || head.status == 304 {
        return Ok(Some(Vec::new()));
    }
    if head.is_chunked() {
        return match decode_chunked(rest)? {
            Some(b) => Ok(Some(b)),
            None if eof => Err(truncated()),
            None => Ok(None),
        };
    }
    if let Some(cl) = head.header("content-length") {
        let n: usize = cl
            .parse()
            .map_err(|_| String::from("bad Content-Length in response"))?;
        if n > MAX_BODY {
            return Err("response body too large".into());
        }
        return if rest.len() >= n {
            Ok(Some(rest[..n].to_vec()))
        } else if eof {
            Err(truncated())
        } else {
            Ok(None)
        };
    }
    if rest.len() > MAX_BODY {
        return Err("response body too large".into());
    }
    Ok(eof.then(|| rest.to_vec()))
}

/// Appends `s` to `out`, percent-encoding anything but unreserved characters,
/// for use as one path segment.
pub fn push_path_segment(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// The type of every request body but archives.
pub const JSON: &str = "application/json";
/// `PUT /containers/{id}/archive`.
pub const TAR: &str = "application/x-tar";

/// Builds the request bytes; `body` is its content type and bytes.
pub fn build_request(
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    upgrade: bool,
) -> Vec<u8> {
    let mut r = String::with_capacity(256);
    r.push_str(method);
    r.push(' ');
    r.push_str(path);
    r.push_str(" HTTP/1.1\r\nHost: docker\r\nUser-Agent: swarm-exec-helper/");
    r.push_str(env!("CARGO_PKG_VERSION"));
    r.push_str("\r\n");
    if let Some((content_type, b)) = body {
        r.push_str("Content-Type: ");
        r.push_str(content_type);
        r.push_str("\r\nContent-Length: ");
        r.push_str(&b.len().to_string());
        r.push_str("\r\n");
    }
    if upgrade {
        r.push_str("Connection: Upgrade\r\nUpgrade: tcp\r\n");
    } else {
        r.push_str("Connection: close\r\n");
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    if let Some((_, b)) = body {
        bytes.extend_from_slice(b);
    }
    bytes
}

fn io_err(what: &str, e: &io::Error) -> String {
    let mut m = String::from(what);
    m.push_str(": ");
    m.push_str(&e.to_string());
    m
}

/// Reads more bytes from `r` onto the end of `buf`; 0 means end of stream.
pub fn read_more(r: &mut impl Read, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
    let old = buf.len();
    buf.resize(old + max, 0);
    loop {
        match r.read(&mut buf[old..]) {
            Ok(n) => {
                buf.truncate(old + n);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                buf.truncate(old);
                return Err(e);
            }
        }
    }
}

/// One connection to the engine.
pub struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects to the engine's socket.
    pub fn open(socket: &Path) -> Result<Conn, String> {
        let stream = UnixStream::connect(socket).map_err(|e| {
            let mut m = String::from("cannot connect to the Docker engine at ");
            m.push_str(&socket.to_string_lossy());
            io_err(&m, &e)
        })?;
        // Best effort: a missing timeout only means waiting longer.
        let _ = stream.set_read_timeout(Some(TIMEOUT));
        let _ = stream.set_write_timeout(Some(TIMEOUT));
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    fn send(&mut self, req: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(req)
            .map_err(|e| io_err("sending a request to the Docker engine", &e))
    }

    fn read_head(&mut self) -> Result<(Head, usize), String> {
        loop {
            if let Some(h) = parse_head(&self.buf)? {
                return Ok(h);
            }
            let n = read_more(&mut self.stream, &mut self.buf, 16 * 1024)
                .map_err(|e| io_err("reading the Docker engine's response", &e))?;
            if n == 0 {
                return Err("the Docker engine closed the connection without responding".into());
            }
        }
    }

    fn read_body(&mut self, head: &Head, start: usize) -> Result<Vec<u8>, String> {
        loop {
            if let Some(b) = body_if_complete(head, &self.buf[start..], false)? {
                return Ok(b);
            }
            let n = read_more(&mut self.stream, &mut self.buf, 16 * 1024)
                .map_err(|e| io_err("reading the Docker engine's response", &e))?;
            if n == 0 {
                return body_if_complete(head, &self.buf[start..], true)?
                    .ok_or_else(|| String::from("incomplete response"));
            }
        }
    }

    /// Sends a request (with a JSON body, if any) and reads the whole
    /// response.
    pub fn request(
        self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Response, String> {
        self.request_typed(method, path, body.map(|b| (JSON, b)))
    }

    /// Sends a request whose body is of the given content type, and reads
    /// the whole response.
    pub fn request_typed(
        mut self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
    ) -> Result<Response, String> {
        self.send(&build_request(method, path, body, false))?;
        let (head, start) = self.read_head()?;
        let body = self.read_body(&head, start)?;
        Ok(Response {
            status: head.status,
            body,
        })
    }

    /// Sends a request asking for a connection upgrade (`Upgrade: tcp`).
    ///
    /// On `101` or `200` returns the stream, the bytes already read past the
    /// head (they belong to the stream), and the status; on other statuses
    /// returns the normal response as `Err(Ok(response))`.
    pub fn start_stream(
        mut self,
        path: &str,
        body: &[u8],
    ) -> Result<(UnixStream, Vec<u8>, u16), Result<Response, String>> {
        self.send(&build_request("POST", path, Some((JSON, body)), true))
            .map_err(Err)?;
        let (head, start) = self.read_head().map_err(Err)?;
        if head.status == 101 || head.status == 200 {
            // The stream may be silent for as long as the command runs.
            let _ = self.stream.set_read_timeout(None);
            let rest = self.buf.split_off(start);
            return Ok((self.stream, rest, head.status));
        }
        let body = self.read_body(&head, start).map_err(Err)?;
        Err(Ok(Response {
            status: head.status,
            body,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &[u8]) -> (Head, usize) {
        parse_head(raw).unwrap().unwrap()
    }

    #[test]
    fn parses_heads() {
        let raw = b"HTTP/1.1 201 Created\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nContent-Length: 74\r\n\r\n{\"Id\":";
        let (h, n) = head(raw);
        assert_eq!(h.status, 201);
        assert_eq!(&raw[n..], b"{\"Id\":");
        assert_eq!(h.header("content-length"), Some("74"));
        assert_eq!(h.header("api-version"), Some("1.41"));
        assert_eq!(h.header("nope"), None);

        let raw = b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n\x01\x00\x00\x00";
        let (h, n) = head(raw);
        assert_eq!(h.status, 101);
        assert_eq!(&raw[n..], b"\x01\x00\x00\x00");
        assert_eq!(h.header("upgrade"), Some("tcp"));

        // Bare LF and no reason phrase.
        let (h, n) = head(b"HTTP/1.0 404\nA: b\n\nrest");
        assert_eq!((h.status, n), (404, 19));

        // Incomplete heads, at every split point.
        let full = b"HTTP/1.1 200 OK\r\nX: y\r\n\r\n";
        for i in 0..full.len() {
            assert_eq!(parse_head(&full[..i]).unwrap(), None, "prefix {i}");
        }
        assert!(parse_head(full).unwrap().is_some());

        assert!(parse_head(b"HTTP/2 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 2x0 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n").is_err());
        assert!(parse_head(&vec![b'a'; MAX_HEAD + 1]).is_err());
    }

    #[test]
    fn content_length_bodies() {
        let (h, n) = head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(n, 38);
        assert_eq!(body_if_complete(&h, b"hel", false), Ok(None));
        assert!(body_if_complete(&h, b"hel", true).is_err());
        assert_eq!(
            body_if_complete(&h, b"hello, extra", false),
            Ok(Some(b"hello".to_vec()))
        );
        let (h, _) = head(b"HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(body_if_complete(&h, b"", false), Ok(Some(Vec::new())));
        let (h, _) = head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n");
        assert!(body_if_complete(&h, b"", false).is_err());
        // No framing: until EOF.
        let (h, _) = head(b"HTTP/1.1 500 Oops\r\n\r\n");
        assert_eq!(body_if_complete(&h, b"abc", false), Ok(None));
        assert_eq!(
            body_if_complete(&h, b"abc", true),
            Ok(Some(b"abc".to_vec()))
        );
    }

    #[test]
    fn chunked_bodies() {
        let (h, _) = head(b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n");
        let wire =
            b"18\r\n{\"message\":\"No such exec\r\n3;ext=1\r\n\"}\n\r\n0\r\nTrailer: x\r\n\r\n";
        let want = b"{\"message\":\"No such exec\"}\n".to_vec();
        assert_eq!(body_if_complete(&h, wire, false), Ok(Some(want.clone())));
        // Every prefix is incomplete, never an error, never a wrong body.
        for i in 0..wire.len() {
            assert_eq!(
                body_if_complete(&h, &wire[..i], false),
                Ok(None),
                "prefix {i}"
            );
            assert!(body_if_complete(&h, &wire[..i], true).is_err());
        }
        assert_eq!(decode_chunked(b"0\r\n\r\n"), Ok(Some(Vec::new())));
        assert_eq!(decode_chunked(b"3\nabc\n0\n\n"), Ok(Some(b"abc".to_vec())));
        assert!(decode_chunked(b"zz\r\n").is_err());
        assert!(decode_chunked(b"\r\n").is_err());
        assert!(decode_chunked(b"3\r\nabcX\r\n").is_err());
        assert!(decode_chunked(b"3\r\nabc\rX").is_err());
        assert!(decode_chunked(b"fffffffff\r\n").is_err());
        assert!(decode_chunked(b"ffffff\r\n").is_err(), "over MAX_BODY");
        let (h, _) = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n");
        assert!(h.is_chunked());
    }

    #[test]
    fn builds_requests() {
        let r = build_request("POST", "/exec/ab/start", Some((JSON, b"{}")), true);
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("POST /exec/ab/start HTTP/1.1\r\nHost: docker\r\n"));
        assert!(text.contains("\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"));
        assert!(text.contains("\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n{}"));
        let r = build_request("GET", "/exec/ab/json", None, false);
        let text = String::from_utf8(r).unwrap();
        assert!(!text.contains("Content-Length"));
        assert!(text.ends_with("Connection: close\r\n\r\n"));
    }

    #[test]
    fn path_segments() {
        let mut p = String::new();
        push_path_segment(&mut p, "web.1.abc-def_x~");
        assert_eq!(p, "web.1.abc-def_x~");
        p.clear();
        push_path_segment(&mut p, "a/b?c d%é");
        assert_eq!(p, "a%2Fb%3Fc%20d%25%C3%A9");
    }

    #[test]
    fn read_more_appends() {
        let mut src: &[u8] = b"abcdef";
        let mut buf = b"xy".to_vec();
        assert_eq!(read_more(&mut src, &mut buf, 4).unwrap(), 4);
        assert_eq!(buf, b"xyabcd");
        assert_eq!(read_more(&mut src, &mut buf, 4).unwrap(), 2);
        assert_eq!(read_more(&mut src, &mut buf, 4).unwrap(), 0);
        assert_eq!(buf, b"xyabcdef");
    }
}
