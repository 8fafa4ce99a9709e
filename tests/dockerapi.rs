//! The Docker Engine API (issue 15, crates/dockerapi): `berth serve --docker-socket` driven
//! by a real Docker client, the Docker SDK for Python (Debian's python3-docker), over a
//! unix socket in the test's directory. berth serve runs inside the test's network
//! namespace (its containers join the default bridge network there). Root, real
//! containers from a locally imported busybox image.

use berth_tests::docker::*;
use berth_tests::*;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn ping_version_info() {
    // The TCP listener is inside the test's network namespace (a fresh one: the port is free).
    let d = Docker::with("ping", &["--docker-listen", "127.0.0.1:2375"]);
    let out = d.py("assert c.ping() is True\n\
         v = c.version()\n\
         assert v['ApiVersion'] == '1.41', v\n\
         assert v['Os'] == 'linux', v\n\
         i = c.info()\n\
         assert i['Images'] == 1, i\n\
         assert i['Containers'] == 0, i\n\
         api = c.api\n\
         for path in ['/_ping', '/v1.41/_ping', '/v1.24/_ping']:\n\
         \x20   r = api.get('http+docker://localhost' + path)\n\
         \x20   assert r.status_code == 200 and r.text == 'OK', (path, r.status_code, r.text)\n\
         \x20   assert r.headers['API-Version'] == '1.41', r.headers\n\
         r = api.head('http+docker://localhost/_ping')\n\
         assert r.status_code == 200, r.status_code\n\
         r = api.get('http+docker://localhost/v1.41/no/such/endpoint')\n\
         assert r.status_code == 404 and 'message' in r.json(), r.text\n\
         print('ok')\n");
    assert_eq!(out.trim(), "ok");
    let out = d.py_at(
        "tcp://127.0.0.1:2375",
        true,
        "assert c.ping() is True\n\
         assert c.version()['ApiVersion'] == '1.41'\n\
         print(len(c.containers.list(all=True)))\n",
    );
    assert_eq!(out.trim(), "0");
    // The socket is the owner's and its group's only.
    let mode = std::fs::metadata(&d.sock)
        .expect("stat the socket")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o660,
        "the socket's mode"
    );
}

