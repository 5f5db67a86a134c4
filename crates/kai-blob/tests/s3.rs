//! The S3 backend against the in-repo fake S3 server (real HTTP on loopback, SigV4 verified on
//! every request): put, dedup, ranged get, head, delete, paged listing, and refusals for bad
//! signatures, tampered requests and payloads that do not match their hash.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use kai_blob::fake_s3::FakeS3;
use kai_blob::s3::{S3BlobStore, S3Settings, StaticSecret, sigv4};
use kai_blob::{BlobError, BlobStore, ByteRange, Staging};
use secrecy::SecretString;

const KEY: &str = "AKIDKAITEST";
const SECRET: &str = "kai-test-secret-key";

fn store(fake: &FakeS3, secret: &str, prefix: &str) -> S3BlobStore {
    let settings = S3Settings {
        endpoint: fake.endpoint(),
        bucket: "kai-bucket".into(),
        region: "eu-west-1".into(),
        prefix: prefix.into(),
        access_key_id: KEY.into(),
        path_style: true,
        timeout: Duration::from_secs(30),
    };
    S3BlobStore::new(settings, Arc::new(StaticSecret(SecretString::from(secret.to_owned()))))
        .unwrap()
}

async fn collect(store: &S3BlobStore, d: &kai_blob::Digest, r: Option<ByteRange>) -> Vec<u8> {
    let mut s = store.get(d, r).await.unwrap();
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

#[tokio::test]
async fn objects_round_trip_through_the_s3_wire_format() {
    let fake = FakeS3::start("kai-bucket", KEY, SECRET, "eu-west-1").await.unwrap();
    let s3 = store(&fake, SECRET, "kai/");
    let tmp = tempfile::tempdir().unwrap();
    let staging = Staging::new(tmp.path()).unwrap();
    let data: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let staged = staging.stage_bytes(&data).await.unwrap();
    let d = staged.digest;
    assert!(s3.put(staged).await.unwrap());
    assert_eq!(fake.object(&format!("kai/{d}")).unwrap().as_ref(), &data[..]);
    // A second put of the same bytes only asks whether the object exists.
    let before = fake.requests().len();
    assert!(!s3.put(staging.stage_bytes(&data).await.unwrap()).await.unwrap());
    assert_eq!(fake.requests()[before..], ["HEAD HeadObject".to_owned()]);

    assert_eq!(s3.size(&d).await.unwrap(), Some(data.len() as u64));
    assert_eq!(collect(&s3, &d, None).await, data);
    let r = ByteRange { start: 100, end: 199_999 };
    assert_eq!(collect(&s3, &d, Some(r)).await, data[100..200_000]);
    let beyond = ByteRange { start: 600_000, end: 600_010 };
    assert!(matches!(s3.get(&d, Some(beyond)).await, Err(BlobError::InvalidRange)));

    let mut digests = vec![d];
    for i in 0..4u8 {
        let staged = staging.stage_bytes(&[i; 10]).await.unwrap();
        digests.push(staged.digest);
        s3.put(staged).await.unwrap();
    }
    digests.sort();
    // Pages of two: continuation tokens carry the listing on.
    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = s3.list(after, 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|b| b.digest);
        listed.extend(page.into_iter().map(|b| b.digest));
    }
    assert_eq!(listed, digests);
    assert_eq!(s3.list(None, 100).await.unwrap().len(), 5);
    // Another prefix sees nothing of this one.
    assert!(store(&fake, SECRET, "other/").list(None, 10).await.unwrap().is_empty());

    s3.delete(&d).await.unwrap();
    s3.delete(&d).await.unwrap();
    assert_eq!(s3.size(&d).await.unwrap(), None);
    assert!(matches!(s3.get(&d, None).await, Err(BlobError::NotFound)));
    assert_eq!(fake.rejected(), 0);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "staged files consumed");
}

#[tokio::test]
async fn bad_signatures_and_tampering_are_refused() {
    let fake = FakeS3::start("kai-bucket", KEY, SECRET, "eu-west-1").await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let staging = Staging::new(tmp.path()).unwrap();
    let wrong = store(&fake, "not-the-secret", "");
    match wrong.put(staging.stage_bytes(b"x").await.unwrap()).await {
        // The HEAD that checks for the object already fails (HEAD answers carry no body).
        Err(BlobError::Remote { status: 403, .. }) => {}
        other => panic!("expected 403, got {other:?}"),
    }
    assert!(fake.keys().is_empty());

    // A correctly signed request replayed against another key, and one whose body does not
    // match its signed hash.
    let http = reqwest::Client::new();
    let amz_date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let host = fake.endpoint().trim_start_matches("http://").to_owned();
    let body = b"signed body".to_vec();
    let hash = sigv4::sha256_hex(&body);
    let headers = vec![
        ("host".to_owned(), host.clone()),
        ("x-amz-content-sha256".to_owned(), hash.clone()),
        ("x-amz-date".to_owned(), amz_date.clone()),
    ];
    let input = sigv4::CanonicalInput {
        method: "PUT",
        path: "/kai-bucket/a",
        query: &[],
        headers: &headers,
        payload_hash: &hash,
    };
    let scope =
        sigv4::Scope { access_key: KEY, amz_date: &amz_date, region: "eu-west-1", service: "s3" };
    let auth = sigv4::authorization(&input, &scope, SECRET);
    let send = |path: &str, body: Vec<u8>| {
        http.put(format!("{}{path}", fake.endpoint()))
            .header("authorization", &auth)
            .header("x-amz-date", &amz_date)
            .header("x-amz-content-sha256", &hash)
            .body(body)
            .send()
    };
    let moved = send("/kai-bucket/b", body.clone()).await.unwrap();
    assert_eq!(moved.status(), 403);
    assert!(moved.text().await.unwrap().contains("<Code>SignatureDoesNotMatch</Code>"));
    let swapped = send("/kai-bucket/a", b"other body".to_vec()).await.unwrap();
    assert_eq!(swapped.status(), 400);
    assert!(swapped.text().await.unwrap().contains("XAmzContentSHA256Mismatch"));
    let unsigned = http.get(format!("{}/kai-bucket/a", fake.endpoint())).send().await.unwrap();
    assert_eq!(unsigned.status(), 403);
    assert!(fake.keys().is_empty());
    let ok = send("/kai-bucket/a", body.clone()).await.unwrap();
    assert_eq!(ok.status(), 200, "the untampered request is accepted");
    assert_eq!(fake.object("a").unwrap().as_ref(), &body[..]);
    assert!(fake.rejected() >= 4);
}

#[tokio::test]
async fn server_errors_surface_with_their_s3_code() {
    let fake = FakeS3::start("kai-bucket", KEY, SECRET, "eu-west-1").await.unwrap();
    let s3 = store(&fake, SECRET, "");
    fake.fail_next(1);
    match s3.size(&kai_blob::Digest([1; 32])).await {
        Err(e @ BlobError::Remote { status: 500, .. }) => {
            assert_eq!(e.code(), "object_store_error")
        }
        other => panic!("expected a remote error, got {other:?}"),
    }
    assert_eq!(s3.size(&kai_blob::Digest([1; 32])).await.unwrap(), None);
    drop(fake);
    let gone = s3.size(&kai_blob::Digest([1; 32])).await;
    assert!(matches!(gone, Err(BlobError::Unreachable(_))), "{gone:?}");
}
