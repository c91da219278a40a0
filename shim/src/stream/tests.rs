//! Unit tests of the event stream.
use super::*;

#[test]
fn where_the_backlog_starts() {
    let mut q = Map::new();
    assert_eq!(start_after(&q, None), None);
    q.insert("last_thread_seq".into(), json!("3"));
    assert_eq!(start_after(&q, None).as_deref(), Some("3"));
    q.insert("after_seq".into(), json!("5"));
    assert_eq!(start_after(&q, None).as_deref(), Some("5"));
    assert_eq!(start_after(&q, Some("9")).as_deref(), Some("9"));
    assert_eq!(start_after(&q, Some("garbage")).as_deref(), Some("5"));
    q.insert("after_seq".into(), json!("-1"));
    assert_eq!(start_after(&q, None).as_deref(), Some("-1"));
}

#[test]
fn streams_share_by_user_or_by_token() {
    use ama_core::token::TokenKind;
    let jwt = |sub: &str| {
        Credential::Jwt(crate::jwt::Verified {
            claims: Arc::new(json!({ "sub": sub })),
            exp: i64::MAX,
        })
    };
    let t = "0F0E0D0C-0000-4000-8000-000000000001";
    // two JWTs of one user share, whatever the thread id's case
    assert_eq!(
        group_key(t, &jwt("a"), Some("u1"), "r1"),
        group_key(&t.to_lowercase(), &jwt("b"), Some("u1"), "r2")
    );
    assert_ne!(
        group_key(t, &jwt("a"), Some("u1"), "r1"),
        group_key(t, &jwt("a"), Some("u2"), "r1")
    );
    // two tokens of one agent do not; the same token does
    let tok = |raw: &str| Credential::Token(TokenKind::Agent, raw.to_string());
    let k1 = group_key(t, &tok("ama_eat_one"), Some("agent1"), "r1");
    assert_eq!(k1, group_key(t, &tok("ama_eat_one"), Some("agent1"), "r2"));
    assert_ne!(k1, group_key(t, &tok("ama_eat_two"), Some("agent1"), "r1"));
    assert!(
        !k1.principal.contains("ama_eat_one"),
        "no raw token in the key"
    );
    // no principal: a group of its own
    assert_ne!(
        group_key(t, &Credential::None, None, "r1"),
        group_key(t, &Credential::None, None, "r2")
    );
}

#[tokio::test]
async fn emit_dedupes() {
    let (tx, mut rx) = mpsc::channel(16);
    let mut last = Some(1);
    let body = Page::parse(
        r#"{"events": [{"thread_seq": 1}, {"thread_seq": 2}, {"thread_seq": 3}], "has_more": false}"#,
    );
    let (alive, more) = emit(&tx, &body, &mut last).await;
    assert!(alive && !more);
    assert_eq!(last, Some(3));
    let (alive, _) = emit(&tx, &body, &mut last).await;
    assert!(alive);
    drop(tx);
    let mut n = 0;
    while let Some(b) = rx.recv().await {
        assert!(b.starts_with(b"id: "));
        n += 1;
    }
    assert_eq!(n, 2);
}
