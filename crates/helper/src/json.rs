//! The little JSON the helper needs: writing strings, and reading a few
//! top-level members (`Id`, `message`, `ExitCode`) out of engine responses.
//!
//! Hand-written to keep the static binary small (no serde).

/// Appends `s` to `out` as a JSON string literal, quotes included.
///
/// Escapes `"` and `\`, and every control character (U+0000–U+001F) as
/// `\u00XX`; everything else (valid UTF-8, as `s` is a `str`) is copied.
pub fn push_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut plain_from = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[plain_from..i]);
        plain_from = i + 1;
        if esc.is_empty() {
            out.push_str("\\u00");
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        } else {
            out.push_str(esc);
        }
    }
    out.push_str(&s[plain_from..]);
    out.push('"');
}

/// Appends `["a","b",...]` to `out`.
pub fn push_string_array(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_string(out, s);
    }
    out.push(']');
}

fn skip_ws(json: &[u8], mut pos: usize) -> usize {
    while pos < json.len() && matches!(json[pos], b' ' | b'\t' | b'\r' | b'\n') {
        pos += 1;
    }
    pos
}

/// `pos` is at an opening `"`; returns the position after the closing one.
fn skip_string(json: &[u8], mut pos: usize) -> Option<usize> {
    pos += 1;
    while pos < json.len() {
        match json[pos] {
            b'\\' => pos += 2,
            b'"' => return Some(pos + 1),
            _ => pos += 1,
        }
    }
    None
}

/// `pos` is at the first byte of a value; returns the position after it.
fn skip_value(json: &[u8], pos: usize) -> Option<usize> {
    match *json.get(pos)? {
        b'"' => skip_string(json, pos),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut p = pos;
            while p < json.len() {
                match json[p] {
                    b'"' => {
                        p = skip_string(json, p)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(p + 1);
                        }
                    }
                    _ => {}
                }
                p += 1;
            }
            None
        }
        _ => {
            let mut p = pos;
            while p < json.len()
                && !matches!(json[p], b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n')
            {
                p += 1;
            }
            (p > pos).then_some(p)
        }
    }
}

/// The raw text of member `key` of the top-level object in `json`, if any.
pub fn member<'a>(json: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let mut pos = skip_ws(json, 0);
    if json.get(pos) != Some(&b'{') {
        return None;
    }
    pos = skip_ws(json, pos + 1);
    if json.get(pos) == Some(&b'}') {
        return None;
    }
    loop {
        if json.get(pos) != Some(&b'"') {
            return None;
        }
        let key_end = skip_string(json, pos)?;
        let k = string(&json[pos..key_end])?;
        pos = skip_ws(json, key_end);
        if json.get(pos) != Some(&b':') {
            return None;
        }
        let start = skip_ws(json, pos + 1);
        let end = skip_value(json, start)?;
        if k == key {
            return Some(&json[start..end]);
        }
        pos = skip_ws(json, end);
        match json.get(pos) {
            Some(b',') => pos = skip_ws(json, pos + 1),
            _ => return None,
        }
    }
}

fn hex4(s: &[u8]) -> Option<u32> {
    if s.len() < 4 {
        return None;
    }
    let mut v = 0u32;
    for &b in &s[..4] {
        v = v * 16 + char::from(b).to_digit(16)?;
    }
    Some(v)
}

