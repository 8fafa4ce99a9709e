//! The Docker API over TLS (issue 15; crates/dockerapi/src/tls.rs): `berth serve
//! --docker-listen 127.0.0.1:PORT --tls-cert --tls-key [--tls-ca]` inside the test's
//! network namespace, driven by Debian's docker CLI with `DOCKER_TLS_VERIFY=1` and a
//! certificate directory made here with the openssl CLI (a CA, a server certificate for
//! 127.0.0.1, a client certificate, and a client certificate of another CA).

use berth_tests::docker::{Docker, DOCKER};
use berth_tests::images::BERTH_TIMEOUT;
use berth_tests::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const PORT: &str = "2376";

#[track_caller]
fn openssl(dir: &Path, args: &[&str]) {
    let mut c = Command::new("openssl");
    c.current_dir(dir).args(args);
    let out = capture(c, Capture::Pipes, BERTH_TIMEOUT);
    assert!(
        out.success(),
        "openssl {args:?} failed (apt-get install openssl):\n{out}"
    );
}

/// A CA (`NAME-ca.pem`, `NAME-ca.key`) in `dir`.
fn ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}-ca.key"),
            "-out",
            &format!("{name}-ca.pem"),
        ],
    );
}

/// A certificate `OUT.pem` + `OUT.key` signed by CA `ca`, with the extensions `ext`.
fn leaf(dir: &Path, ca: &str, out: &str, cn: &str, ext: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &format!("{out}.key"),
            "-out",
            &format!("{out}.csr"),
        ],
    );
    std::fs::write(dir.join(format!("{out}.ext")), ext).expect("write the extensions");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{out}.csr"),
            "-CA",
            &format!("{ca}-ca.pem"),
            "-CAkey",
            &format!("{ca}-ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{out}.ext"),
            "-out",
            &format!("{out}.pem"),
        ],
    );
}

/// The certificates of the test, in `dir`: `ours-ca.pem`, `server.{pem,key}`,
/// `client.{pem,key}` (signed by ours), `rogue.{pem,key}` (signed by another CA).
fn certificates(dir: &Path) {
    ca(dir, "ours");
    ca(dir, "other");
    leaf(
        dir,
        "ours",
        "server",
        "127.0.0.1",
        "basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    let client = "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n";
    leaf(dir, "ours", "client", "client", client);
    leaf(dir, "other", "rogue", "rogue", client);
}

/// A `DOCKER_CERT_PATH` directory: `ca.pem` and, when given, `cert.pem` + `key.pem`.
fn cert_path(dir: &Path, name: &str, client: Option<&str>) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(&p).expect("mkdir cert path");
    std::fs::copy(dir.join("ours-ca.pem"), p.join("ca.pem")).expect("copy ca.pem");
    if let Some(c) = client {
        std::fs::copy(dir.join(format!("{c}.pem")), p.join("cert.pem")).expect("copy cert");
        std::fs::copy(dir.join(format!("{c}.key")), p.join("key.pem")).expect("copy key");
    }
    p
}

