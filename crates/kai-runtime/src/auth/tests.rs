use base64::Engine as _;
use jsonwebtoken::{EncodingKey, Header};

use super::*;

const ISS: &str = "did:key:z6Mktest";

async fn fixture() -> (tempfile::TempDir, Arc<dyn Store>, Auth, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = kai_store::open(&format!("sqlite://{}", dir.path().join("kai.db").display()), 4)
        .await
        .unwrap();
    let users = crate::users::Users::new(store.clone());
    let user = users
        .create("alice", &secrecy::SecretString::from("a long password".to_owned()), Role::Member)
        .await
        .unwrap();
    let auth = Auth::new(store.clone());
    auth.install_key(&[7; 32], ISS).unwrap();
    (dir, store, auth, user.id)
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

fn claims(user: &str, sid: &str) -> Claims {
    let now = chrono::Utc::now().timestamp();
    Claims {
        iss: ISS.into(),
        aud: AUDIENCE.into(),
        sub: user.into(),
        sid: sid.into(),
        role: Role::Owner,
        iat: now,
        exp: now + 600,
        jti: "j".into(),
    }
}

#[tokio::test]
async fn valid_token_verifies() {
    let (_d, _s, auth, user) = fixture().await;
    let pair = auth.start_session(&user, Role::Member).await.unwrap();
    let c = auth.verify_access(&pair.access_token).await.unwrap();
    assert_eq!(c.sub, user);
    assert_eq!(c.role, Role::Member);
    assert!(c.exp - c.iat <= 15 * 60);
}

#[tokio::test]
async fn forged_and_broken_tokens_are_all_unauthorized() {
    let (_d, _s, auth, user) = fixture().await;
    let pair = auth.start_session(&user, Role::Member).await.unwrap();
    let sid = pair.session_id.clone();
    let keys = auth.keys().unwrap();
    let parts: Vec<&str> = pair.access_token.split('.').collect();
    let mut cases: Vec<(&str, String)> = Vec::new();

    // alg=none with our claims and no signature.
    let none_header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    cases.push(("alg none", format!("{none_header}.{}.", parts[1])));
    // HS256 signed with our public key as the HMAC secret (key confusion).
    let public = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(&user, &sid),
        &EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    cases.push(("HS/EdDSA confusion", hs));
    // Expired beyond the leeway.
    let mut expired = claims(&user, &sid);
    expired.exp = chrono::Utc::now().timestamp() - 120;
    cases.push((
        "expired",
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &expired, &keys.encoding).unwrap(),
    ));
    // Wrong audience, wrong issuer.
    let mut aud = claims(&user, &sid);
    aud.aud = "someone-else".into();
    cases.push((
        "wrong audience",
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &aud, &keys.encoding).unwrap(),
    ));
    let mut iss = claims(&user, &sid);
    iss.iss = "did:key:other".into();
    cases.push((
        "wrong issuer",
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &iss, &keys.encoding).unwrap(),
    ));
    // Tampered payload (role raised), signature kept.
    let mut payload: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]).unwrap(),
    )
    .unwrap();
    payload["role"] = "owner".into();
    cases.push((
        "tampered",
        format!("{}.{}.{}", parts[0], b64(payload.to_string().as_bytes()), parts[2]),
    ));
    // Signature stripped or truncated.
    cases.push(("no signature", format!("{}.{}.", parts[0], parts[1])));
    cases.push(("truncated signature", format!("{}.{}.{}", parts[0], parts[1], &parts[2][..20])));
    // Signed by another key.
    let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let other_key = EncodingKey::from_ed_der(other.to_pkcs8_der().unwrap().as_bytes());
    cases.push((
        "other key",
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims(&user, &sid), &other_key)
            .unwrap(),
    ));
    // jku header pointing elsewhere.
    let mut jku = Header::new(Algorithm::EdDSA);
    jku.jku = Some("http://127.0.0.1:9/keys".into());
    cases.push((
        "jku header",
        jsonwebtoken::encode(&jku, &claims(&user, &sid), &keys.encoding).unwrap(),
    ));
    // Oversized.
    cases.push(("oversized", "a".repeat(MAX_TOKEN_LEN + 1)));
    // Garbage.
    cases.push(("garbage", "not.a.jwt".into()));

    for (what, token) in cases {
        let err = auth.verify_access(&token).await.unwrap_err();
        assert!(matches!(err, AuthError::Unauthorized), "{what}: {err:?}");
    }

    // Revoked: logout ends the session.
    auth.logout(&sid).await.unwrap();
    assert!(
        matches!(auth.verify_access(&pair.access_token).await, Err(AuthError::Unauthorized)),
        "revoked"
    );
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_session() {
    let (_d, _s, auth, user) = fixture().await;
    let first = auth.start_session(&user, Role::Member).await.unwrap();
    let second = auth.refresh(&first.refresh_token, async |_| Some(Role::Member)).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    auth.verify_access(&second.access_token).await.unwrap();
    // The first refresh token again: reuse.
    let err = auth.refresh(&first.refresh_token, async |_| Some(Role::Member)).await.unwrap_err();
    assert!(matches!(err, AuthError::RefreshReuse));
    // Everything of that session is dead now.
    assert!(auth.verify_access(&second.access_token).await.is_err());
    assert!(auth.verify_access(&first.access_token).await.is_err());
    assert!(auth.refresh(&second.refresh_token, async |_| Some(Role::Member)).await.is_err());
    assert!(auth.refresh("kair_unknown", async |_| Some(Role::Member)).await.is_err());
}

#[tokio::test]
async fn sealed_node_issues_nothing() {
    let (_d, _s, auth, user) = fixture().await;
    auth.remove_key();
    assert!(matches!(auth.start_session(&user, Role::Member).await, Err(AuthError::NoKey)));
}
