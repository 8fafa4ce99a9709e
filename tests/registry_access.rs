//! `berth registry serve`'s access control (htpasswd basic auth, bearer tokens, private
//! namespaces, anonymous pull, read-only) and durability (a crash mid-upload, concurrent
//! pushes of one blob, garbage collection while an upload is in progress).

use berth_tests::api::*;
use berth_tests::oci::{berth_bin, error_code, noise, run_ok, sha256, Registry};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

#[test]
fn concurrent_pushes_of_one_blob() {
    let reg = Registry::start(&[]);
    let data = noise(31, 2 << 20);
    let d = sha256(&data);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let (reg, data, d) = (&reg, &data, &d);
                s.spawn(move || {
                    let c = client();
                    let repo = format!("conc/r{}", i % 2);
                    let loc = hdr(
                        c.post(reg.url(&format!("/v2/{repo}/blobs/uploads/")))
                            .send()
                            .expect("test value")
                            .headers(),
                        "location",
                    );
                    for (n, chunk) in data.chunks(256 * 1024).enumerate() {
                        let off = n * 256 * 1024;
                        let r = c
                            .patch(reg.url(&loc))
                            .header(
                                "content-range",
                                format!("{}-{}", off, off + chunk.len() - 1),
                            )
                            .body(chunk.to_vec())
                            .send()
                            .expect("test value");
                        assert_eq!(r.status().as_u16(), 202);
                    }
                    c.put(reg.url(&format!("{loc}?digest={d}")))
                        .send()
                        .expect("test value")
                        .status()
                        .as_u16()
                })
            })
            .collect();
        for h in hs {
            assert_eq!(h.join().expect("pusher thread"), 201);
        }
    });
    let c = client();
    for r in ["conc/r0", "conc/r1"] {
        let got = c
            .get(reg.url(&format!("/v2/{r}/blobs/{d}")))
            .send()
            .expect("test value")
            .bytes()
            .expect("test value");
        assert_eq!(sha256(&got), d, "blob in {r} is intact");
    }
}

#[test]
fn crash_mid_upload_leaves_no_blob_and_the_upload_resumes() {
    let dir = berth_tests::TempDir::new("crash");
    let root = dir.join("root");
    let data = noise(41, 1 << 20);
    let d = sha256(&data);
    let reg = Registry::start_at(&root, &[]);
    let c = client();
    let loc = hdr(
        c.post(reg.url("/v2/crash/blobs/uploads/"))
            .send()
            .expect("test value")
            .headers(),
        "location",
    );
    let r = c
        .patch(reg.url(&loc))
        .header("content-range", format!("0-{}", 600_000 - 1))
        .body(data[..600_000].to_vec())
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 202);
    reg.crash();
    assert!(
        walk_files(&root.join("blobs")).is_empty(),
        "a partial upload became a blob"
    );
    let reg = Registry::start_at(&root, &[]);
    assert_eq!(
        c.head(reg.url(&format!("/v2/crash/blobs/{d}")))
            .send()
            .expect("test value")
            .status()
            .as_u16(),
        404
    );
    // The client asks where it was and sends the rest.
    let r = c.get(reg.url(&loc)).send().expect("send request");
    assert_eq!(r.status().as_u16(), 204, "upload status after restart");
    assert_eq!(hdr(r.headers(), "range"), "0-599999");
    let r = c
        .put(reg.url(&format!("{loc}?digest={d}")))
        .header("content-range", format!("600000-{}", data.len() - 1))
        .body(data[600_000..].to_vec())
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 201, "{:?}", r.text());
    let got = c
        .get(reg.url(&format!("/v2/crash/blobs/{d}")))
        .send()
        .expect("test value")
        .bytes()
        .expect("test value");
    assert_eq!(sha256(&got), d);
}