/// Decodes a raw JSON string literal (quotes included).
pub fn string(raw: &[u8]) -> Option<String> {
    let inner = raw.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    let mut out: Vec<u8> = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let b = inner[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let e = *inner.get(i + 1)?;
        i += 2;
        let c = match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(&inner[i..])?;
                i += 4;
                let cp = if (0xd800..0xdc00).contains(&hi)
                    && inner.get(i) == Some(&b'\\')
                    && inner.get(i + 1) == Some(&b'u')
                {
                    match hex4(&inner[i + 2..]) {
                        Some(lo) if (0xdc00..0xe000).contains(&lo) => {
                            i += 6;
                            0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                        }
                        _ => 0xfffd,
                    }
                } else {
                    hi
                };
                char::from_u32(cp).unwrap_or('\u{fffd}')
            }
            _ => return None,
        };
        let mut tmp = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
    }
    Some(match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Decodes a raw JSON integer; `None` for `null`, fractions or garbage.
pub fn int(raw: &[u8]) -> Option<i64> {
    std::str::from_utf8(raw).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        let mut o = String::new();
        push_string(&mut o, s);
        o
    }

    #[test]
    fn escapes() {
        assert_eq!(esc(""), r#""""#);
        assert_eq!(esc("plain"), r#""plain""#);
        assert_eq!(esc(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(esc("l1\nl2\t\r"), r#""l1\u000al2\u0009\u000d""#);
        assert_eq!(esc("\u{0}\u{1f}\u{7f}"), "\"\\u0000\\u001f\u{7f}\"");
        assert_eq!(esc("été ✓ 🦀"), "\"été ✓ 🦀\"");
        assert_eq!(esc("\u{2028}"), "\"\u{2028}\"");
        let mut o = String::new();
        push_string_array(&mut o, &["sh".into(), "-c".into(), "echo \"$X\"".into()]);
        assert_eq!(o, r#"["sh","-c","echo \"$X\""]"#);
        o.clear();
        push_string_array(&mut o, &[]);
        assert_eq!(o, "[]");
    }

    #[test]
    fn escape_round_trips_through_decoder() {
        let all: String = (0u32..0x250)
            .filter_map(char::from_u32)
            .chain(['🦀', '\u{ffff}'])
            .collect();
        assert_eq!(string(esc(&all).as_bytes()).as_deref(), Some(&all[..]));
    }

    #[test]
    fn members() {
        let j = br#" { "Id" : "abc123", "Nested": {"ExitCode": 7, "s": "}\"{"}, "Arr": [1, {"a": [2]}],
            "ExitCode": 42, "Running": false, "Null": null, "Neg": -3, "message": "No such container: x\u00e9\"" } "#;
        assert_eq!(member(j, "Id").and_then(string).as_deref(), Some("abc123"));
        assert_eq!(member(j, "ExitCode").and_then(int), Some(42));
        assert_eq!(member(j, "Running"), Some(&b"false"[..]));
        assert_eq!(member(j, "Null"), Some(&b"null"[..]));
        assert_eq!(member(j, "Null").and_then(int), None);
        assert_eq!(member(j, "Neg").and_then(int), Some(-3));
        assert_eq!(
            member(j, "message").and_then(string).as_deref(),
            Some("No such container: xé\"")
        );
        assert_eq!(member(j, "Missing"), None);
        assert_eq!(member(j, "a"), None, "nested keys are not top-level");
        assert_eq!(member(b"{}", "Id"), None);
        assert_eq!(member(b"", "Id"), None);
        assert_eq!(member(b"[1]", "Id"), None);
        assert_eq!(member(b"{\"Id\":", "Id"), None);
        assert_eq!(member(b"{\"Id\" \"x\"}", "Id"), None);
        assert_eq!(member(b"{\"Id\":\"unterminated", "Id"), None);
        assert_eq!(member(b"{\"a\":{\"b\":1}", "Id"), None);
        assert_eq!(member(b"{\"a\":1 \"Id\":2}", "Id"), None);
        // Escaped key.
        assert_eq!(
            member(br#"{"\u0049d":"x"}"#, "Id")
                .and_then(string)
                .as_deref(),
            Some("x")
        );
    }

    #[test]
    fn strings() {
        assert_eq!(string(br#""\ud83e\udd80""#).as_deref(), Some("🦀"));
        assert_eq!(string(br#""\ud83e""#).as_deref(), Some("\u{fffd}"));
        assert_eq!(string(br#""\udd80x""#).as_deref(), Some("\u{fffd}x"));
        assert_eq!(string(br#""\ud83e\u0041""#).as_deref(), Some("\u{fffd}A"));
        assert_eq!(string(br#""\/\b\f""#).as_deref(), Some("/\u{8}\u{c}"));
        assert_eq!(string(br#""\x""#), None);
        assert_eq!(string(br#""\u12""#), None);
        assert_eq!(string(br#""\"#), None);
        assert_eq!(string(b"x"), None);
        assert_eq!(string(b"\"\xff\"").as_deref(), Some("\u{fffd}"));
    }

    #[test]
    fn ints() {
        assert_eq!(int(b"0"), Some(0));
        assert_eq!(int(b"-1"), Some(-1));
        assert_eq!(int(b"1.5"), None);
        assert_eq!(int(b"null"), None);
        assert_eq!(int(b""), None);
    }
}
