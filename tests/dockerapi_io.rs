//! The Docker Engine API's streams (issue 15, crates/dockerapi: hijack.rs, exec.rs,
//! events.rs, stats.rs, archive.rs, system.rs): attach and exec over the connection hijack
//! (`docker run` attached, `run -it` and `exec -it` under a pty, `attach`), events, stats,
//! `docker cp` both ways (and hostile tars), `system df`, `container prune`. Real clients:
//! Debian's docker CLI (/usr/bin/docker, 20.10) and python3-docker, on `berth serve
//! --docker-socket` in the test's directory; berth serve runs inside the test's network
//! namespace. Root, real containers from a locally imported busybox image.

use berth_tests::docker::*;
use std::time::Duration;

/// Python: `drive(argv, steps)` runs a command on a new pty; each step writes its input
/// and reads until its expected bytes show up; returns the command's exit code.
const PTY_DRIVER: &str = r#"
import pty, select
def drive(argv, steps, env):
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(argv[0], argv, env)
    seen = b''
    for send, expect in steps:
        if send:
            os.write(fd, send)
        end = time.time() + 30
        while expect not in seen:
            left = end - time.time()
            assert left > 0, (argv, send, expect, seen)
            r, _, _ = select.select([fd], [], [], left)
            if r:
                try:
                    d = os.read(fd, 4096)
                except OSError:
                    d = b''
                assert d, ('the terminal closed', argv, expect, seen)
                seen += d
    end = time.time() + 30
    while True:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p:
            return os.waitstatus_to_exitcode(st)
        assert time.time() < end, ('no exit', argv, seen)
        try:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                seen += os.read(fd, 4096)
        except OSError:
            time.sleep(0.05)
"#;

