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

#[test]
fn concurrent_chunks_after_a_restart_cannot_commit_bytes_that_differ_from_the_digest() {
    let dir = berth_tests::TempDir::new("single-writer");
    let root = dir.join("root");
    let reg = Registry::start_at(&root, &[]);
    let c = client();
    // Each upload holds a large prefix, so that rebuilding its state after the restart
    // takes long enough for two chunks to arrive at once.
    const N: usize = 6;
    let prefix_len = 16 << 20;
    let prefixes: Vec<Vec<u8>> = (0..N).map(|i| noise(500 + i as u64, prefix_len)).collect();
    let chunks: Vec<[Vec<u8>; 2]> = (0..N)
        .map(|i| [noise(600 + i as u64, 4096), noise(700 + i as u64, 4096)])
        .collect();
    // alice holds prefix+A of every upload.
    let whole = |i: usize, k: usize| [prefixes[i].clone(), chunks[i][k].clone()].concat();
    let alice: Vec<String> = (0..N)
        .map(|i| push_blob(&c, &reg, "alice/app", &whole(i, 0)))
        .collect();
    let mut locs = Vec::new();
    for p in &prefixes {
        let loc = hdr(
            c.post(reg.url("/v2/bob/x/blobs/uploads/"))
                .send()
                .expect("POST upload")
                .headers(),
            "location",
        );
        let r = c
            .patch(reg.url(&loc))
            .header("content-range", format!("0-{}", p.len() - 1))
            .body(p.clone())
            .send()
            .expect("PATCH prefix");
        assert_eq!(r.status().as_u16(), 202);
        locs.push(loc);
    }
    reg.crash();
    let reg = Registry::start_at(&root, &[]);
    let barrier = std::sync::Barrier::new(2 * N);
    let statuses: Vec<Vec<u16>> = std::thread::scope(|s| {
        let hs: Vec<Vec<_>> = (0..N)
            .map(|i| {
                (0..2)
                    .map(|k| {
                        let (reg, locs, chunks, barrier) = (&reg, &locs, &chunks, &barrier);
                        s.spawn(move || {
                            let c = client();
                            let chunk = chunks[i][k].clone();
                            barrier.wait();
                            c.patch(reg.url(&locs[i]))
                                .header(
                                    "content-range",
                                    format!("{}-{}", prefix_len, prefix_len + chunk.len() - 1),
                                )
                                .body(chunk)
                                .send()
                                .expect("PATCH chunk")
                                .status()
                                .as_u16()
                        })
                    })
                    .collect()
            })
            .collect();
        hs.into_iter()
            .map(|v| v.into_iter().map(|h| h.join().expect("thread")).collect())
            .collect()
    });
    for (i, st) in statuses.iter().enumerate() {
        // One writer per upload: exactly one chunk is taken, the other is refused.
        let ok = st.iter().filter(|s| **s == 202).count();
        assert_eq!(ok, 1, "upload {i}: chunk statuses {st:?}");
        assert!(st.iter().all(|s| [202, 409, 416].contains(s)), "{st:?}");
        let r = c
            .put(reg.url(&format!("{}?digest={}", locs[i], alice[i])))
            .send()
            .expect("PUT");
        let s = r.status().as_u16();
        assert!(s == 201 || s == 400, "PUT: {s}");
    }
    for (i, d) in alice.iter().enumerate() {
        for repo in ["alice/app", "bob/x"] {
            let r = c
                .get(reg.url(&format!("/v2/{repo}/blobs/{d}")))
                .send()
                .expect("GET");
            if r.status().as_u16() == 200 {
                let got = r.bytes().expect("blob");
                assert_eq!(
                    sha256(&got),
                    *d,
                    "blob {i} in {repo} differs from its digest"
                );
            }
        }
    }
}

#[test]
fn upload_limits_are_per_client_exact_and_idle_sessions_expire() {
    let dir = berth_tests::TempDir::new("limits");
    let pw = htpasswd(dir.path(), &[("alice", "wonderland"), ("bob", "builder")]);
    let pw = pw.to_string_lossy().into_owned();
    let reg = Registry::start(&[
        "--htpasswd",
        &pw,
        "--max-uploads",
        "6",
        "--max-uploads-per-client",
        "3",
        "--upload-idle-timeout",
        "3",
    ]);
    let open = |user: &str, pass: &str| -> (u16, String) {
        let r = client()
            .post(reg.url("/v2/shared/app/blobs/uploads/"))
            .basic_auth(user, Some(pass))
            .send()
            .expect("POST upload");
        (r.status().as_u16(), hdr(r.headers(), "location"))
    };
    // alice opens many sessions at once: exactly her share is granted.
    let got: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..12)
            .map(|_| s.spawn(|| open("alice", "wonderland").0))
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert_eq!(got.iter().filter(|s| **s == 202).count(), 3, "{got:?}");
    assert!(got.iter().all(|s| *s == 202 || *s == 429), "{got:?}");
    // bob is not blocked by alice.
    let bob: Vec<(u16, String)> = (0..3).map(|_| open("bob", "builder")).collect();
    assert!(bob.iter().all(|(s, _)| *s == 202), "{bob:?}");
    // The global limit still holds (6 open).
    assert_eq!(open("bob", "builder").0, 429);
    // Keep one of bob's sessions busy; the idle ones expire within seconds.
    let start = std::time::Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(700));
        let r = client()
            .get(reg.url(&bob[0].1))
            .basic_auth("bob", Some("builder"))
            .send()
            .expect("status");
        assert_eq!(r.status().as_u16(), 204, "the active session expired");
        if open("alice", "wonderland").0 == 202 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "idle sessions did not expire"
        );
    }
    // An expired session is gone.
    let r = client()
        .get(reg.url(&bob[1].1))
        .basic_auth("bob", Some("builder"))
        .send()
        .expect("status");
    assert_eq!(status_code(r), (404, "BLOB_UPLOAD_UNKNOWN".to_string()));
}

