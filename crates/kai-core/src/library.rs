//! Names of the prompt library and the artifact store, parsed once at the edge: artifact names
//! (metadata only, never a filesystem path, but refused when they look like one that escapes),
//! content digests, tags, prompt names and `name@version` references.
//!
//! Pure parsing; no I/O.

use std::fmt;

/// Longest artifact name, in bytes (the common filesystem name limit).
pub const MAX_ARTIFACT_NAME_BYTES: usize = 255;
/// Most tags on one prompt, artifact or note.
pub const MAX_TAGS: usize = 32;
/// Longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 32;

/// Why a name, tag, digest or reference was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub String);

fn bad(msg: impl Into<String>) -> NameError {
    NameError(msg.into())
}

/// Characters that some system treats as a path separator or that render like one.
fn separator_like(c: char) -> bool {
    matches!(
        c,
        '\\' | '\u{2215}' // division slash
            | '\u{2044}' // fraction slash
            | '\u{29F5}' // reverse solidus operator
            | '\u{29F8}' // big solidus
            | '\u{FE68}' // small reverse solidus
            | '\u{FF0F}' // fullwidth solidus
            | '\u{FF3C}' // fullwidth reverse solidus
    )
}

/// Control and invisible formatting characters: C0, DEL, C1, bidi overrides and isolates,
/// zero-width characters and the byte order mark.
fn control_like(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// The name of an artifact: 1 to 255 bytes of UTF-8, `/`-separated segments (logical folders,
/// never a filesystem path), with no empty, `.` or `..` segment, no leading `/`, no drive
/// letter, no backslash or look-alike separator, no control or bidi character, and no
/// percent-encoded dot, slash or backslash.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArtifactName(String);

impl ArtifactName {
    /// Parses `name`, saying what is wrong and what is allowed when it is refused.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        const ALLOWED: &str = "use a plain file name such as report.pdf or docs/notes.md";
        if name.is_empty() {
            return Err(bad(format!("the artifact name is empty; {ALLOWED}")));
        }
        if name.len() > MAX_ARTIFACT_NAME_BYTES {
            return Err(bad(format!(
                "the artifact name is {} bytes; at most {MAX_ARTIFACT_NAME_BYTES} are allowed",
                name.len()
            )));
        }
        if let Some(c) = name.chars().find(|&c| control_like(c)) {
            return Err(bad(format!(
                "the artifact name contains the control character U+{:04X}; {ALLOWED}",
                c as u32
            )));
        }
        if let Some(c) = name.chars().find(|&c| separator_like(c)) {
            return Err(bad(format!(
                "the artifact name contains {c:?}, which acts or looks like a path separator; separate folders with /"
            )));
        }
        if name.starts_with('/') || name.starts_with('~') {
            return Err(bad(format!("absolute paths are not artifact names; {ALLOWED}")));
        }
        let bytes = name.as_bytes();
        if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
            return Err(bad(format!("drive letters are not artifact names; {ALLOWED}")));
        }
        let lower = name.to_ascii_lowercase();
        if ["%2e", "%2f", "%5c", "%00", "%25"].iter().any(|e| lower.contains(e)) {
            return Err(bad(format!(
                "the artifact name contains a percent-encoded dot, slash, NUL or percent sign; {ALLOWED}"
            )));
        }
        for segment in name.split('/') {
            match segment.trim() {
                "" => {
                    return Err(bad(format!("the artifact name has an empty segment; {ALLOWED}")));
                }
                "." | ".." => {
                    return Err(bad(format!(
                        "the artifact name has a {segment:?} segment; names cannot leave their folder"
                    )));
                }
                _ if segment.trim_end_matches(['.', ' ']).is_empty() => {
                    return Err(bad(format!("the segment {segment:?} is only dots; {ALLOWED}")));
                }
                _ => {}
            }
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment (what a download is saved as).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The extension of the last segment, lowercased (`"md"` for `notes/a.MD`).
    pub fn extension(&self) -> Option<String> {
        let file = self.file_name();
        file.rsplit_once('.').filter(|(stem, _)| !stem.is_empty()).map(|(_, e)| e.to_lowercase())
    }
}

impl fmt::Display for ArtifactName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A content digest: BLAKE3-256 of the bytes, shown as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Parses 64 hex digits (an optional `blake3:` prefix is accepted).
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let hex = s.strip_prefix("blake3:").unwrap_or(s);
        if hex.len() != 64 {
            return Err(bad("a digest is 64 hex digits"));
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            let digit = |b: u8| (b as char).to_digit(16);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(h), Some(l)) => out[i] = (h * 16 + l) as u8,
                _ => return Err(bad("a digest is 64 hex digits")),
            }
        }
        Ok(Self(out))
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        use fmt::Write as _;
        let mut s = String::with_capacity(64);
        for b in self.0 {
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Parses a tag list: at most [`MAX_TAGS`] tags of 1 to [`MAX_TAG_CHARS`] characters from
/// `a-z`, `0-9`, `-`, `_`, `.`, `:` (upper case is folded); duplicates are dropped, order kept.
pub fn parse_tags<S: AsRef<str>>(tags: &[S]) -> Result<Vec<String>, NameError> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.as_ref().trim().to_lowercase();
        let ok = (1..=MAX_TAG_CHARS).contains(&tag.chars().count())
            && tag.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.' | ':')
            });
        if !ok {
            return Err(bad(format!(
                "tag {tag:?} is not allowed; tags are 1 to {MAX_TAG_CHARS} characters of a-z, 0-9, -, _, ., :"
            )));
        }
        if !out.contains(&tag) {
            out.push(tag);
        }
    }
    if out.len() > MAX_TAGS {
        return Err(bad(format!("at most {MAX_TAGS} tags are allowed")));
    }
    Ok(out)
}