fn htpasswd(dir: &std::path::Path, users: &[(&str, &str)]) -> std::path::PathBuf {
    let path = dir.join("htpasswd");
    for (i, (u, p)) in users.iter().enumerate() {
        let mut cmd = Command::new("htpasswd");
        cmd.arg("-bB");
        if i == 0 {
            cmd.arg("-c");
        }
        run_ok(cmd.arg(&path).arg(u).arg(p));
    }
    path
}

#[test]
fn basic_auth_private_namespaces_and_anonymous_pull() {
    let dir = berth_tests::TempDir::new("auth");
    let pw = htpasswd(dir.path(), &[("alice", "wonderland"), ("bob", "builder")]);
    let pw = pw.to_string_lossy().into_owned();
    let reg = Registry::start(&["--htpasswd", &pw, "--anonymous-pull", "public/*"]);
    let c = client();
    // No credentials: 401 with a Basic challenge, on /v2/ and on a push.
    let r = c.get(reg.url("/v2/")).send().expect("send request");
    assert_eq!(r.status().as_u16(), 401);
    assert!(
        hdr(r.headers(), "www-authenticate").starts_with("Basic realm="),
        "{:?}",
        r.headers()
    );
    let r = c.post(reg.url("/v2/alice/app/blobs/uploads/?digest=sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")).send().expect("send request");
    assert_eq!(r.status().as_u16(), 401);
    assert!(!hdr(r.headers(), "www-authenticate").is_empty());
    assert_eq!(
        error_code(&r.text().expect("response text")),
        "UNAUTHORIZED"
    );
    // Wrong password: 401.
    let r = c
        .get(reg.url("/v2/"))
        .basic_auth("alice", Some("nope"))
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 401);
    // alice pushes into her namespace and into public/.
    let data = b"alice's layer".to_vec();
    let d = sha256(&data);
    for repo in ["alice/app", "public/app"] {
        let r = c
            .post(reg.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")))
            .basic_auth("alice", Some("wonderland"))
            .body(data.clone())
            .send()
            .expect("test value");
        assert_eq!(r.status().as_u16(), 201, "alice pushes {repo}");
    }
    // bob may not pull alice's private repository: 403 DENIED.
    let r = c
        .get(reg.url(&format!("/v2/alice/app/blobs/{d}")))
        .basic_auth("bob", Some("builder"))
        .send()
        .expect("test value");
    let (s, code) = status_code(r);
    assert_eq!((s, code.as_str()), (403, "DENIED"));
    // Anonymous: public/* pulls, alice/* does not.
    assert_eq!(
        c.get(reg.url(&format!("/v2/public/app/blobs/{d}")))
            .send()
            .expect("test value")
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        c.get(reg.url(&format!("/v2/alice/app/blobs/{d}")))
            .send()
            .expect("test value")
            .status()
            .as_u16(),
        401
    );
    // The catalog lists only what the caller may pull.
    let cat = |user: &str, pass: &str| -> Value {
        c.get(reg.url("/v2/_catalog"))
            .basic_auth(user, Some(pass))
            .send()
            .expect("send request")
            .json()
            .expect("JSON body")
    };
    assert_eq!(
        cat("alice", "wonderland")["repositories"],
        serde_json::json!(["alice/app", "public/app"])
    );
    assert_eq!(
        cat("bob", "builder")["repositories"],
        serde_json::json!(["public/app"])
    );
    // ...and anonymous push to public/* is still refused.
    assert_eq!(
        c.post(reg.url("/v2/public/app/blobs/uploads/"))
            .send()
            .expect("test value")
            .status()
            .as_u16(),
        401
    );
}

