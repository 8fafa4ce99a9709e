//! The Docker API over TLS (issue 15; crates/dockerapi/src/tls.rs): `berth serve
//! --docker-listen ADDR:PORT --tls-cert --tls-key [--tls-ca]` inside the test's network
//! namespace (ADDR 0.0.0.0 with the CA: only the namespace's loopback is up), driven by Debian's docker CLI with `DOCKER_TLS_VERIFY=1` and a
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

/// `GET /_ping` over TLS by Python's ssl module (inside the test's network namespace),
/// presenting `CERT.pem` when given: the response, or `ERR …`.
fn ping_with_cert(d: &Docker, dir: &Path, cert: Option<&str>) -> String {
    let ns = d.e.s.netns.as_ref().expect("the test's network namespace");
    let load = cert.map_or(String::new(), |c| {
        format!(
            "ctx.load_cert_chain('{0}/{c}.pem', '{0}/{c}.key')\n",
            dir.display()
        )
    });
    let script = format!(
        "import ssl, socket\n\
         ctx = ssl.create_default_context(cafile='{}/ours-ca.pem')\n\
         {load}\
         try:\n\
         \x20   s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', {PORT}), timeout=30), server_hostname='127.0.0.1')\n\
         \x20   s.sendall(b'GET /_ping HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n')\n\
         \x20   data = b''\n\
         \x20   while True:\n\
         \x20       b = s.recv(4096)\n\
         \x20       if not b: break\n\
         \x20       data += b\n\
         \x20   print(data.decode(errors='replace'))\n\
         except Exception as e:\n\
         \x20   print('ERR', e)\n",
        dir.display()
    );
    let mut cmd = ns.command(&["/usr/bin/python3", "-c", &script]);
    cmd.env_remove("PYTHONPATH");
    let out = capture(cmd, Capture::Pipes, BERTH_TIMEOUT);
    assert!(out.success(), "the python TLS client failed:\n{out}");
    out.stdout
}

/// `berth serve` with TLS on PORT: with the CA, on 0.0.0.0 (TLS lets any address be
/// bound; this is the test's own network namespace, where only its loopback is up).
fn serve_tls(name: &str, dir: &Path, with_ca: bool) -> Docker {
    let listen = if with_ca {
        format!("0.0.0.0:{PORT}")
    } else {
        format!("127.0.0.1:{PORT}")
    };
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
    assert!(
        out.stderr.contains("tls: certificate required"),
        "the refusal is not the server's TLS alert:\n{out}"
    );
    // A certificate of another CA, sent anyway (the docker CLI would not offer it: it
    // only sends one the server's CA hints name): refused; ours: served.
    let rogue = ping_with_cert(&d, tmp.path(), Some("rogue"));
    assert!(
        rogue.starts_with("ERR ") && !rogue.contains("200 OK"),
        "a client certificate of another CA was accepted: {rogue}"
    );
    let ours = ping_with_cert(&d, tmp.path(), Some("client"));
    assert!(
        ours.contains("200 OK") && ours.trim_end().ends_with("OK"),
        "GET /_ping with our client certificate: {ours}"
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
