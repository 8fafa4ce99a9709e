//! Registry credentials through the Docker API (issue 15; crates/dockerapi/src/auth.rs):
//! `docker login` (POST /auth), then `docker push`/`pull` (X-Registry-Auth) against
//! `berth registry serve --htpasswd` inside the test's network namespace, through
//! `berth serve --docker-socket`. Root, a locally imported busybox image.

use berth_tests::docker::*;
use berth_tests::images::BERTH_TIMEOUT;
use berth_tests::*;
use std::process::Command;

/// `docker login REG -u USER --password-stdin` with `password` on its stdin.
fn login(d: &Docker, reg: &str, user: &str, password: &str) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "printf %s \"$PW\" | {DOCKER} login {reg} -u {user} --password-stdin"
        ))
        .env("PW", password);
    d.client_env(&mut cmd);
    capture(cmd, Capture::Pipes, BERTH_TIMEOUT)
}

#[test]
fn login_push_pull_with_registry_credentials() {
    let d = Docker::new("auth");
    let tmp = TempDir::new("dockerapi-auth");
    let pw = tmp.join("htpasswd");
    let mut cmd = Command::new("htpasswd");
    cmd.args(["-cbB"]).arg(&pw).args(["alice", "s3cret pass"]);
    let out = capture(cmd, Capture::Pipes, BERTH_TIMEOUT);
    assert!(
        out.success(),
        "htpasswd failed (apt-get install apache2-utils):\n{out}"
    );
    let pw_s = pw.to_string_lossy().into_owned();
    let reg = NsRegistry::start(&d, &["--htpasswd", &pw_s]);
    let name = format!("{}/alice/bb:1", reg.1);
    d.docker(&["tag", "busybox", &name]);

    // No credentials: the registry refuses the push, the client is told.
    let out = d.docker_out(&["push", &name]);
    assert!(
        !out.success() && !out.stdout.contains("Pushed") && out.stderr.contains("401"),
        "an anonymous push was accepted:\n{out}"
    );
    // A wrong password: the login fails.
    let out = login(&d, &reg.1, "alice", "wrong");
    assert!(
        !out.success() && !out.stdout.contains("Login Succeeded") && out.stderr.contains("401"),
        "a wrong password logged in:\n{out}"
    );
    let out = login(&d, &reg.1, "alice", "s3cret pass");
    assert!(
        out.success() && out.stdout.contains("Login Succeeded"),
        "docker login failed:\n{out}\nserve log:\n{}",
        d.serve_log()
    );
    // The CLI now sends X-Registry-Auth: push and pull work.
    let out = d.docker(&["push", &name]);
    assert!(out.contains("Pushed"), "docker push: {out}");
    d.docker(&["rmi", &name]);
    let out = d.docker(&["pull", &name]);
    assert!(out.contains("Downloaded newer image"), "docker pull: {out}");
    // The credentials went through files of their own, all removed.
    let dir = d.e.s.dir.join("run").join("dockerapi-auth");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "auth files left in {}: {left:?}",
        dir.display()
    );
    // Logged out: the private repository cannot be pulled.
    d.docker(&["rmi", &name]);
    d.docker(&["logout", &reg.1]);
    let out = d.docker_out(&["pull", &name]);
    assert!(
        !out.success() && !out.stdout.contains("Downloaded") && out.stderr.contains("401"),
        "an anonymous pull of a private image worked:\n{out}"
    );
    // A malformed header, and an identity token (not supported): 400 naming the header.
    d.py(&format!(
        "import base64\n\
         for h in ['!!!', base64.urlsafe_b64encode(b'{{\"identitytoken\":\"t\"}}').decode()]:\n\
         \x20   r = c.api._post(c.api._url('/images/create'), params={{'fromImage': '{name}'}},\n\
         \x20                   headers={{'X-Registry-Auth': h}})\n\
         \x20   assert r.status_code == 400, (h, r.status_code, r.text)\n\
         \x20   assert 'X-Registry-Auth' in r.json()['message'], r.text\n"
    ));
}
