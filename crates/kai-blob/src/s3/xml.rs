//! The two S3 XML bodies the client reads: `<Error>` and ListObjectsV2's `<ListBucketResult>`.

use quick_xml::Reader;
use quick_xml::events::Event;

/// One page of ListObjectsV2.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ListPage {
    /// (key, size) of each object.
    pub objects: Vec<(String, u64)>,
    pub truncated: bool,
    pub next: Option<String>,
}

/// Calls `on_end(path, text)` as each element closes, `path` being the element names from the
/// root joined with `/` and `text` its unescaped text content.
fn walk(body: &str, mut on_end: impl FnMut(&str, &str)) -> Result<(), String> {
    let mut reader = Reader::from_str(body);
    let mut path: Vec<String> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    loop {
        match reader.read_event().map_err(|e| format!("bad XML from the object store: {e}"))? {
            Event::Start(e) => {
                path.push(String::from_utf8_lossy(e.name().as_ref()).into_owned());
                texts.push(String::new());
            }
            Event::Empty(e) => {
                path.push(String::from_utf8_lossy(e.name().as_ref()).into_owned());
                on_end(&path.join("/"), "");
                path.pop();
            }
            Event::End(_) => {
                let text = texts.pop().unwrap_or_default();
                on_end(&path.join("/"), &text);
                path.pop();
            }
            Event::Text(t) => {
                let raw = t.decode().map_err(|e| e.to_string())?;
                let text = quick_xml::escape::unescape(&raw).map_err(|e| e.to_string())?;
                if let Some(last) = texts.last_mut() {
                    last.push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                let name = String::from_utf8_lossy(r.as_ref()).into_owned();
                let text = quick_xml::escape::unescape(&format!("&{name};"))
                    .map_err(|e| e.to_string())?
                    .into_owned();
                if let Some(last) = texts.last_mut() {
                    last.push_str(&text);
                }
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

/// The `(Code, Message)` of an error body (`Unknown` when it has none).
pub(crate) fn error(body: &str) -> (String, String) {
    let (mut code, mut message) = (String::new(), String::new());
    let _ = walk(body, |path, text| match path {
        "Error/Code" => code = text.to_owned(),
        "Error/Message" => message = text.to_owned(),
        _ => {}
    });
    if code.is_empty() {
        code = "Unknown".into();
    }
    (code, message)
}

/// Parses a `ListBucketResult`.
pub(crate) fn list_page(body: &str) -> Result<ListPage, String> {
    let mut page = ListPage::default();
    let mut key = String::new();
    let mut size: Option<u64> = None;
    walk(body, |path, text| match path {
        "ListBucketResult/Contents/Key" => key = text.to_owned(),
        "ListBucketResult/Contents/Size" => size = text.trim().parse().ok(),
        "ListBucketResult/Contents" => {
            if let Some(s) = size.take() {
                page.objects.push((std::mem::take(&mut key), s));
            }
        }
        "ListBucketResult/IsTruncated" => page.truncated = text.trim() == "true",
        "ListBucketResult/NextContinuationToken" => {
            page.next = (!text.is_empty()).then(|| text.to_owned());
        }
        _ => {}
    })?;
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_errors_and_pages() {
        let e = r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchKey</Code><Message>The key &amp; more</Message></Error>"#;
        assert_eq!(error(e), ("NoSuchKey".into(), "The key & more".into()));
        assert_eq!(error("not xml").0, "Unknown");
        let page = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p/</Prefix>
<KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>
<Contents><Key>p/a&amp;b</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified><Size>10</Size></Contents>
<Contents><Key>p/c</Key><Size>0</Size></Contents>
<NextContinuationToken>tok=</NextContinuationToken></ListBucketResult>"#;
        let p = list_page(page).unwrap();
        assert_eq!(p.objects, vec![("p/a&b".into(), 10), ("p/c".into(), 0)]);
        assert!(p.truncated);
        assert_eq!(p.next.as_deref(), Some("tok="));
    }
}