#[test]
fn anonymous_uploads_are_limited_per_address() {
    let reg = Registry::start(&["--max-uploads-per-client", "2"]);
    let c = client();
    for _ in 0..2 {
        let r = c
            .post(reg.url("/v2/anon/blobs/uploads/"))
            .send()
            .expect("POST");
        assert_eq!(r.status().as_u16(), 202);
    }
    let r = c
        .post(reg.url("/v2/anon/blobs/uploads/"))
        .send()
        .expect("POST");
    assert_eq!(hdr(r.headers(), "retry-after"), "5");
    assert_eq!(status_code(r), (429, "TOOMANYREQUESTS".to_string()));
}

#[test]
fn anonymous_pull_star_does_not_open_private_namespaces() {
    let dir = berth_tests::TempDir::new("anon-star");
    let pw = htpasswd(dir.path(), &[("alice", "wonderland"), ("carol", "c")]);
    let pw = pw.to_string_lossy().into_owned();
    let reg = Registry::start(&[
        "--htpasswd",
        &pw,
        "--anonymous-pull",
        "*",
        "--anonymous-pull",
        "carol/*",
    ]);
    let c = client();
    let data = b"private".to_vec();
    let d = sha256(&data);
    for (repo, user, pass) in [
        ("alice/app", "alice", "wonderland"),
        ("carol/pub", "carol", "c"),
        ("shared/app", "alice", "wonderland"),
    ] {
        let r = c
            .post(reg.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")))
            .basic_auth(user, Some(pass))
            .body(data.clone())
            .send()
            .expect("push");
        assert_eq!(r.status().as_u16(), 201, "{repo}");
    }
    let get = |repo: &str| {
        c.get(reg.url(&format!("/v2/{repo}/blobs/{d}")))
            .send()
            .expect("GET")
            .status()
            .as_u16()
    };
    assert_eq!(get("shared/app"), 200, "`*` opens shared repositories");
    assert_eq!(
        get("carol/pub"),
        200,
        "a pattern naming the namespace opens it"
    );
    assert_eq!(
        get("alice/app"),
        401,
        "`*` opened alice's private namespace"
    );
}

/// Whether the server closes `s` within `secs` (reading and discarding what it sends).
fn closed_within(s: &mut std::net::TcpStream, secs: u64) -> bool {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_secs(secs))).ok();
    let mut b = [0u8; 512];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn silent_and_trickling_connections_are_closed() {
    use std::io::Write;
    let reg = Registry::start(&[
        "--header-timeout",
        "2",
        "--idle-timeout",
        "2",
        "--max-connections",
        "16",
    ]);
    // Many silent connections (more than the cap) ...
    let mut silent: Vec<std::net::TcpStream> = (0..40)
        .map(|_| std::net::TcpStream::connect(&reg.addr).expect("connect"))
        .collect();
    // ... one that trickles its headers ...
    let mut trickle = std::net::TcpStream::connect(&reg.addr).expect("connect");
    let t0 = std::time::Instant::now();
    let mut closed = false;
    for b in b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        .iter()
    {
        if trickle.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        closed || closed_within(&mut trickle, 4),
        "a trickling header was not cut"
    );
    assert!(t0.elapsed() < Duration::from_secs(9));
    // ... and one that sends half a body then stops.
    let mut stall = std::net::TcpStream::connect(&reg.addr).expect("connect");
    write!(
        stall,
        "PUT /v2/stall/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{\"a\":"
    )
    .expect("send");
    assert!(closed_within(&mut stall, 6), "a stalled body was not cut");
    for s in silent.iter_mut() {
        assert!(closed_within(s, 6), "a silent connection stayed open");
    }
    // A real client gets through.
    let r = client().get(reg.url("/v2/")).send().expect("GET /v2/");
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn the_connection_cap_is_logged() {
    use std::io::{BufRead, Read};
    let dir = berth_tests::TempDir::new("conn-cap");
    let mut child = Command::new(berth_bin())
        .args(["registry", "serve", "--listen", "127.0.0.1:0", "--root"])
        .arg(dir.join("root"))
        .args(["--max-connections", "2"])
        .env("BERTH_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn berth registry serve");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("registry did not start: {line:?}"))
        .to_string();
    let held: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(&addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // The third is closed at once.
    let mut third = std::net::TcpStream::connect(&addr).expect("connect");
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut b = [0u8; 16];
    assert!(
        matches!(third.read(&mut b), Ok(0) | Err(_)),
        "a connection past the cap was served"
    );
    std::thread::sleep(Duration::from_millis(200));
    let _ = child.kill();
    let _ = child.wait();
    drop(held);
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    assert!(
        err.contains("connection limit reached") && err.contains("max_connections"),
        "no log line for the connection cap: {err:?}"
    );
}

/// A chunk whose request is dropped midway (here: its connection goes silent and the
/// idle timeout closes it) must not leave the upload's hash state behind: the next
/// chunk and the commit would otherwise hash only what came after, and bytes that do
/// not match the digest would become that digest's blob (a poisoned base layer).
#[test]
fn a_chunk_cancelled_midway_cannot_make_a_blob_differ_from_its_digest() {
    use std::io::Write;
    let reg = Registry::start(&["--idle-timeout", "1"]);
    let c = client();
    let junk = noise(7, 4096);
    let good = noise(8, 4096);
    let loc = hdr(
        c.post(reg.url("/v2/poison/x/blobs/uploads/"))
            .send()
            .expect("POST upload")
            .headers(),
        "location",
    );
    let r = c
        .patch(reg.url(&loc))
        .header("content-range", format!("0-{}", junk.len() - 1))
        .body(junk.clone())
        .send()
        .expect("PATCH junk");
    assert_eq!(r.status().as_u16(), 202);
    // A PATCH that announces a body, sends a few bytes and goes silent.
    let mut s = std::net::TcpStream::connect(&reg.addr).expect("connect");
    write!(
        s,
        "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n0123456789"
    )
    .expect("send");
    std::thread::sleep(Duration::from_millis(2500));
    drop(s);
    // Resume where the server says the upload is.
    let st = c.get(reg.url(&loc)).send().expect("GET status");
    let range = hdr(st.headers(), "range");
    let end: u64 = range
        .split('-')
        .nth(1)
        .and_then(|e| e.parse().ok())
        .expect("Range end");
    let r = c
        .patch(reg.url(&loc))
        .header(
            "content-range",
            format!("{}-{}", end + 1, end + good.len() as u64),
        )
        .body(good.clone())
        .send()
        .expect("PATCH good");
    let status = r.status().as_u16();
    let d = sha256(&good);
    let sep = if loc.contains('?') { '&' } else { '?' };
    let put = c
        .put(reg.url(&format!("{loc}{sep}digest={d}")))
        .send()
        .expect("PUT");
    if put.status().as_u16() == 201 {
        // Committed: then the blob must be exactly the bytes of its digest.
        let got = c
            .get(reg.url(&format!("/v2/poison/x/blobs/{d}")))
            .send()
            .expect("GET blob")
            .bytes()
            .expect("blob body");
        assert_eq!(
            sha256(&got),
            d,
            "blob {d} holds {} bytes that do not hash to it (PATCH answered {status})",
            got.len()
        );
    } else {
        assert_eq!(put.status().as_u16(), 400, "PUT answered {}", put.status());
    }
}

/// One client address cannot hold every connection slot, and a trickle of bytes (one
/// every few seconds, which resets an idle timer) does not keep a connection open.
#[test]
fn one_client_cannot_hold_every_connection_and_a_trickle_is_cut() {
    use std::io::Write;
    let reg = Registry::start(&["--max-connections-per-client", "4", "--idle-timeout", "4"]);
    let mut held: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(&reg.addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut fifth = std::net::TcpStream::connect(&reg.addr).expect("connect");
    assert!(
        closed_within(&mut fifth, 2),
        "a fifth connection from one address was served"
    );
    drop(held.pop());
    std::thread::sleep(Duration::from_millis(300));
    // A slot came back: a request gets through.
    let r = client().get(reg.url("/v2/")).send().expect("GET /v2/");
    assert_eq!(r.status().as_u16(), 200);
    drop(held);
    // A body that trickles a byte a second never idles out, but is far below the rate.
    let mut t = std::net::TcpStream::connect(&reg.addr).expect("connect");
    write!(
        t,
        "PUT /v2/slow/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    )
    .expect("send headers");
    let t0 = std::time::Instant::now();
    let mut cut = false;
    while t0.elapsed() < Duration::from_secs(20) {
        if t.write_all(b"x").is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        cut || closed_within(&mut t, 2),
        "a trickling body kept its connection for {:?}",
        t0.elapsed()
    );
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "cut only after {:?}",
        t0.elapsed()
    );
}
