//! The Docker API's images, build, pull/push, networks and volumes (issue 15, part B;
//! crates/dockerapi/src/{images,build,pull,networks,volumes}.rs), driven by Debian's docker
//! CLI and python3-docker on `berth serve --docker-socket` inside the test's network
//! namespace. Root, real containers from a locally imported busybox image.

use berth_tests::docker::*;

/// Waits for container `c` to exit (docker wait); its exit code.
fn wait(d: &Docker, c: &str) -> i32 {
    let out = d.docker(&["wait", c]);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("docker wait {c} printed no code: {out:?}"))
}

#[test]
fn build_images_tag_history_rmi() {
    let d = Docker::new("build");
    let ctx = d.e.s.dir.join("ctx");
    std::fs::create_dir_all(ctx.join("sub")).expect("mkdir ctx");
    std::fs::write(
        ctx.join("sub/Dockerfile.web"),
        "FROM busybox\nARG MSG=unset\nRUN echo $MSG > /msg\nCOPY f /f\nCMD [\"sh\", \"-c\", \"cat /msg /f\"]\n",
    )
    .expect("write the Dockerfile");
    std::fs::write(ctx.join("f"), "from the context\n").expect("write f");
    let ctx_s = ctx.to_string_lossy().into_owned();
    // The CLI's -f is a path of the client's (sent as the context's relative path).
    let file = ctx
        .join("sub/Dockerfile.web")
        .to_string_lossy()
        .into_owned();
    let out = d.docker(&[
        "build",
        "-t",
        "web:1",
        "-f",
        &file,
        "--build-arg",
        "MSG=hello",
        "--label",
        "team=ops",
        &ctx_s,
    ]);
    assert!(
        out.contains("Step 1/6 : FROM busybox") && out.contains("Successfully built"),
        "docker build's output: {out}"
    );
    let imgs = d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        imgs.lines().any(|l| l.ends_with("web:1")),
        "docker images: {imgs}"
    );
    let label = d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{index .Config.Labels \"team\"}}",
        "web:1",
    ]);
    assert_eq!(label.trim(), "ops", "the build's label");
    let id = d.docker(&["run", "-d", "--network", "none", "web:1"]);
    let id = id.trim();
    assert_eq!(wait(&d, id), 0);
    assert_eq!(d.docker(&["logs", id]), "hello\nfrom the context\n");
    // History: newest first, the RUN step's command shown.
    let h = d.docker(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "web:1",
    ]);
    assert!(
        h.lines()
            .any(|l| l.contains("echo $MSG") || l.contains("echo hello")),
        "docker history: {h}"
    );
    d.docker(&["tag", "web:1", "web:2"]);
    let imgs = d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        imgs.lines().any(|l| l.ends_with("web:2")),
        "docker images after tag: {imgs}"
    );
    // In use by the container: refused, naming it.
    let r = d.docker_out(&["rmi", "web:1"]);
    assert!(
        !r.success() && r.stderr.contains("in use by container"),
        "docker rmi of an image in use: {r}"
    );
    d.docker(&["rm", id]);
    let out = d.docker(&["rmi", "web:1"]);
    assert!(out.contains("Untagged"), "docker rmi web:1: {out}");
    let out = d.docker(&["rmi", "web:2"]);
    assert!(
        out.contains("Untagged") && out.contains("Deleted"),
        "docker rmi web:2: {out}"
    );
    let imgs = d.docker(&["images", "--format", "{{.Repository}}"]);
    assert!(!imgs.contains("web"), "docker images after rmi: {imgs}");
    // A failing step: the error reaches the client, no image is named.
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN exit 3\n").expect("write");
    let r = d.docker_out(&["build", "-t", "bad", &ctx_s]);
    assert!(!r.success(), "a failing build succeeded: {r}");
    assert!(
        !d.docker(&["images", "--format", "{{.Repository}}"])
            .contains("bad"),
        "a failed build named an image"
    );
}

