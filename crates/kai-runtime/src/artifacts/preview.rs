//! Previews of artifacts: Markdown rendered to HTML and sanitized (pulldown-cmark, then ammonia:
//! no scripts, no event handlers, no `javascript:` URLs, no styles, no remote loads survive),
//! text as bounded plain text, raster images as themselves, and the first page of a PDF as a PNG
//! (feature `pdf-preview`, pure-Rust `hayro`). The server adds `Content-Security-Policy: sandbox`
//! to every preview as a second fence.

/// Bytes of an artifact read to build a text or Markdown preview.
pub const TEXT_PREVIEW_BYTES: usize = 256 * 1024;
/// Largest image served as its own preview.
pub const IMAGE_PREVIEW_BYTES: u64 = 32 * 1024 * 1024;
/// Largest PDF whose first page is rendered.
pub const PDF_PREVIEW_BYTES: u64 = 64 * 1024 * 1024;

/// What kind of preview a content type gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewKind {
    Markdown,
    Text,
    Image,
    Pdf,
}

impl PreviewKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Markdown => "markdown",
            Self::Text => "text",
            Self::Image => "image",
            Self::Pdf => "pdf",
        }
    }

    /// The preview kind for `content_type`, or `None` when there is none.
    pub fn of(content_type: &str) -> Option<Self> {
        match content_type {
            "text/markdown" => Some(Self::Markdown),
            "image/png" | "image/jpeg" | "image/gif" | "image/webp" => Some(Self::Image),
            "application/pdf" if cfg!(feature = "pdf-preview") => Some(Self::Pdf),
            t if super::sniff::is_indexable_text(t) => Some(Self::Text),
            _ => None,
        }
    }
}

/// Markdown → sanitized HTML (a full document, UTF-8).
pub fn markdown_html(markdown: &str) -> String {
    use pulldown_cmark::{Options, Parser};
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    options.insert(Options::ENABLE_TASKLISTS);
    options.insert(Options::ENABLE_FOOTNOTES);
    let mut raw = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut raw, Parser::new_ext(markdown, options));
    let clean = ammonia::Builder::default()
        .url_schemes(["http", "https", "mailto"].into_iter().collect())
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(&raw)
        .to_string();
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>preview</title></head><body>\n{clean}</body></html>\n"
    )
}

/// The first `max` bytes as text (invalid UTF-8 replaced), cut at a character boundary.
pub fn text_of(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    s.replace('\0', "\u{FFFD}")
}

/// Renders the first page of a PDF to PNG at a width of about 800 pixels.
#[cfg(feature = "pdf-preview")]
pub fn pdf_first_page_png(pdf: Vec<u8>) -> Result<Vec<u8>, String> {
    let data: hayro::hayro_syntax::PdfData = std::sync::Arc::new(pdf).into();
    let pdf =
        hayro::hayro_syntax::Pdf::new(data).map_err(|e| format!("not a readable PDF: {e:?}"))?;
    let page = pdf.pages().first().ok_or("the PDF has no pages")?;
    let (width, height) = page.render_dimensions();
    if !(width > 0.0 && height > 0.0) {
        return Err("the first page has no size".into());
    }
    let scale = (800.0 / width).clamp(0.05, 4.0);
    if height * scale > 4000.0 {
        return Err("the first page is too tall to preview".into());
    }
    let pixmap = hayro::render(
        page,
        &hayro::RenderCache::new(),
        &hayro::hayro_interpret::InterpreterSettings::default(),
        &hayro::RenderSettings::default(),
        &hayro::PixmapSettings {
            x_scale: scale,
            y_scale: scale,
            bg_color: hayro::vello_cpu::color::palette::css::WHITE,
        },
    );
    pixmap.into_png().map_err(|e| format!("cannot encode the preview: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_rendered_and_sanitized() {
        let md = "# Title\n\n**bold** [ok](https://example.com) [bad](javascript:alert(1))\n\n<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n<a href=\"#\" onclick=\"steal()\">x</a>\n\n<iframe src=\"https://evil\"></iframe><style>body{}</style>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";
        let html = markdown_html(md);
        assert!(html.contains("<h1>Title</h1>") && html.contains("<strong>bold</strong>"));
        assert!(html.contains("<table>"), "tables: {html}");
        assert!(html.contains("href=\"https://example.com\""));
        let lower = html.to_lowercase();
        for banned in ["<script", "onerror", "onclick", "javascript:", "<iframe", "<style"] {
            assert!(!lower.contains(banned), "{banned} survived: {html}");
        }
    }

    #[test]
    fn kinds() {
        assert_eq!(PreviewKind::of("text/markdown"), Some(PreviewKind::Markdown));
        assert_eq!(
            PreviewKind::of("text/html"),
            Some(PreviewKind::Text),
            "HTML is shown as its source"
        );
        assert_eq!(PreviewKind::of("image/svg+xml"), Some(PreviewKind::Text), "SVG too");
        assert_eq!(PreviewKind::of("image/png"), Some(PreviewKind::Image));
        assert_eq!(PreviewKind::of("application/zip"), None);
        assert_eq!(text_of(b"a\0b\xff"), "a\u{FFFD}b\u{FFFD}");
    }
}