/// Route words a prompt may not be named, so `/prompts/{name}` never shadows a route.
const RESERVED_PROMPT_NAMES: &[&str] = &["search", "test", "latest"];

/// The name of a prompt: 1 to 64 characters of `a-z`, `0-9`, `-`, `_`, `.`, starting with a
/// letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PromptName(String);

impl PromptName {
    pub fn parse(name: &str) -> Result<Self, NameError> {
        let ok = (1..=64).contains(&name.len())
            && name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
            });
        if !ok {
            return Err(bad(format!(
                "prompt name {name:?} is not allowed; use 1 to 64 characters of a-z, 0-9, -, _, . starting with a letter or digit"
            )));
        }
        if RESERVED_PROMPT_NAMES.contains(&name) {
            return Err(bad(format!("{name:?} is reserved; choose another prompt name")));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PromptName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reference to a prompt as agents and personas write it: `name` or `name@latest` (the
/// newest version) or `name@3` (version 3, immutable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptRef {
    pub name: PromptName,
    /// `None`: the latest version.
    pub version: Option<u32>,
}

impl PromptRef {
    pub fn parse(reference: &str) -> Result<Self, NameError> {
        let (name, version) = match reference.split_once('@') {
            None => (reference, None),
            Some((name, "latest")) => (name, None),
            Some((name, v)) => {
                let n: u32 = v.parse().ok().filter(|&n| n >= 1).ok_or_else(|| {
                    bad(format!(
                        "{reference:?}: the version after @ is a number from 1, or `latest`"
                    ))
                })?;
                (name, Some(n))
            }
        };
        Ok(Self { name: PromptName::parse(name)?, version })
    }
}

impl fmt::Display for PromptRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}@{v}", self.name),
            None => write!(f, "{}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names an attacker or a confused model might send (reliability-security T3).
    const REFUSED: &[&str] = &[
        "",
        "..",
        ".",
        "../etc/passwd",
        "a/../../b",
        "a/..",
        "./a",
        "a/./b",
        "/etc/passwd",
        "/",
        "//server/share",
        "~/secrets",
        "..\\windows",
        "a\\b",
        "C:\\Windows\\system32",
        "c:evil",
        "%2e%2e%2fetc",
        "%2E%2E/x",
        "..%2fetc",
        "%252e%252e%252f",
        "a%5cb",
        "nul\0byte",
        "line\nbreak",
        "tab\there",
        "bell\u{7}",
        "del\u{7f}",
        "c1\u{85}",
        "bidi\u{202E}txt.exe",
        "zero\u{200B}width",
        "div\u{2215}ision",
        "full\u{FF0F}width",
        "a//b",
        "trailing/",
        "...",
        "a/ .. /b",
        "bom\u{FEFF}",
    ];

    #[test]
    fn traversal_and_control_names_are_refused() {
        assert!(REFUSED.len() >= 30);
        for name in REFUSED {
            assert!(ArtifactName::parse(name).is_err(), "{name:?} was accepted");
        }
        let long = "a".repeat(MAX_ARTIFACT_NAME_BYTES + 1);
        assert!(ArtifactName::parse(&long).is_err());
        assert!(ArtifactName::parse(&"é".repeat(128)).is_err(), "256 bytes");
    }

    #[test]
    fn ordinary_names_are_accepted() {
        for name in [
            "report.pdf",
            "docs/notes.md",
            "a..b.txt",
            ".hidden",
            "Résumé 2024 (final).docx",
            "日本語.txt",
            "x",
            "a/b/c/d.tar.gz",
        ] {
            let n = ArtifactName::parse(name).unwrap_or_else(|e| panic!("{name:?}: {e}"));
            assert_eq!(n.as_str(), name);
        }
        let n = ArtifactName::parse("docs/Notes.MD").unwrap();
        assert_eq!((n.file_name(), n.extension().as_deref()), ("Notes.MD", Some("md")));
        assert_eq!(ArtifactName::parse(".bashrc").unwrap().extension(), None);
    }

    #[test]
    fn digests_round_trip() {
        let d = Digest([0xab; 32]);
        assert_eq!(Digest::parse(&d.to_hex()).unwrap(), d);
        assert_eq!(Digest::parse(&format!("blake3:{d}")).unwrap(), d);
        assert!(Digest::parse("abc").is_err());
        assert!(Digest::parse(&"g".repeat(64)).is_err());
    }

    #[test]
    fn tags_are_folded_deduplicated_and_bounded() {
        assert_eq!(parse_tags(&["Draft", "draft", "q3:plan"]).unwrap(), vec!["draft", "q3:plan"]);
        assert!(parse_tags(&["has space"]).is_err());
        assert!(parse_tags(&[""]).is_err());
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert!(parse_tags(&many).is_err());
    }

    #[test]
    fn prompt_references() {
        let r = PromptRef::parse("summarize@3").unwrap();
        assert_eq!((r.name.as_str(), r.version), ("summarize", Some(3)));
        assert_eq!(PromptRef::parse("summarize").unwrap().version, None);
        assert_eq!(PromptRef::parse("summarize@latest").unwrap().version, None);
        assert_eq!(r.to_string(), "summarize@3");
        for bad in ["", "x@0", "x@-1", "x@", "X", "a b", "@3", "search", "x@1@2", "a/b"] {
            assert!(PromptRef::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest::proptest! {
        /// Whatever is accepted has no `..` segment, no leading slash and no control byte.
        #[test]
        fn accepted_names_never_escape(name in "\\PC{0,40}") {
            if let Ok(n) = ArtifactName::parse(&name) {
                let s = n.as_str();
                proptest::prop_assert!(!s.starts_with('/'));
                proptest::prop_assert!(s.split('/').all(|seg| seg.trim() != ".." && !seg.is_empty()));
                proptest::prop_assert!(!s.chars().any(char::is_control));
            }
        }

        #[test]
        fn prompt_refs_round_trip(name in "[a-z0-9][a-z0-9._-]{0,20}", v in 1u32..100_000) {
            if let Ok(r) = PromptRef::parse(&format!("{name}@{v}")) {
                proptest::prop_assert_eq!(PromptRef::parse(&r.to_string()).unwrap(), r);
            }
        }
    }
}
