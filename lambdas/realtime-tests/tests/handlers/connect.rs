//! `$connect`: token verification and the stored connection item.

use crate::common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use realtime_connect::{handler, ConnectDeps};
use realtime_core::config::{JwtKeySource, JwtSettings};
use realtime_core::{JwtVerifier, ManagementClients};
use serde_json::{json, Value};

/// The rest of `ConnectDeps` as the dev stage has them: no user check, no limit, no
/// replay function.
fn plain(env: &TestEnv) -> ConnectDeps {
    ConnectDeps {
        store: env.store.clone(),
        verifier: JwtVerifier::hs256(SECRET.as_bytes(), None, None).expect("verifier"),
        ttl_seconds: 7200,
        clients: ManagementClients::new(env.sdk.clone(), Some(env.sink.endpoint.clone())),
        max_connections_per_user: None,
        users: None,
        resumer: None,
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(exp_offset: i64) -> Value {
    json!({"sub": "user-1", "tenantId": "tenant-1", "role": "staff", "exp": now() + exp_offset, "iat": now()})
}

fn hs(alg: Algorithm, claims: &Value, secret: &str) -> String {
    encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token encodes")
}

fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn unsigned_token(claims: &Value) -> String {
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    format!("{header}.{}.", b64url(claims.to_string().as_bytes()))
}

fn connect_event(
    connection_id: &str,
    token: Option<&str>,
) -> aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest {
    let mut v = fixture("connect.json");
    v["requestContext"]["connectionId"] = Value::from(connection_id);
    match token {
        Some(t) => {
            v["queryStringParameters"]["token"] = Value::from(t);
            v["multiValueQueryStringParameters"]["token"] = json!([t]);
        }
        None => {
            v.as_object_mut()
                .expect("object")
                .remove("queryStringParameters");
            v.as_object_mut()
                .expect("object")
                .remove("multiValueQueryStringParameters");
        }
    }
    serde_json::from_value(v).expect("connect event")
}

#[tokio::test]
async fn each_token_case_gets_its_own_answer_and_only_valid_ones_are_stored() {
    let env = env().await;
    let deps = ConnectDeps {
        store: env.store.clone(),
        verifier: JwtVerifier::hs256(SECRET.as_bytes(), Some("barkbase"), None).expect("verifier"),
        ttl_seconds: 7200,
        ..plain(&env)
    };
    let mut valid = claims(600);
    valid["iss"] = json!("barkbase");

    let res = handler(
        connect_event("conn-valid=", Some(&hs(Algorithm::HS256, &valid, SECRET))),
        &deps,
    )
    .await;
    assert_eq!(
        (res.status_code, body_text(&res)),
        (200, r#"{"message":"connected"}"#.to_string())
    );
    let stored = env
        .store
        .get("conn-valid=")
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(
        (
            stored.user_id.as_str(),
            stored.tenant_id.as_str(),
            stored.role.as_str()
        ),
        ("user-1", "tenant-1", "staff")
    );
    assert_eq!(stored.source_ip.as_deref(), Some("203.0.113.10"));
    assert_eq!(
        stored.user_agent.as_deref(),
        Some("Mozilla/5.0 (X11; Linux x86_64) BarkBase/2.0")
    );
    assert_eq!(
        (stored.expires_at, stored.token_exp),
        (valid["exp"].as_i64().expect("exp"), valid["exp"].as_i64()),
        "the connection ends with its token (10 min), well before the 2 h TTL"
    );
    assert!(chrono::DateTime::parse_from_rfc3339(&stored.connected_at).is_ok());

    // The header form, for clients that can set headers.
    let mut by_header = connect_event("conn-header", None);
    by_header.headers.insert(
        "authorization",
        format!("Bearer {}", hs(Algorithm::HS256, &valid, SECRET))
            .parse()
            .expect("header value"),
    );
    assert_eq!(handler(by_header, &deps).await.status_code, 200);

    let mut wrong_issuer = valid.clone();
    wrong_issuer["iss"] = json!("someone-else");
    let mut not_yet = valid.clone();
    not_yet["nbf"] = json!(now() + 3600);
    let mut expired = valid.clone();
    expired["exp"] = json!(now() - 3600);
    let missing = r#"{"message":"Unauthorized: missing token"}"#;
    let invalid = r#"{"message":"Unauthorized: invalid token"}"#;
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("missing", None, missing),
        ("empty", Some(String::new()), missing),
        ("malformed", Some("not-a.jwt".into()), invalid),
        (
            "expired",
            Some(hs(Algorithm::HS256, &expired, SECRET)),
            r#"{"message":"Unauthorized: token expired"}"#,
        ),
        (
            "wrong algorithm",
            Some(hs(Algorithm::HS512, &valid, SECRET)),
            invalid,
        ),
        ("alg none", Some(unsigned_token(&valid)), invalid),
        (
            "wrong secret",
            Some(hs(Algorithm::HS256, &valid, "another-secret")),
            invalid,
        ),
        (
            "wrong issuer",
            Some(hs(Algorithm::HS256, &wrong_issuer, SECRET)),
            invalid,
        ),
        (
            "not yet valid",
            Some(hs(Algorithm::HS256, &not_yet, SECRET)),
            invalid,
        ),
    ];
    for (name, token, body) in cases {
        let id = format!("conn-{}", name.replace(' ', "-"));
        let res = handler(connect_event(&id, token.as_deref()), &deps).await;
        assert_eq!(
            (res.status_code, body_text(&res).as_str()),
            (401, body),
            "case `{name}`"
        );
        assert!(
            env.store.get(&id).await.expect("get").is_none(),
            "case `{name}` must not be stored"
        );
    }
}

#[tokio::test]
async fn rs256_accepts_its_key_and_refuses_an_hs256_token_signed_with_the_public_key() {
    let env = env().await;
    let public = std::fs::read_to_string(fixture_path("rs256_public.pem")).expect("public key");
    let private = std::fs::read(fixture_path("rs256_private.pem")).expect("private key");
    let deps = ConnectDeps {
        store: env.store.clone(),
        verifier: JwtVerifier::rs256(&public, None, Some("barkbase-web")).expect("verifier"),
        ttl_seconds: 60,
        ..plain(&env)
    };
    let mut c = claims(600);
    c["aud"] = json!("barkbase-web");
    let rs = encode(
        &Header::new(Algorithm::RS256),
        &c,
        &EncodingKey::from_rsa_pem(&private).expect("private key parses"),
    )
    .expect("token");
    assert_eq!(
        handler(connect_event("rs-ok", Some(&rs)), &deps)
            .await
            .status_code,
        200
    );

    // The classic key-confusion attack: HMAC keyed with the public key's PEM text.
    let confused = hs(Algorithm::HS256, &c, &public);
    assert_eq!(
        handler(connect_event("rs-confused", Some(&confused)), &deps)
            .await
            .status_code,
        401
    );
    let mut wrong_aud = c.clone();
    wrong_aud["aud"] = json!("other-app");
    let rs_wrong_aud = encode(
        &Header::new(Algorithm::RS256),
        &wrong_aud,
        &EncodingKey::from_rsa_pem(&private).expect("private key parses"),
    )
    .expect("token");
    assert_eq!(
        handler(connect_event("rs-aud", Some(&rs_wrong_aud)), &deps)
            .await
            .status_code,
        401
    );
}

#[tokio::test]
async fn secret_is_read_from_secrets_manager_and_a_store_failure_answers_500() {
    let env = env().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&env.sdk);
    let created = secrets
        .create_secret()
        .name("barkbase/test/realtime/jwt")
        .secret_string(json!({"secret": SECRET}).to_string())
        .send()
        .await
        .expect("secret created");
    let settings = JwtSettings {
        key: JwtKeySource::Hs256SecretArn(created.arn().expect("arn").to_string()),
        issuer: None,
        audience: None,
    };
    let verifier = JwtVerifier::from_settings(&settings, &env.sdk)
        .await
        .expect("verifier from secret");
    let token = hs(Algorithm::HS256, &claims(600), SECRET);

    let ok = ConnectDeps {
        store: env.store.clone(),
        verifier,
        ttl_seconds: 7200,
        ..plain(&env)
    };
    assert_eq!(
        handler(connect_event("sm-ok", Some(&token)), &ok)
            .await
            .status_code,
        200
    );

    let broken = ConnectDeps {
        store: realtime_core::ConnectionStore::from_sdk_config(&env.sdk, "no-such-table"),
        verifier: JwtVerifier::hs256(SECRET.as_bytes(), None, None).expect("verifier"),
        ttl_seconds: 7200,
        ..plain(&env)
    };
    let res = handler(connect_event("sm-broken", Some(&token)), &broken).await;
    assert_eq!(
        (res.status_code, body_text(&res)),
        (500, r#"{"message":"internal error"}"#.to_string())
    );
}

#[tokio::test]
async fn a_users_oldest_connection_is_closed_past_the_limit() {
    let env = env().await;
    let deps = ConnectDeps {
        max_connections_per_user: Some(2),
        ..plain(&env)
    };
    let token = hs(Algorithm::HS256, &claims(600), SECRET);
    for id in ["first", "second", "third"] {
        assert_eq!(
            handler(connect_event(id, Some(&token)), &deps)
                .await
                .status_code,
            200
        );
        // connectedAt has one-second precision: keep the order unambiguous.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    assert_eq!(env.sink.closed(), ["first"]);
    assert!(env.store.get("first").await.expect("get").is_none());
    let mut left: Vec<String> = env
        .store
        .by_user("user-1")
        .await
        .expect("query")
        .into_iter()
        .map(|c| c.connection_id)
        .collect();
    left.sort();
    assert_eq!(left, ["second", "third"]);
}

fn refresh_event(
    connection_id: &str,
    token: &str,
) -> aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest {
    let mut v = fixture("message.json");
    v["requestContext"]["connectionId"] = Value::from(connection_id);
    v["requestContext"]["routeKey"] = Value::from("refresh");
    v["body"] = Value::from(json!({"action": "refresh", "token": token}).to_string());
    serde_json::from_value(v).expect("refresh event")
}

#[tokio::test]
async fn refresh_extends_a_connection_with_a_token_of_the_same_user_and_tenant() {
    let env = env().await;
    let deps = plain(&env);
    let short = claims(5);
    handler(
        connect_event("c1", Some(&hs(Algorithm::HS256, &short, SECRET))),
        &deps,
    )
    .await;
    env.store
        .subscribe("c1", "kennels")
        .await
        .expect("subscribed");
    let before = env.store.get("c1").await.expect("get").expect("stored");
    assert_eq!(before.expires_at, short["exp"].as_i64().expect("exp"));

    let longer = claims(3000);
    let res = handler(
        refresh_event("c1", &hs(Algorithm::HS256, &longer, SECRET)),
        &deps,
    )
    .await;
    assert_eq!(res.status_code, 200);
    let answer = env.sink.delivered_to("c1");
    assert_eq!(answer[0]["type"], "refreshed");
    let after = env.store.get("c1").await.expect("get").expect("stored");
    assert_eq!(after.expires_at, longer["exp"].as_i64().expect("exp"));
    assert_eq!(answer[0]["data"]["expiresAt"], after.expires_at);

    // Another user's token, another tenant's, or a bad one: refused, nothing changes.
    let mut other_user = claims(6000);
    other_user["sub"] = json!("user-2");
    let mut other_tenant = claims(6000);
    other_tenant["tenantId"] = json!("tenant-2");
    for (token, code) in [
        (hs(Algorithm::HS256, &other_user, SECRET), "forbidden"),
        (hs(Algorithm::HS256, &other_tenant, SECRET), "forbidden"),
        (
            hs(Algorithm::HS256, &claims(6000), "wrong-secret"),
            "invalid_token",
        ),
        (
            hs(Algorithm::HS256, &claims(-3600), SECRET),
            "token_expired",
        ),
    ] {
        env.sink.clear();
        handler(refresh_event("c1", &token), &deps).await;
        assert_eq!(env.sink.delivered_to("c1")[0]["data"]["code"], code);
        assert_eq!(
            env.store
                .get("c1")
                .await
                .expect("get")
                .expect("stored")
                .expires_at,
            after.expires_at
        );
    }
}

/// `verify_user_active`: `$connect` asks PostgreSQL's `users` table (the migrations'
/// 0004) and refuses unknown and inactive users, and users of another tenant, with
/// 403; a database it cannot reach is a 503, never a connection.
#[tokio::test]
async fn with_the_user_check_only_active_users_of_the_tokens_tenant_connect() {
    use jobs_tests::postgres::PgServer;
    let env = env().await;
    let pg = PgServer::start();
    let db = pg.create_database().await;
    let database = jobs_tests::database_at(&db.url());
    jobs_migration::run(&database, jobs_migration::MIGRATIONS)
        .await
        .expect("migrations apply");
    let c = db.connect().await;
    let tenant = |slug: &'static str| {
        let c = &c;
        async move {
            c.query_one(
                "INSERT INTO tenants (name, slug) VALUES ($1, $1) RETURNING id",
                &[&slug],
            )
            .await
            .expect("tenant")
            .get::<_, i64>(0)
        }
    };
    let (t1, t2) = (tenant("kennel-one").await, tenant("kennel-two").await);
    for (id, t, active) in [("alice", t1, true), ("bob", t1, false), ("carol", t2, true)] {
        c.execute(
            "INSERT INTO users (id, tenant_id, role, active) VALUES ($1, $2, 'staff', $3)",
            &[&id, &t, &active],
        )
        .await
        .expect("user");
    }
    let deps = ConnectDeps {
        users: Some(realtime_connect::UserDirectory { db: database }),
        ..plain(&env)
    };
    let token_of = |user: &str| {
        let mut c = claims(600);
        c["sub"] = json!(user);
        c["tenantId"] = json!(t1.to_string());
        hs(Algorithm::HS256, &c, SECRET)
    };
    let cases = [
        ("alice", 200, r#"{"message":"connected"}"#),
        ("bob", 403, r#"{"message":"Forbidden: user is inactive"}"#),
        ("dave", 403, r#"{"message":"Forbidden: unknown user"}"#),
        // carol exists and is active, but in the other tenant.
        ("carol", 403, r#"{"message":"Forbidden: unknown user"}"#),
    ];
    for (user, status, body) in cases {
        let id = format!("conn-{user}");
        let res = handler(connect_event(&id, Some(&token_of(user))), &deps).await;
        assert_eq!(
            (res.status_code, body_text(&res).as_str()),
            (status, body),
            "{user}"
        );
        let stored = env.store.get(&id).await.expect("get");
        assert_eq!(stored.is_some(), status == 200, "{user}: stored {stored:?}");
    }

    // A user deactivated while connected cannot connect again.
    c.execute("UPDATE users SET active = false WHERE id = 'alice'", &[])
        .await
        .expect("deactivate");
    let res = handler(
        connect_event("conn-alice-2", Some(&token_of("alice"))),
        &deps,
    )
    .await;
    assert_eq!(res.status_code, 403);

    // The database gone: 503, nothing stored.
    drop(c);
    drop(db);
    drop(pg);
    let res = handler(connect_event("conn-down", Some(&token_of("carol"))), &deps).await;
    assert_eq!(
        (res.status_code, body_text(&res).as_str()),
        (503, r#"{"message":"user check unavailable"}"#)
    );
    assert!(env.store.get("conn-down").await.expect("get").is_none());
}