#[test]
fn python_build_refuses_a_hostile_context() {
    let d = Docker::new("pybuild");
    let out = d.py(
        "import tarfile, time\n\
         def ctx(entries):\n\
         \x20   b = io.BytesIO()\n\
         \x20   t = tarfile.open(fileobj=b, mode='w')\n\
         \x20   for name, data in entries:\n\
         \x20       i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))\n\
         \x20   t.close(); b.seek(0); return b\n\
         img, logs = c.images.build(fileobj=ctx([('Dockerfile', b'FROM busybox\\nRUN echo built > /b\\n')]), \
         custom_context=True, tag='py:1')\n\
         assert 'py:1' in ' '.join(img.tags), img.tags\n\
         assert any('Step 2/2' in l.get('stream', '') for l in logs), list(logs)\n\
         from docker import errors\n\
         try:\n\
         \x20   c.images.build(fileobj=ctx([('Dockerfile', b'FROM busybox\\n'), ('../escape', b'x')]), custom_context=True, tag='evil')\n\
         \x20   raise SystemExit('a context with ../ was built')\n\
         except (errors.APIError, errors.BuildError) as e:\n\
         \x20   assert 'escape' in str(e) or '..' in str(e), e\n\
         r = c.api.post('http+docker://localhost/v1.41/build?dockerfile=../../etc/passwd', \
         data=ctx([('Dockerfile', b'FROM busybox\\n')]).getvalue(), headers={'Content-Type': 'application/x-tar'})\n\
         assert r.status_code == 400 and 'dockerfile' in r.json()['message'], r.text\n\
         print('ok')\n",
    );
    assert_eq!(out.trim(), "ok");
    let names = d.e.s.image_names();
    assert!(
        names.iter().any(|n| n.contains("py:1")) && !names.iter().any(|n| n.contains("evil")),
        "the store's names: {names:?}"
    );
    assert!(
        !d.e.s.dir.join("escape").exists() && !d.e.s.root().join("build/escape").exists(),
        "the hostile entry was written outside the context"
    );
}

#[test]
fn save_load_round_trip() {
    let d = Docker::new("save");
    let tar = d.e.s.dir.join("bb.tar");
    let tar_s = tar.to_string_lossy().into_owned();
    d.docker(&["tag", "busybox", "saved:1"]);
    d.docker(&["save", "-o", &tar_s, "saved:1"]);
    let len = std::fs::metadata(&tar).map(|m| m.len()).unwrap_or(0);
    assert!(len > 100_000, "docker save wrote {len} bytes");
    d.docker(&["rmi", "saved:1"]);
    let imgs = d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(!imgs.contains("saved"), "docker images after rmi: {imgs}");
    let out = d.docker(&["load", "-i", &tar_s]);
    assert!(out.contains("Loaded image: "), "docker load: {out}");
    assert!(out.contains("saved"), "docker load named no image: {out}");
    let id = d.docker(&["run", "-d", "--network", "none", "saved:1", "echo", "again"]);
    assert_eq!(wait(&d, id.trim()), 0);
    assert_eq!(d.docker(&["logs", id.trim()]), "again\n");
    // Garbage is refused with a message, nothing is named.
    std::fs::write(&tar, b"not an archive").expect("write");
    let r = d.docker_out(&["load", "-i", &tar_s]);
    assert!(!r.success(), "docker load of garbage succeeded: {r}");
}