#[test]
fn docker_run_attached_prints_and_exits_with_the_code() {
    let d = Docker::new("io-run");
    let out = d.docker(&["run", "--rm", "busybox", "echo", "hi"]);
    assert_eq!(out, "hi\n", "docker run --rm busybox echo hi");
    let out = d.cli(DOCKER, &["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "docker run … exit 3:\n{out}");
    // Without --rm: both streams, apart, and the code of the next exit.
    let out = d.cli(
        DOCKER,
        &[
            "run",
            "--name",
            "two",
            "busybox",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 4",
        ],
    );
    assert_eq!(out.status.code(), Some(4), "docker run … exit 4:\n{out}");
    assert_eq!(out.stdout, "out\n", "{out}");
    assert_eq!(out.stderr, "err\n", "{out}");
    // Input through the hijacked connection: `-i` with stdin a pipe.
    let got = d.py(
        "import subprocess\n\
         p = subprocess.run(['/usr/bin/docker', 'run', '--rm', '-i', 'busybox', 'sh', '-c', 'tr a-z A-Z; exit 9'],\n\
         \x20   input=b'shout\\n', capture_output=True, env=env, timeout=60)\n\
         assert p.returncode == 9, p\n\
         print(p.stdout.decode(), end='')\n",
    );
    assert_eq!(got, "SHOUT\n");
    // The current CLI (API negotiation down to 1.41) when the machine has it.
    let new = "/usr/local/bin/docker";
    if std::path::Path::new(new).exists() {
        let out = d.cli(new, &["run", "--rm", "busybox", "echo", "hi"]);
        assert!(
            out.success() && out.stdout == "hi\n",
            "{new} run --rm busybox echo hi:\n{out}\n{}",
            d.serve_log()
        );
    } else {
        eprintln!("{new} is not installed: only Debian's docker CLI (20.10) was tested");
    }
    d.docker(&["rm", "two"]);
}

#[test]
fn docker_run_it_exec_it_attach_under_a_pty() {
    let d = Docker::new("io-pty");
    d.docker(&["run", "-d", "--name", "srv", "busybox", "sleep", "100"]);
    let out = d.docker(&["exec", "srv", "cat", "/etc/hostname"]);
    // The container's hostname: its short ID (no --hostname given).
    let id = d.docker(&["inspect", "--format", "{{.Id}}", "srv"]);
    assert_eq!(
        out.trim(),
        &id.trim()[..12],
        "docker exec srv cat /etc/hostname"
    );
    let out = d.cli(
        DOCKER,
        &["exec", "srv", "sh", "-c", "echo o; echo e >&2; exit 7"],
    );
    assert_eq!(out.status.code(), Some(7), "docker exec … exit 7:\n{out}");
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("o\n", "e\n"));
    let out = d.py(&format!(
        "{PTY_DRIVER}\n\
         code = drive(['/usr/bin/docker', 'run', '-it', '--rm', 'busybox', 'sh'],\n\
         \x20   [(b'', b'# '), (b'echo $((6*7))\\r', b'42'), (b'exit 5\\r', b'')], env)\n\
         assert code == 5, ('docker run -it', code)\n\
         code = drive(['/usr/bin/docker', 'exec', '-it', 'srv', 'sh'],\n\
         \x20   [(b'', b'# '), (b'tty; echo $((3*5))\\r', b'15'), (b'exit 2\\r', b'')], env)\n\
         assert code == 2, ('docker exec -it', code)\n\
         new = '/usr/local/bin/docker'\n\
         if os.path.exists(new):\n\
         \x20   code = drive([new, 'exec', '-it', 'srv', 'sh'],\n\
         \x20       [(b'', b'# '), (b'echo $((4*5))\\r', b'20'), (b'exit 3\\r', b'')], env)\n\
         \x20   assert code == 3, ('docker 28 exec -it', code)\n\
         print('ok')\n"
    ));
    assert_eq!(out.trim(), "ok");
    // docker attach: to a container on a terminal (its monitor's attach socket), and to
    // one without (its log, followed).
    d.docker(&[
        "run",
        "-d",
        "-t",
        "--name",
        "term",
        "busybox",
        "sh",
        "-c",
        "sleep 2; echo late; exit 6",
    ]);
    let a = d.cli(DOCKER, &["attach", "--no-stdin", "term"]);
    assert!(a.stdout.contains("late"), "docker attach term:\n{a}");
    assert_eq!(a.status.code(), Some(6), "docker attach term:\n{a}");
    d.docker(&[
        "run",
        "-d",
        "--name",
        "plain",
        "busybox",
        "sh",
        "-c",
        "sleep 3; echo later; exit 8",
    ]);
    let a = d.cli(DOCKER, &["attach", "plain"]);
    assert_eq!(a.stdout, "later\n", "docker attach plain:\n{a}");
    assert_eq!(a.status.code(), Some(8), "docker attach plain:\n{a}");
}

#[test]
fn python_sdk_exec_run_and_attach() {
    let d = Docker::new("io-py");
    let out = d.py(
        "ctr = c.containers.run('busybox', ['sleep', '100'], detach=True, name='x')\n\
         r = ctr.exec_run(['sh', '-c', 'echo out; echo err >&2; exit 3'])\n\
         assert r.exit_code == 3, r\n\
         assert sorted(r.output.splitlines()) == [b'err', b'out'], r.output\n\
         r = ctr.exec_run(['sh', '-c', 'echo out; echo err >&2'], demux=True)\n\
         assert r.exit_code == 0 and r.output == (b'out\\n', b'err\\n'), r\n\
         r = ctr.exec_run(['sh', '-c', 'pwd; echo $K; id -u'], workdir='/tmp', environment={'K': 'v'}, user='1000')\n\
         assert r.output == b'/tmp\\nv\\n1000\\n', r.output\n\
         r = ctr.exec_run(['tty'], tty=True)\n\
         assert r.exit_code == 0 and r.output.startswith(b'/dev/pts/'), r\n\
         assert ctr.exec_run(['touch', '/tmp/bg'], detach=True).exit_code is None\n\
         for _ in range(100):\n\
         \x20   if ctr.exec_run(['test', '-e', '/tmp/bg']).exit_code == 0:\n\
         \x20       break\n\
         \x20   time.sleep(0.1)\n\
         else:\n\
         \x20   assert False, 'the detached exec did not run'\n\
         s = ctr.stats(stream=False)\n\
         assert s['name'] == '/x' and s['memory_stats']['usage'] > 0 and s['pids_stats']['current'] >= 1, s\n\
         assert s['cpu_stats']['system_cpu_usage'] > s['precpu_stats']['system_cpu_usage'] > 0, s\n\
         e = c.api.exec_create(ctr.id, ['sh', '-c', 'exit 4'])\n\
         assert c.api.exec_inspect(e['Id'])['Running'] is False\n\
         c.api.exec_start(e['Id'])\n\
         i = c.api.exec_inspect(e['Id'])\n\
         assert i['ExitCode'] == 4 and i['ContainerID'] == ctr.id and i['ProcessConfig']['entrypoint'] == 'sh', i\n\
         try:\n\
         \x20   c.api.exec_create(ctr.id, ['true'], privileged=True)\n\
         \x20   assert False, 'a privileged exec was accepted'\n\
         except docker.errors.APIError as x:\n\
         \x20   assert x.status_code == 400, x\n\
         try:\n\
         \x20   c.api.exec_inspect('nope')\n\
         \x20   assert False\n\
         except docker.errors.NotFound:\n\
         \x20   pass\n\
         t = c.containers.run('busybox', ['sh', '-c', 'sleep 1; echo one; sleep 1; echo two; sleep 30'], detach=True, tty=True, name='t')\n\
         got = b''\n\
         for chunk in t.attach(stream=True):\n\
         \x20   got += chunk\n\
         \x20   if b'two' in got:\n\
         \x20       break\n\
         assert b'one' in got and b'two' in got, got\n\
         t.kill()\n\
         print('ok')\n",
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn events_stats_cp_df_prune() {
    let d = Docker::new("io-misc");
    let t0 = d.py("print(int(time.time()) - 1)\n");
    d.docker(&["run", "--name", "ev", "busybox", "true"]);
    std::thread::sleep(Duration::from_millis(1100));
    let t1 = d.py("print(int(time.time()) + 1)\n");
    let ev = d.docker(&[
        "events",
        "--since",
        t0.trim(),
        "--until",
        t1.trim(),
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ]);
    for want in [
        "container create ev",
        "container start ev",
        "container die ev",
    ] {
        assert!(ev.contains(want), "docker events lacks {want:?}:\n{ev}");
    }
    // Live: a listener sees a stop and a destroy made meanwhile.
    let out = d.py(
        "import subprocess, threading\n\
         c.containers.run('busybox', ['sleep', '100'], detach=True, name='live')\n\
         p = subprocess.Popen(['/usr/bin/docker', 'events', '--filter', 'container=live', '--format', '{{.Action}}'],\n\
         \x20   stdout=subprocess.PIPE, env=env)\n\
         time.sleep(1)\n\
         c.containers.get('live').stop(timeout=1)\n\
         c.containers.get('live').remove()\n\
         seen = []\n\
         timer = threading.Timer(20, p.kill)\n\
         timer.start()\n\
         for l in p.stdout:\n\
         \x20   seen.append(l.decode().strip())\n\
         \x20   if 'destroy' in seen:\n\
         \x20       break\n\
         p.kill()\n\
         timer.cancel()\n\
         assert 'die' in seen and 'stop' in seen and 'destroy' in seen, seen\n\
         print('ok')\n",
    );
    assert_eq!(out.trim(), "ok");
    // docker stats --no-stream
    d.docker(&["run", "-d", "--name", "st", "busybox", "sleep", "100"]);
    let st = d.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.MemUsage}}|{{.PIDs}}",
        "st",
    ]);
    let f: Vec<&str> = st.trim().split('|').collect();
    assert_eq!(f.len(), 3, "docker stats: {st}");
    assert_eq!(f[0], "st", "docker stats: {st}");
    assert!(
        !f[1].starts_with("0B "),
        "docker stats shows no memory: {st}"
    );
    assert_eq!(f[2], "1", "docker stats: one process: {st}");
    // docker cp in and out.
    let host = d.e.s.dir.join("cp");
    std::fs::create_dir_all(host.join("tree/sub")).expect("mkdir");
    std::fs::write(host.join("tree/sub/f"), "payload\n").expect("write");
    std::fs::write(host.join("one"), "single\n").expect("write");
    let h = |p: &str| host.join(p).to_string_lossy().into_owned();
    d.docker(&["cp", &h("tree"), "st:/tmp/"]);
    d.docker(&["cp", &h("one"), "st:/tmp/renamed"]);
    let out = d.docker(&["exec", "st", "cat", "/tmp/tree/sub/f", "/tmp/renamed"]);
    assert_eq!(out, "payload\nsingle\n");
    d.docker(&[
        "exec",
        "st",
        "sh",
        "-c",
        "mkdir -p /out/d && echo back > /out/d/g",
    ]);
    d.docker(&["cp", "st:/out/d", &h("got")]);
    let back = std::fs::read_to_string(host.join("got/g")).expect("docker cp out");
    assert_eq!(back, "back\n");
    d.docker(&["cp", "st:/out/d/g", &h("g2")]);
    assert_eq!(
        std::fs::read_to_string(host.join("g2")).expect("cp file"),
        "back\n"
    );
    // Hostile tars: `..` refused; a symlink to / and an absolute one stay in the container.
    let tag = format!("berth-cp-escape-{}", std::process::id());
    let out = d.py(&format!(
        "ctr = c.containers.get('st')\n\
         def tar(entries):\n\
         \x20   b = io.BytesIO()\n\
         \x20   with tarfile.open(fileobj=b, mode='w') as t:\n\
         \x20       for name, kind, data in entries:\n\
         \x20           i = tarfile.TarInfo(name)\n\
         \x20           if kind == 'link':\n\
         \x20               i.type = tarfile.SYMTYPE\n\
         \x20               i.linkname = data\n\
         \x20               t.addfile(i)\n\
         \x20           else:\n\
         \x20               i.size = len(data)\n\
         \x20               t.addfile(i, io.BytesIO(data))\n\
         \x20   return b.getvalue()\n\
         try:\n\
         \x20   ctr.put_archive('/tmp', tar([('../../../../../tmp/{tag}', 'file', b'x')]))\n\
         \x20   assert False, 'a tar with .. was accepted'\n\
         except docker.errors.APIError as x:\n\
         \x20   assert x.status_code == 400, x\n\
         try:\n\
         \x20   ctr.put_archive('/tmp', tar([('evil', 'link', '/'), ('evil/tmp/{tag}', 'file', b'x')]))\n\
         except docker.errors.APIError:\n\
         \x20   pass\n\
         assert ctr.put_archive('/tmp', tar([('lnk', 'link', '/etc')]))\n\
         assert ctr.put_archive('/tmp', tar([('lnk/{tag}', 'file', b'inside')]))\n\
         r = ctr.exec_run(['sh', '-c', 'cat /etc/{tag} 2>/dev/null; ls /tmp'])\n\
         print(r.output.decode())\n"
    ));
    assert!(
        !std::path::Path::new(&format!("/tmp/{tag}")).exists()
            && !std::path::Path::new(&format!("/etc/{tag}")).exists(),
        "a hostile tar wrote on the host: {out}"
    );
    assert!(out.contains("lnk"), "the symlink was not copied in: {out}");
    // docker system df
    let df = d.docker(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(df.contains("Images 1"), "docker system df: {df}");
    assert!(df.contains("Containers 2"), "docker system df: {df}");
    // docker container prune: the exited one goes, the running one stays.
    let out = d.docker(&["container", "prune", "-f"]);
    assert!(
        out.contains("Total reclaimed space"),
        "docker container prune: {out}"
    );
    let left = d.docker(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(left.trim(), "st", "after docker container prune");
}
