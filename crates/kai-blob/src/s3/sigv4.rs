//! AWS Signature Version 4 for S3 (header authorization), written to the published algorithm:
//! canonical request → string to sign → HMAC-SHA256 chain over date, region, service. The same
//! canonicalization serves the client (signing) and the fake server (verifying); the unit tests
//! pin it to the worked examples in Amazon's S3 documentation, so both sides agree with AWS and
//! not merely with each other.

use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

/// SHA-256 of the empty string (a body-less request's payload hash).
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// The payload hash of a request whose body is not signed.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Percent-encodes per SigV4: unreserved characters (`A-Z a-z 0-9 - _ . ~`) stay, everything
/// else is `%XX` upper-case; `/` stays only when `keep_slash`.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Decodes `%XX` escapes (and nothing else: `+` stays `+`, as S3 wants for paths).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request as SigV4 sees it. `path` and `query` are *decoded*; they are encoded here.
#[derive(Debug, Clone)]
pub struct CanonicalInput<'a> {
    pub method: &'a str,
    /// Decoded object path, e.g. `/bucket/key with space`.
    pub path: &'a str,
    /// Decoded query pairs in any order.
    pub query: &'a [(String, String)],
    /// Signed headers: lower-case names with their values, in any order.
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the body, or [`UNSIGNED_PAYLOAD`].
    pub payload_hash: &'a str,
}

/// Who signs, where and when.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    pub access_key: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

impl Scope<'_> {
    fn date(&self) -> &str {
        self.amz_date.get(..8).unwrap_or("")
    }

    fn credential_scope(&self) -> String {
        format!("{}/{}/{}/aws4_request", self.date(), self.region, self.service)
    }
}

fn collapse_spaces(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The canonical request, and the `SignedHeaders` list it used.
pub fn canonical_request(input: &CanonicalInput<'_>) -> (String, String) {
    let mut query: Vec<(String, String)> =
        input.query.iter().map(|(k, v)| (uri_encode(k, false), uri_encode(v, false))).collect();
    query.sort();
    let query = query.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let mut headers: Vec<(String, String)> =
        input.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), collapse_spaces(v))).collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed = headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
    let path = if input.path.is_empty() { "/".to_owned() } else { uri_encode(input.path, true) };
    let request = format!(
        "{}\n{path}\n{query}\n{canonical_headers}\n{signed}\n{}",
        input.method, input.payload_hash
    );
    (request, signed)
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The hex signature of `input` under `secret_key` and `scope`.
pub fn signature(input: &CanonicalInput<'_>, scope: &Scope<'_>, secret_key: &str) -> String {
    let (request, _) = canonical_request(input);
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{}\n{}",
        scope.amz_date,
        scope.credential_scope(),
        hex::encode(Sha256::digest(request.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{secret_key}").as_bytes(), scope.date());
    let k_region = hmac(&k_date, scope.region);
    let k_service = hmac(&k_region, scope.service);
    let k_signing = hmac(&k_service, "aws4_request");
    hex::encode(hmac(&k_signing, &string_to_sign))
}

/// The `Authorization` header value for `input`.
pub fn authorization(input: &CanonicalInput<'_>, scope: &Scope<'_>, secret_key: &str) -> String {
    let (_, signed) = canonical_request(input);
    format!(
        "{ALGORITHM} Credential={}/{},SignedHeaders={signed},Signature={}",
        scope.access_key,
        scope.credential_scope(),
        signature(input, scope, secret_key)
    )
}

/// The parts of a received `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuthorization {
    pub access_key: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
pub fn parse_authorization(value: &str) -> Option<ParsedAuthorization> {
    let rest = value.strip_prefix(ALGORITHM)?.trim_start();
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return None,
        }
    }
    let mut cred = credential?.split('/');
    let parsed = ParsedAuthorization {
        access_key: cred.next()?.to_owned(),
        date: cred.next()?.to_owned(),
        region: cred.next()?.to_owned(),
        service: cred.next()?.to_owned(),
        signed_headers: signed?.split(';').map(str::to_owned).collect(),
        signature: signature?.to_owned(),
    };
    (cred.next()? == "aws4_request" && cred.next().is_none()).then_some(parsed)
}

/// Constant-time comparison of two hex signatures.
pub fn signatures_match(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example credentials of Amazon's "Signature Calculations for the Authorization Header:
    // Transferring Payload in a Single Chunk (AWS Signature Version 4)" (Amazon S3 API
    // reference), whose worked examples give the signatures asserted below.
    const KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20130524T000000Z";

    fn scope() -> Scope<'static> {
        Scope { access_key: KEY, amz_date: DATE, region: "us-east-1", service: "s3" }
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn aws_example_get_object_with_range() {
        let headers = h(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", DATE),
        ]);
        let input = CanonicalInput {
            method: "GET",
            path: "/test.txt",
            query: &[],
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        let (request, signed) = canonical_request(&input);
        assert_eq!(signed, "host;range;x-amz-content-sha256;x-amz-date");
        assert!(request.starts_with("GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\n"));
        assert_eq!(
            signature(&input, &scope(), SECRET),
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        let auth = authorization(&input, &scope(), SECRET);
        let parsed = parse_authorization(&auth).unwrap();
        assert_eq!(parsed.access_key, KEY);
        assert_eq!((parsed.date.as_str(), parsed.region.as_str()), ("20130524", "us-east-1"));
        assert_eq!(parsed.signed_headers.len(), 4);
    }

    #[test]
    fn aws_example_put_object_encodes_the_path() {
        let payload = b"Welcome to Amazon S3.";
        let hash = sha256_hex(payload);
        assert_eq!(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
        let headers = h(&[
            ("date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", &hash),
            ("x-amz-date", DATE),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ]);
        let input = CanonicalInput {
            method: "PUT",
            path: "/test$file.text",
            query: &[],
            headers: &headers,
            payload_hash: &hash,
        };
        assert!(canonical_request(&input).0.starts_with("PUT\n/test%24file.text\n"));
        assert_eq!(
            signature(&input, &scope(), SECRET),
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
    }

    #[test]
    fn aws_example_list_objects_sorts_the_query() {
        let headers = h(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", DATE),
        ]);
        let query = h(&[("prefix", "J"), ("max-keys", "2")]);
        let input = CanonicalInput {
            method: "GET",
            path: "/",
            query: &query,
            headers: &headers,
            payload_hash: EMPTY_SHA256,
        };
        assert!(canonical_request(&input).0.starts_with("GET\n/\nmax-keys=2&prefix=J\n"));
        assert_eq!(
            signature(&input, &scope(), SECRET),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
    }

    #[test]
    fn encoding_round_trips() {
        assert_eq!(uri_encode("a b/c~d+e", true), "a%20b/c~d%2Be");
        assert_eq!(uri_encode("a/b", false), "a%2Fb");
        assert_eq!(percent_decode("a%20b%2Fc%zz%4"), "a b/c%zz%4");
        assert!(signatures_match("abc", "abc") && !signatures_match("abc", "abd"));
        assert!(
            parse_authorization(
                "AWS4-HMAC-SHA256 Credential=a/b/c/s3/wrong,SignedHeaders=host,Signature=x"
            )
            .is_none()
        );
    }
}