#[test]
fn push_pull_through_a_loopback_registry() {
    let d = Docker::new("push");
    let reg = NsRegistry::start(&d, &[]);
    let name = format!("{}/tools/bb:1", reg.1);
    d.docker(&["tag", "busybox", &name]);
    let out = d.docker(&["push", &name]);
    assert!(out.contains("Pushed"), "docker push: {out}");
    d.docker(&["rmi", &name]);
    let out = d.docker(&["pull", &name]);
    assert!(out.contains("Downloaded newer image"), "docker pull: {out}");
    let imgs = d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        imgs.lines().any(|l| l.ends_with("/tools/bb:1")),
        "docker images after pull: {imgs}"
    );
    let id = d.docker(&["run", "-d", "--network", "none", &name, "echo", "pulled"]);
    assert_eq!(wait(&d, id.trim()), 0);
    assert_eq!(d.docker(&["logs", id.trim()]), "pulled\n");
    // An image the registry lacks: the error reaches the client.
    let r = d.docker_out(&["pull", &format!("{}/tools/none:1", reg.1)]);
    assert!(!r.success(), "pulling a missing image succeeded: {r}");
}

#[test]
fn networks_and_volumes() {
    let d = Docker::new("netvol");
    d.docker(&[
        "network",
        "create",
        "--subnet",
        "10.89.5.0/24",
        "--label",
        "app=x",
        "appnet",
    ]);
    let sub = d.docker(&[
        "network",
        "inspect",
        "--format",
        "{{(index .IPAM.Config 0).Subnet}} {{.Labels.app}}",
        "appnet",
    ]);
    assert_eq!(sub.trim(), "10.89.5.0/24 x");
    let r = d.docker_out(&["network", "create", "appnet"]);
    assert!(
        !r.success() && r.stderr.contains("already exists"),
        "a second appnet: {r}"
    );
    let ls = d.docker(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(
        ls.lines().any(|l| l == "appnet") && ls.lines().any(|l| l == "bridge"),
        "docker network ls: {ls}"
    );
    d.docker(&["volume", "create", "--label", "k=v", "data"]);
    let vls = d.docker(&["volume", "ls", "-q"]);
    assert_eq!(vls.trim(), "data");
    let mp = d.docker(&["volume", "inspect", "--format", "{{.Labels.k}}", "data"]);
    assert_eq!(mp.trim(), "v");
    d.docker(&[
        "run",
        "-d",
        "--name",
        "w",
        "--network",
        "appnet",
        "--network-alias",
        "web",
        "-v",
        "data:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f; exec sleep 100",
    ]);
    let ip = d.docker(&[
        "inspect",
        "--format",
        "{{.NetworkSettings.Networks.appnet.IPAddress}} {{.NetworkSettings.Networks.appnet.Aliases}}",
        "w",
    ]);
    assert!(
        ip.starts_with("10.89.5.") && ip.contains("web"),
        "w's address and aliases on appnet: {ip}"
    );
    // Another container on the network reaches w by its alias; reads the volume.
    let a = d.docker(&[
        "run",
        "-d",
        "--network",
        "appnet",
        "--mount",
        "type=volume,source=data,target=/v,readonly",
        "busybox",
        "sh",
        "-c",
        "sleep 1; ping -c 1 -W 3 web >/dev/null && cat /v/f",
    ]);
    assert_eq!(wait(&d, a.trim()), 0, "{}", d.docker(&["logs", a.trim()]));
    assert_eq!(d.docker(&["logs", a.trim()]), "kept\n");
    d.docker(&["rm", a.trim()]);
    // connect / disconnect a second network with a fixed address.
    d.docker(&["network", "create", "--subnet", "10.89.6.0/24", "other"]);
    d.docker(&["network", "connect", "--ip", "10.89.6.9", "other", "w"]);
    let ip2 = d.docker(&[
        "inspect",
        "--format",
        "{{.NetworkSettings.Networks.other.IPAddress}}",
        "w",
    ]);
    assert_eq!(ip2.trim(), "10.89.6.9");
    let cs = d.docker(&[
        "network",
        "inspect",
        "--format",
        "{{len .Containers}}",
        "other",
    ]);
    assert_eq!(cs.trim(), "1");
    d.docker(&["network", "disconnect", "other", "w"]);
    let r = d.docker_out(&["network", "rm", "appnet"]);
    assert!(
        !r.success() && r.stderr.contains("in use"),
        "removing a network in use: {r}"
    );
    let r = d.docker_out(&["volume", "rm", "data"]);
    assert!(
        !r.success() && r.stderr.contains("in use"),
        "removing a volume in use: {r}"
    );
    d.docker(&["rm", "-f", "w"]);
    d.docker(&["network", "rm", "appnet"]);
    let pruned = d.docker(&["network", "prune", "-f"]);
    assert!(pruned.contains("other"), "docker network prune: {pruned}");
    let r = d.docker_out(&["network", "inspect", "appnet"]);
    assert!(!r.success(), "a removed network is inspected: {r}");
    d.docker(&["volume", "rm", "data"]);
    assert_eq!(d.docker(&["volume", "ls", "-q"]).trim(), "");
    let r = d.docker_out(&["volume", "inspect", "data"]);
    assert!(!r.success(), "a removed volume is inspected: {r}");
    // The engine agrees: nothing left for berth's CLI either.
    let nets = d.e.berth(&["network", "ls", "-q"]);
    assert!(
        !nets.ok().stdout.contains("appnet") && !nets.stdout.contains("other"),
        "berth network ls: {nets}"
    );
    // python3-docker: networks.create, volumes.create, and create's NetworkingConfig.
    let out = d.py(
        "n = c.networks.create('pynet', driver='bridge', labels={'a': 'b'}, \
         ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet='10.89.7.0/24', gateway='10.89.7.1')]))\n\
         n.reload()\n\
         assert n.attrs['IPAM']['Config'][0]['Gateway'] == '10.89.7.1', n.attrs\n\
         v = c.volumes.create('pyvol', labels={'x': 'y'})\n\
         assert v.attrs['Labels'] == {'x': 'y'}, v.attrs\n\
         assert [x.name for x in c.volumes.list(filters={'label': 'x=y'})] == ['pyvol']\n\
         ctr = c.api.create_container('busybox', ['sh', '-c', 'echo hi > /m/f; cat /m/f'], \
         host_config=c.api.create_host_config(mounts=[docker.types.Mount('/m', 'pyvol')]), \
         networking_config=c.api.create_networking_config({'pynet': c.api.create_endpoint_config(aliases=['svc'], ipv4_address='10.89.7.5')}))\n\
         c.api.start(ctr['Id'])\n\
         assert c.api.wait(ctr['Id'])['StatusCode'] == 0\n\
         i = c.api.inspect_container(ctr['Id'])\n\
         ep = i['NetworkSettings']['Networks']['pynet']\n\
         assert ep['IPAddress'] == '10.89.7.5' and 'svc' in ep['Aliases'], ep\n\
         c.api.remove_container(ctr['Id'])\n\
         try:\n\
         \x20   c.networks.create('x', driver='overlay')\n\
         \x20   raise SystemExit('an overlay network was created')\n\
         except docker.errors.APIError as e:\n\
         \x20   assert e.status_code == 400 and 'driver' in e.explanation, e\n\
         n.remove()\n\
         v.remove()\n\
         print('ok')\n",
    );
    assert_eq!(out.trim(), "ok");
}

#[test]
fn image_prune_and_search() {
    let d = Docker::new("prune");
    let out = d.py("assert c.api.search('busybox') == []\n\
         c.images.get('busybox').tag('extra', 'x')\n\
         r = c.api.prune_images(filters={'dangling': False})\n\
         assert any('extra:x' in e.get('Untagged', '') for e in r['ImagesDeleted']), r\n\
         assert r['SpaceReclaimed'] > 0, r\n\
         assert c.images.list() == [], [i.tags for i in c.images.list()]\n\
         print('ok')\n");
    assert_eq!(out.trim(), "ok");
    assert!(
        d.e.s.image_names().is_empty(),
        "names left: {:?}",
        d.e.s.image_names()
    );
}