#[test]
fn run_list_logs_wait_remove() {
    let d = Docker::new("run");
    let out = d.py(
        "ctr = c.containers.run('busybox', ['sh', '-c', 'echo out; echo err >&2; exit 3'], \
         detach=True, name='one', labels={'k': 'v'}, environment=['A=b'])\n\
         r = ctr.wait()\n\
         assert r['StatusCode'] == 3, r\n\
         assert ctr.logs(stdout=True, stderr=False) == b'out\\n', ctr.logs(stdout=True, stderr=False)\n\
         assert ctr.logs(stdout=False, stderr=True) == b'err\\n', ctr.logs(stdout=False, stderr=True)\n\
         both = ctr.logs()\n\
         assert sorted(both.splitlines()) == [b'err', b'out'], both\n\
         ts = ctr.logs(stdout=True, stderr=False, timestamps=True).decode()\n\
         assert ts.endswith(' out\\n') and ts[:4].isdigit(), ts\n\
         ctr.reload()\n\
         assert ctr.status == 'exited', ctr.status\n\
         assert ctr.attrs['State']['ExitCode'] == 3, ctr.attrs['State']\n\
         assert ctr.attrs['Name'] == '/one', ctr.attrs['Name']\n\
         assert ctr.attrs['Config']['Labels'] == {'k': 'v'}, ctr.attrs['Config']\n\
         assert 'A=b' in ctr.attrs['Config']['Env'], ctr.attrs['Config']\n\
         assert [x.name for x in c.containers.list()] == [], 'an exited container is listed without all'\n\
         assert [x.name for x in c.containers.list(all=True)] == ['one']\n\
         long = c.containers.run('busybox', ['sleep', '100'], detach=True, name='long')\n\
         assert [x.name for x in c.containers.list()] == ['long']\n\
         long.reload()\n\
         assert long.attrs['State']['Running'] is True and long.attrs['State']['Pid'] > 0, long.attrs['State']\n\
         f = lambda **kw: sorted(x['Names'][0] for x in c.api.containers(all=True, filters=kw))\n\
         assert f(label='k=v') == ['/one'], f(label='k=v')\n\
         assert f(label='k') == ['/one'] and f(label='k=w') == [], f(label='k')\n\
         assert f(status='running') == ['/long'], f(status='running')\n\
         assert f(status='exited') == ['/one'], f(status='exited')\n\
         assert f(name='lon') == ['/long'] and f(name='one') == ['/one'], f(name='lon')\n\
         assert f(id=long.id[:12]) == ['/long'], f(id=long.id[:12])\n\
         r = c.api.get('http+docker://localhost/v1.41/containers/json?filters=%7B%22volume%22%3A%5B%22x%22%5D%7D')\n\
         assert r.status_code == 400 and 'volume' in r.json()['message'], r.text\n\
         t = long.top()\n\
         assert 'CMD' in t['Titles'] and any(p[-1] == 'sleep 100' for p in t['Processes']), t\n\
         long.pause()\n\
         long.reload()\n\
         assert long.status == 'paused' and long.attrs['State']['Paused'] is True, long.attrs['State']\n\
         long.unpause()\n\
         long.rename('longer')\n\
         long.reload()\n\
         assert long.status == 'running' and long.name == 'longer', (long.status, long.name)\n\
         long.kill()\n\
         assert long.wait()['StatusCode'] == 137\n\
         long.remove()\n\
         ctr.remove()\n\
         assert c.containers.list(all=True) == []\n\
         imgs = c.images.list()\n\
         assert len(imgs) == 1 and any('busybox' in t for t in imgs[0].tags), [i.tags for i in imgs]\n\
         img = c.images.get('busybox')\n\
         assert img.id == imgs[0].id, (img.id, imgs[0].id)\n\
         print(ctr.id)\n",
    );
    let id = out.trim();
    assert_eq!(id.len(), 64, "containers.run gave no id: {out}");
    // The engine agrees: the container is gone for the CLI too.
    let ps = d.e.ps_all();
    assert!(ps.is_empty(), "berth ps -a still shows containers: {ps:?}");
}

#[test]
fn errors_have_docker_codes_and_messages() {
    let d = Docker::new("errors");
    let out = d.py("from docker import errors\n\
         c.containers.create('busybox', ['true'], name='same')\n\
         try:\n\
         \x20   c.containers.create('busybox', ['true'], name='same')\n\
         \x20   raise SystemExit('a name clash was accepted')\n\
         except errors.APIError as e:\n\
         \x20   assert e.status_code == 409, e\n\
         \x20   assert 'already in use' in e.explanation, e.explanation\n\
         try:\n\
         \x20   c.containers.get('nosuch')\n\
         \x20   raise SystemExit('an unknown container was found')\n\
         except errors.NotFound as e:\n\
         \x20   assert e.status_code == 404 and 'No such container' in e.explanation, e\n\
         try:\n\
         \x20   c.containers.create('nosuchimage', ['true'])\n\
         \x20   raise SystemExit('an unknown image was accepted')\n\
         except errors.ImageNotFound as e:\n\
         \x20   assert e.status_code == 404 and 'No such image' in e.explanation, e\n\
         try:\n\
         \x20   c.containers.create('busybox', ['true'], name='bad/name')\n\
         \x20   raise SystemExit('a bad name was accepted')\n\
         except errors.APIError as e:\n\
         \x20   assert e.status_code == 400, e\n\
         r = c.api.post('http+docker://localhost/v1.41/containers/create', data='{not json', \
         headers={'Content-Type': 'application/json'})\n\
         assert r.status_code == 400 and 'invalid JSON' in r.json()['message'], r.text\n\
         s = c.containers.get('same')\n\
         s.start()\n\
         assert s.wait()['StatusCode'] == 0\n\
         s.remove()\n\
         try:\n\
         \x20   s.remove()\n\
         \x20   raise SystemExit('a removed container was removed again')\n\
         except errors.NotFound:\n\
         \x20   pass\n\
         print('ok')\n");
    assert_eq!(out.trim(), "ok");
}