#[test]
fn bearer_tokens_with_scopes() {
    let dir = berth_tests::TempDir::new("token");
    let pw = htpasswd(dir.path(), &[("alice", "wonderland"), ("bob", "builder")]);
    let pw = pw.to_string_lossy().into_owned();
    let reg = Registry::start_at(
        &dir.join("root"),
        &["--htpasswd", &pw, "--token-realm", "/token"],
    );
    let realm = reg.url("/token");
    let c = client();
    let r = c
        .post(reg.url("/v2/alice/app/blobs/uploads/"))
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 401);
    let challenge = hdr(r.headers(), "www-authenticate");
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"{realm}\""))
            && challenge.contains("scope=\"repository:alice/app:pull,push\""),
        "{challenge}"
    );
    let token = |user: &str, pass: &str, scope: &str| -> String {
        let v: Value = c
            .get(reg.url(&format!("/token?service=berth-registry&scope={scope}")))
            .basic_auth(user, Some(pass))
            .send()
            .expect("test value")
            .json()
            .expect("test value");
        v["token"].as_str().expect("token").to_string()
    };
    let t = token("alice", "wonderland", "repository:alice/app:pull,push");
    let data = b"token layer".to_vec();
    let d = sha256(&data);
    let r = c
        .post(reg.url(&format!("/v2/alice/app/blobs/uploads/?digest={d}")))
        .bearer_auth(&t)
        .body(data)
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 201);
    // The token is scoped: it does not open another repository.
    let r = c
        .post(reg.url("/v2/shared/app/blobs/uploads/"))
        .bearer_auth(&t)
        .send()
        .expect("test value");
    assert_eq!(
        r.status().as_u16(),
        401,
        "token without scope for shared/app"
    );
    // bob's token for alice/app grants nothing; using it is refused.
    let tb = token("bob", "builder", "repository:alice/app:pull");
    let r = c
        .get(reg.url(&format!("/v2/alice/app/blobs/{d}")))
        .bearer_auth(&tb)
        .send()
        .expect("test value");
    assert!(
        matches!(r.status().as_u16(), 401 | 403),
        "bob pulled alice/app: {}",
        r.status()
    );
    // A forged token is refused.
    let forged = format!("{}x", &t[..t.len() - 1]);
    assert_eq!(
        c.get(reg.url(&format!("/v2/alice/app/blobs/{d}")))
            .bearer_auth(&forged)
            .send()
            .expect("test value")
            .status()
            .as_u16(),
        401
    );
    // Bad credentials at the token endpoint: 401.
    let r = c
        .get(reg.url("/token?scope=repository:alice/app:pull"))
        .basic_auth("alice", Some("x"))
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 401);
}

#[test]
fn read_only_refuses_writes() {
    let reg = Registry::start(&["--read-only"]);
    expect_error(
        client().post(reg.url("/v2/ro/blobs/uploads/")),
        405,
        "UNSUPPORTED",
    );
}

