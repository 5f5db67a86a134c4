//! Content types from the bytes, not from what the client claims: magic numbers (`infer`) for
//! binary formats, a UTF-8 check for text, the name's extension only to tell text formats apart
//! (Markdown, CSV, JSON, HTML, SVG …). Whether a type may be shown inline is decided here too.

/// The media type of an upload from its first bytes and its name's extension.
pub fn content_type(head: &[u8], extension: Option<&str>) -> String {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type().to_owned();
    }
    if !looks_like_text(head) {
        return "application/octet-stream".into();
    }
    let start =
        String::from_utf8_lossy(&head[..head.len().min(512)]).trim_start().to_ascii_lowercase();
    let by_ext = match extension {
        Some("md" | "markdown" | "mdown") => Some("text/markdown"),
        Some("csv") => Some("text/csv"),
        Some("tsv") => Some("text/tab-separated-values"),
        Some("json") => Some("application/json"),
        Some("html" | "htm") => Some("text/html"),
        Some("svg") => Some("image/svg+xml"),
        Some("xml") => Some("application/xml"),
        Some("js" | "mjs") => Some("text/javascript"),
        Some("css") => Some("text/css"),
        _ => None,
    };
    if let Some(t) = by_ext {
        return t.into();
    }
    if start.starts_with("<!doctype html") || start.starts_with("<html") {
        "text/html".into()
    } else if start.starts_with("<svg") || (start.starts_with("<?xml") && start.contains("<svg")) {
        "image/svg+xml".into()
    } else if start.starts_with("<?xml") {
        "application/xml".into()
    } else {
        "text/plain".into()
    }
}

/// True when `head` is UTF-8 (a sequence cut at the end is fine) without NUL bytes and with
/// few control characters.
pub fn looks_like_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    };
    if !valid || head.contains(&0) {
        return false;
    }
    let controls =
        head.iter().filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c)).count();
    controls * 100 <= head.len()
}

/// Types whose text goes into the full-text index.
pub fn is_indexable_text(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || matches!(content_type, "application/json" | "application/xml" | "image/svg+xml")
}

/// Types a browser may display inline without running anything: raster images, PDF, plain
/// text. Everything else is served as an attachment.
pub fn safe_inline(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/png"
            | "image/jpeg"
            | "image/gif"
            | "image/webp"
            | "image/avif"
            | "application/pdf"
            | "text/plain"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_from_bytes_first() {
        let png =
            [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, b'I', b'H', b'D', b'R'];
        assert_eq!(content_type(&png, Some("txt")), "image/png", "the extension cannot lie");
        assert_eq!(content_type(b"%PDF-1.7\n...", None), "application/pdf");
        assert_eq!(content_type(b"# Title\n\ntext", Some("md")), "text/markdown");
        assert_eq!(content_type(b"plain words", None), "text/plain");
        assert_eq!(
            content_type(b"  <!DOCTYPE html><html>", Some("txt")),
            "text/html",
            "markup is recognized whatever the name"
        );
        assert_eq!(
            content_type(b"a,b\n1,2\n", Some("csv")),
            "text/csv",
            "the extension picks among plain text types"
        );
        assert_eq!(content_type(b"  <!DOCTYPE html><html>", None), "text/html");
        assert_eq!(
            content_type(b"<svg xmlns='http://www.w3.org/2000/svg'>", None),
            "image/svg+xml"
        );
        assert_eq!(content_type(&[0, 1, 2, 3, 255, 254], Some("md")), "application/octet-stream");
        // A multi-byte character cut at the end of the head is still text.
        let mut cut = "héllo".repeat(10).into_bytes();
        cut.push(0xc3);
        assert!(looks_like_text(&cut));
        assert!(!looks_like_text(b"a\0b"));
    }

    #[test]
    fn only_passive_types_are_inline() {
        assert!(safe_inline("image/png") && safe_inline("text/plain"));
        for t in [
            "text/html",
            "image/svg+xml",
            "application/xml",
            "text/javascript",
            "application/octet-stream",
        ] {
            assert!(!safe_inline(t), "{t}");
        }
    }
}