#[test]
fn logs_follow_tail_and_tty() {
    let d = Docker::new("logs");
    let out = d.py(
        "ctr = c.containers.run('busybox', ['sh', '-c', 'echo a; sleep 1; echo b >&2; sleep 1; echo c'], \
         detach=True)\n\
         got = b''.join(ctr.logs(stream=True, follow=True))\n\
         assert got == b'a\\nb\\nc\\n', got\n\
         assert ctr.wait()['StatusCode'] == 0\n\
         s = c.containers.run('busybox', ['seq', '1', '5'], detach=True)\n\
         s.wait()\n\
         assert s.logs(tail=2) == b'4\\n5\\n', s.logs(tail=2)\n\
         assert s.logs(tail=0) == b'', s.logs(tail=0)\n\
         raw = c.api.get('http+docker://localhost/v1.41/containers/%s/logs?stdout=1&tail=1' % s.id)\n\
         assert raw.content == b'\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x025\\n', raw.content\n\
         r = c.api.get('http+docker://localhost/v1.41/containers/%s/logs?stdout=1&tail=x' % s.id)\n\
         assert r.status_code == 400 and 'tail' in r.json()['message'], r.text\n\
         t = c.containers.run('busybox', ['echo', 'hi'], detach=True, tty=True)\n\
         t.wait()\n\
         assert t.logs() == b'hi\\r\\n', t.logs()\n\
         print('ok')\n",
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn create_options_reach_the_container() {
    let d = Docker::new("opts");
    let host = d.e.s.dir.join("bind");
    std::fs::create_dir_all(&host).expect("mkdir bind");
    std::fs::write(host.join("f"), "from the host\n").expect("write bind file");
    let script = format!(
        "from docker import errors\n\
         ctr = c.containers.run('busybox', ['-c', 'cat /b/f; pwd; id -u; echo $E; touch /x 2>/dev/null || echo ro; cat /proc/1/cmdline | tr \"\\\\0\" \" \"; echo'], \
         entrypoint=['sh'], working_dir='/tmp', user='1000', environment={{'E': 'env'}}, \
         volumes=['{}:/b:ro'], read_only=True, init=True, mem_limit=64*1024*1024, nano_cpus=500000000, \
         detach=True)\n\
         assert ctr.wait()['StatusCode'] == 0, ctr.logs()\n\
         lines = ctr.logs().decode().splitlines()\n\
         assert lines[:5] == ['from the host', '/tmp', '1000', 'env', 'ro'], lines\n\
         assert lines[5].startswith('/dev/init -- sh -c'), lines\n\
         ctr.reload()\n\
         hc = ctr.attrs['HostConfig']\n\
         assert hc['Memory'] == 64*1024*1024 and hc['NanoCpus'] == 500000000, hc\n\
         assert hc['ReadonlyRootfs'] is True and hc['Init'] is True, hc\n\
         r = c.containers.create('busybox', ['sleep', '100'], restart_policy={{'Name': 'on-failure', 'MaximumRetryCount': 3}}, \
         ports={{'80/tcp': 18080}})\n\
         hc = c.api.inspect_container(r.id)['HostConfig']\n\
         assert hc['RestartPolicy'] == {{'Name': 'on-failure', 'MaximumRetryCount': 3}}, hc\n\
         r.start()\n\
         r.reload()\n\
         assert r.status == 'running', r.status\n\
         pid = r.attrs['State']['Pid']\n\
         assert r.attrs['NetworkSettings']['Ports'] == {{'80/tcp': [{{'HostIp': '0.0.0.0', 'HostPort': '18080'}}]}}, r.attrs['NetworkSettings']\n\
         assert r.attrs['NetworkSettings']['IPAddress'].count('.') == 3, r.attrs['NetworkSettings']\n\
         lp = c.api.containers(filters=None)[0]['Ports']\n\
         assert lp == [{{'IP': '0.0.0.0', 'PrivatePort': 80, 'PublicPort': 18080, 'Type': 'tcp'}}], lp\n\
         r.restart(timeout=1)\n\
         r.reload()\n\
         assert r.status == 'running' and r.attrs['State']['Pid'] != pid, r.attrs['State']\n\
         r.stop(timeout=1)\n\
         r.reload()\n\
         assert r.status == 'exited', r.status\n\
         try:\n\
         \x20   c.containers.create('busybox', ['true'], auto_remove=True, restart_policy={{'Name': 'always'}})\n\
         \x20   raise SystemExit('AutoRemove with a restart policy was accepted')\n\
         except errors.APIError as e:\n\
         \x20   assert e.status_code == 409, e\n\
         w = c.containers.run('busybox', ['sh', '-c', 'sleep 1; exit 5'], auto_remove=True, detach=True)\n\
         c.api.wait(w.id, condition='removed')\n\
         assert w.id not in [x['Id'] for x in c.api.containers(all=True)], 'wait removed returned before the removal'\n\
         r2 = c.api.post('http+docker://localhost/v1.41/containers/%s/wait?condition=bogus' % r.id)\n\
         assert r2.status_code == 400 and 'condition' in r2.json()['message'], r2.text\n\
         a = c.containers.run('busybox', ['true'], auto_remove=True, detach=True)\n\
         import time\n\
         for _ in range(100):\n\
         \x20   if a.id not in [x['Id'] for x in c.api.containers(all=True)]:\n\
         \x20       break\n\
         \x20   time.sleep(0.1)\n\
         else:\n\
         \x20   raise SystemExit('an AutoRemove container stayed')\n\
         print('ok')\n",
        host.display()
    );
    let out = d.py(&script);
    assert_eq!(out.trim(), "ok");
    // The CLI sees the same containers: the API and the CLI share the engine.
    let ps = d.e.ps_all();
    assert_eq!(ps.len(), 2, "berth ps -a: {ps:?}");
    // An anonymous volume (a Binds entry without a source) goes with `DELETE …?v=1`.
    d.py("c.containers.create('busybox', ['true'], name='anon', volumes=['/anon'])\n");
    let vols = d.e.berth(&["volume", "ls", "-q"]);
    assert_eq!(
        vols.ok().stdout.lines().count(),
        1,
        "the anonymous volume: {vols}"
    );
    d.py("c.containers.get('anon').remove(v=True)\n");
    let vols = d.e.berth(&["volume", "ls", "-q"]);
    assert_eq!(vols.ok().stdout.trim(), "", "DELETE ?v=1 left the volume");
}

#[test]
fn docker_cli_run_ps_logs_stop_rm() {
    let d = Docker::new("cli");
    let v = d.docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(v.trim(), "1.41");
    let id = d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo hi; echo oops >&2; exec sleep 100",
    ]);
    assert_eq!(id.trim().len(), 64, "docker run -d printed no id: {id:?}");
    let names = d.docker(&["ps", "--format", "{{.Names}} {{.State}}"]);
    assert_eq!(names.trim(), "web running");
    let logs = poll(Duration::from_secs(10), || {
        let l = d.docker(&["logs", "web"]);
        l.contains("hi").then_some(l)
    });
    assert_eq!(logs.as_deref(), Some("hi\n"), "docker logs web (stdout)");
    d.docker(&["stop", "-t", "1", "web"]);
    let st = d.docker(&["inspect", "--format", "{{.State.Status}}", "web"]);
    assert_eq!(st.trim(), "exited");
    d.docker(&["rm", "web"]);
    let left = d.docker(&["ps", "-a", "-q"]);
    assert_eq!(left.trim(), "", "docker ps -a after rm");
}

#[test]
fn serve_stops_promptly_with_a_client_waiting() {
    let mut d = Docker::new("stop");
    d.py("c.containers.run('busybox', ['sleep', '100'], detach=True, name='w')\n");
    // A client blocked in POST /containers/w/wait.
    let mut waiter = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(format!(
            "import docker\n\
             c = docker.DockerClient(base_url='unix://{}', version='1.41', timeout=60)\n\
             c.containers.get('w').wait()\n",
            d.sock.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the waiting client");
    std::thread::sleep(Duration::from_millis(500));
    let mut serve = d.serve.take().expect("berth serve runs");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM berth serve");
    let stopped = poll(Duration::from_secs(10), || serve.try_wait().ok().flatten());
    let _ = waiter.kill();
    let _ = waiter.wait();
    assert!(
        stopped.is_some_and(|s| s.success()),
        "berth serve did not exit cleanly within 10 s of SIGTERM while a client waited:\n{}",
        d.serve_log()
    );
    assert!(!d.sock.exists(), "berth serve left its socket behind");
}