#[test]
fn gc_keeps_referenced_and_young_blobs_and_uploads_in_progress() {
    let reg = Registry::start(&[]);
    let c = client();
    let live = push_image(&c, &reg, "gc/app", "v1", 51);
    let orphan = push_blob(&c, &reg, "gc/app", &noise(52, 1000));
    let young = push_blob(&c, &reg, "gc/app", &noise(53, 1000));
    // An upload in progress during GC.
    let pending = noise(54, 3000);
    let loc = hdr(
        c.post(reg.url("/v2/gc/app/blobs/uploads/"))
            .send()
            .expect("test value")
            .headers(),
        "location",
    );
    c.patch(reg.url(&loc))
        .header("content-range", "0-1499")
        .body(pending[..1500].to_vec())
        .send()
        .expect("test value");
    // Age the orphan past the grace period.
    let orphan_path = reg
        .root
        .join("blobs/sha256")
        .join(&orphan[7..9])
        .join(&orphan[7..]);
    let old = std::time::SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options()
        .append(true)
        .open(&orphan_path)
        .expect("test value")
        .set_modified(old)
        .expect("test value");
    // A temp file a crash left in the blob store.
    let stale_tmp = orphan_path.with_file_name(".tmp-crashed");
    std::fs::write(&stale_tmp, b"partial").expect("write temp file");
    std::fs::File::options()
        .append(true)
        .open(&stale_tmp)
        .expect("open temp file")
        .set_modified(old)
        .expect("age temp file");
    let out = run_ok(
        Command::new(berth_bin())
            .args(["registry", "gc", "--grace-seconds", "3600", "--root"])
            .arg(&reg.root),
    );
    assert!(out.contains("deleted 1 blobs"), "gc said: {out}");
    assert!(!stale_tmp.exists(), "gc left a stale temp file");
    assert_eq!(
        c.head(reg.url(&format!("/v2/gc/app/blobs/{orphan}")))
            .send()
            .expect("test value")
            .status()
            .as_u16(),
        404,
        "orphan survived"
    );
    assert_eq!(
        c.head(reg.url(&format!("/v2/gc/app/blobs/{young}")))
            .send()
            .expect("test value")
            .status()
            .as_u16(),
        200,
        "young blob collected"
    );
    assert_eq!(
        c.get(reg.url("/v2/gc/app/manifests/v1"))
            .send()
            .expect("test value")
            .status()
            .as_u16(),
        200
    );
    let m: Value = c
        .get(reg.url(&format!("/v2/gc/app/manifests/{live}")))
        .send()
        .expect("test value")
        .json()
        .expect("test value");
    for l in m["layers"].as_array().expect("test value") {
        let d = l["digest"].as_str().expect("test value");
        assert_eq!(
            c.head(reg.url(&format!("/v2/gc/app/blobs/{d}")))
                .send()
                .expect("test value")
                .status()
                .as_u16(),
            200,
            "live layer {d} collected"
        );
    }
    // The upload finishes after GC.
    let r = c
        .put(reg.url(&format!("{loc}?digest={}", sha256(&pending))))
        .header("content-range", "1500-2999")
        .body(pending[1500..].to_vec())
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 201);
}

#[test]
fn serves_https_with_a_pem_certificate() {
    let dir = berth_tests::TempDir::new("tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .args(["-addext", "subjectAltName=IP:127.0.0.1"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    let reg = Registry::start_at(
        &dir.join("root"),
        &[
            "--tls-cert",
            &cert.to_string_lossy(),
            "--tls-key",
            &key.to_string_lossy(),
        ],
    );
    let pem = std::fs::read(&cert).expect("read cert");
    let c = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("parse cert"))
        .build()
        .expect("https client");
    let r = c
        .get(format!("https://{}/v2/", reg.addr))
        .send()
        .expect("GET https /v2/");
    assert_eq!(r.status().as_u16(), 200);
    // Plain HTTP to the TLS port does not get an API answer.
    let plain = client().get(reg.url("/v2/")).send();
    assert!(
        plain.map(|r| r.status().as_u16() != 200).unwrap_or(true),
        "plain HTTP answered on the TLS port"
    );
}

#[test]
fn too_many_open_uploads_is_429() {
    let reg = Registry::start(&["--max-uploads", "2"]);
    let c = client();
    let mut open = Vec::new();
    for _ in 0..2 {
        let r = c
            .post(reg.url("/v2/busy/blobs/uploads/"))
            .send()
            .expect("send request");
        assert_eq!(r.status().as_u16(), 202);
        open.push(hdr(r.headers(), "location"));
    }
    let r = c
        .post(reg.url("/v2/busy/blobs/uploads/"))
        .send()
        .expect("send request");
    assert_eq!(hdr(r.headers(), "retry-after"), "5");
    let (s, code) = status_code(r);
    assert_eq!((s, code.as_str()), (429, "TOOMANYREQUESTS"));
    // Finishing one frees a place.
    assert_eq!(
        c.delete(reg.url(&open[0]))
            .send()
            .expect("send request")
            .status()
            .as_u16(),
        204
    );
    let r = c
        .post(reg.url("/v2/busy/blobs/uploads/"))
        .send()
        .expect("send request");
    assert_eq!(r.status().as_u16(), 202);
}