/// `docker ARGS…` inside the test's network namespace, on the TCP listener, with `env`.
fn docker_tcp(d: &Docker, env: &[(&str, &Path)], verify: bool, args: &[&str]) -> Output {
    let ns = d.e.s.netns.as_ref().expect("the test's network namespace");
    let mut cmd = ns.command(&[DOCKER]);
    cmd.args(args)
        .env("DOCKER_HOST", format!("tcp://127.0.0.1:{PORT}"))
        .env("DOCKER_CONFIG", d.e.s.dir.join("docker-config"))
        .env("DOCKER_BUILDKIT", "0")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
    if verify {
        cmd.env("DOCKER_TLS_VERIFY", "1");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    capture(cmd, Capture::Pipes, BERTH_TIMEOUT)
}

fn serve_tls(name: &str, dir: &Path, with_ca: bool) -> Docker {
    let listen = format!("127.0.0.1:{PORT}");
    let (cert, key, ca) = (
        dir.join("server.pem"),
        dir.join("server.key"),
        dir.join("ours-ca.pem"),
    );
    let (cert, key, ca) = (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
        ca.to_string_lossy().into_owned(),
    );
    let mut args = vec![
        "--docker-listen",
        &listen,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ];
    if with_ca {
        args.extend_from_slice(&["--tls-ca", &ca]);
    }
    // The unix socket answers once both listeners are bound (bound one after the other).
    Docker::with(name, &args)
}

#[test]
fn docker_cli_over_tls_with_client_certificates() {
    let tmp = TempDir::new("dockerapi-tls");
    certificates(tmp.path());
    let d = serve_tls("tls", tmp.path(), true);
    let good = cert_path(tmp.path(), "good", Some("client"));

    let out = docker_tcp(
        &d,
        &[("DOCKER_CERT_PATH", &good)],
        true,
        &["version", "--format", "{{.Server.APIVersion}}"],
    );
    assert!(
        out.success() && out.stdout.trim() == "1.41",
        "docker version over TLS:\n{out}\nserve log:\n{}",
        d.serve_log()
    );
    // The hijack (attach) runs over the TLS stream.
    let out = docker_tcp(
        &d,
        &[("DOCKER_CERT_PATH", &good)],
        true,
        &["run", "--rm", "busybox", "echo", "hi"],
    );
    assert!(
        out.success() && out.stdout == "hi\n",
        "docker run over TLS:\n{out}\nserve log:\n{}",
        d.serve_log()
    );
    // Input through the hijacked TLS stream too.
    let out = {
        let ns = d.e.s.netns.as_ref().expect("netns");
        let mut cmd = ns.command(&["sh", "-c"]);
        cmd.arg(format!(
            "echo from-stdin | {DOCKER} run --rm -i busybox sh -c 'read l; echo got $l'"
        ))
        .env("DOCKER_HOST", format!("tcp://127.0.0.1:{PORT}"))
        .env("DOCKER_CONFIG", d.e.s.dir.join("docker-config"))
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &good);
        capture(cmd, Capture::Pipes, BERTH_TIMEOUT)
    };
    assert!(
        out.success() && out.stdout == "got from-stdin\n",
        "docker run -i over TLS:\n{out}\nserve log:\n{}",
        d.serve_log()
    );

    // No client certificate: refused.
    let nocert = cert_path(tmp.path(), "nocert", None);
    let out = docker_tcp(&d, &[("DOCKER_CERT_PATH", &nocert)], true, &["version"]);
    assert!(
        !out.success() && !out.stdout.contains("berth"),
        "a client without a certificate was served:\n{out}"
    );
    // A certificate of another CA: refused.
    let rogue = cert_path(tmp.path(), "rogue", Some("rogue"));
    let out = docker_tcp(&d, &[("DOCKER_CERT_PATH", &rogue)], true, &["ps"]);
    assert!(
        !out.success() && !out.stdout.contains("CONTAINER ID"),
        "a client certificate of another CA was accepted:\n{out}"
    );
    // Plain HTTP on the TLS port: no API answer.
    let out = docker_tcp(&d, &[], false, &["version", "--format", "{{.Server.Os}}"]);
    assert!(
        !out.success() && !out.stdout.contains("linux"),
        "plain HTTP was served on the TLS port:\n{out}"
    );
    let log = d.serve_log();
    assert!(
        log.contains("handshake refused"),
        "the refused handshakes are not logged:\n{log}"
    );
}

#[test]
fn tls_without_a_ca_serves_any_tls_client_and_bad_files_are_named() {
    let tmp = TempDir::new("dockerapi-tls-noca");
    certificates(tmp.path());
    let d = serve_tls("tls-noca", tmp.path(), false);
    // The server is verified by the client; no client certificate is asked for.
    let nocert = cert_path(tmp.path(), "nocert", None);
    let out = docker_tcp(
        &d,
        &[("DOCKER_CERT_PATH", &nocert)],
        true,
        &["version", "--format", "{{.Server.APIVersion}}"],
    );
    assert!(
        out.success() && out.stdout.trim() == "1.41",
        "docker version over TLS without a client certificate:\n{out}\nserve log:\n{}",
        d.serve_log()
    );

    // A key file that is no key: one error naming it.
    let junk = tmp.path().join("junk.key");
    std::fs::write(&junk, "not a key\n").expect("write junk");
    let (cert, junk_s) = (
        tmp.path().join("server.pem").to_string_lossy().into_owned(),
        junk.to_string_lossy().into_owned(),
    );
    let out = d.e.berth(&[
        "serve",
        "--docker-listen",
        "127.0.0.1:2377",
        "--tls-cert",
        &cert,
        "--tls-key",
        &junk_s,
    ]);
    assert!(
        !out.success() && out.stderr.contains("--tls-key") && out.stderr.contains(&junk_s),
        "a bad key file is not named:\n{out}"
    );
    // Without TLS, a non-loopback address is still refused.
    let out = d.e.berth(&["serve", "--docker-listen", "0.0.0.0:2378"]);
    assert!(
        !out.success() && out.stderr.contains("only a loopback address"),
        "a plain listener on 0.0.0.0 was allowed:\n{out}"
    );
}
