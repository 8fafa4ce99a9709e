//! `berth registry serve` through its HTTP API: the distribution-spec endpoints (blobs,
//! uploads, manifests, tags, referrers, mounts) and bad input. Each test starts its own
//! server on an ephemeral loopback port.

use berth_tests::api::*;
use berth_tests::oci::{error_code, noise, raw_request, sha256, Registry};
use serde_json::{json, Value};

#[test]
fn base_endpoint_and_api_version_header() {
    let reg = Registry::start(&[]);
    let r = client().get(reg.url("/v2/")).send().expect("GET /v2/");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        hdr(r.headers(), "docker-distribution-api-version"),
        "registry/2.0"
    );
}

#[test]
fn blob_monolithic_get_head_range_delete() {
    let reg = Registry::start(&[]);
    let c = client();
    let data = noise(7, 100_000);
    let d = push_blob(&c, &reg, "lib/blob", &data);
    let r = c
        .head(reg.url(&format!("/v2/lib/blob/blobs/{d}")))
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(hdr(r.headers(), "content-length"), "100000");
    assert_eq!(hdr(r.headers(), "docker-content-digest"), d);
    let r = c
        .get(reg.url(&format!("/v2/lib/blob/blobs/{d}")))
        .send()
        .expect("test value");
    assert_eq!(r.bytes().expect("response body").as_ref(), data.as_slice());
    let r = c
        .get(reg.url(&format!("/v2/lib/blob/blobs/{d}")))
        .header("range", "bytes=10-19")
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 206);
    assert_eq!(hdr(r.headers(), "content-range"), "bytes 10-19/100000");
    assert_eq!(r.bytes().expect("response body").as_ref(), &data[10..20]);
    let r = c
        .get(reg.url(&format!("/v2/lib/blob/blobs/{d}")))
        .header("range", "bytes=200000-")
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 416);
    // Another repository does not see the blob.
    expect_error(
        c.get(reg.url(&format!("/v2/lib/other/blobs/{d}"))),
        404,
        "BLOB_UNKNOWN",
    );
    let r = c
        .delete(reg.url(&format!("/v2/lib/blob/blobs/{d}")))
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 202);
    expect_error(
        c.get(reg.url(&format!("/v2/lib/blob/blobs/{d}"))),
        404,
        "BLOB_UNKNOWN",
    );
}

#[test]
fn chunked_upload_with_status_and_sha512() {
    let reg = Registry::start(&[]);
    let c = client();
    let data = noise(9, 300_000);
    let r = c
        .post(reg.url("/v2/chunks/blobs/uploads/"))
        .send()
        .expect("send request");
    assert_eq!(r.status().as_u16(), 202);
    let loc = hdr(r.headers(), "location");
    assert!(
        loc.starts_with("/v2/chunks/blobs/uploads/"),
        "location {loc}"
    );
    assert_eq!(hdr(r.headers(), "range"), "0-0");
    let mut off = 0;
    for chunk in data.chunks(128 * 1024) {
        let r = c
            .patch(reg.url(&loc))
            .header("content-type", "application/octet-stream")
            .header(
                "content-range",
                format!("{}-{}", off, off + chunk.len() - 1),
            )
            .body(chunk.to_vec())
            .send()
            .expect("test value");
        assert_eq!(r.status().as_u16(), 202, "PATCH at {off}");
        off += chunk.len();
        assert_eq!(hdr(r.headers(), "range"), format!("0-{}", off - 1));
    }
    let r = c.get(reg.url(&loc)).send().expect("send request");
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(hdr(r.headers(), "range"), format!("0-{}", data.len() - 1));
    // sha512 digests are verified too.
    use sha2::Digest as _;
    let d512 = format!("sha512:{:x}", sha2::Sha512::digest(&data));
    let r = c
        .put(reg.url(&format!("{loc}?digest={d512}")))
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 201, "{:?}", r.text());
    assert_eq!(hdr(r.headers(), "docker-content-digest"), d512);
    let r = c
        .get(reg.url(&format!("/v2/chunks/blobs/{d512}")))
        .send()
        .expect("test value");
    assert_eq!(r.bytes().expect("response body").as_ref(), data.as_slice());
    // The finished upload is gone.
    let (s, code) = status_code(c.get(reg.url(&loc)).send().expect("send request"));
    assert_eq!((s, code.as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
}

#[test]
fn wrong_digest_is_digest_invalid_and_nothing_is_stored() {
    let reg = Registry::start(&[]);
    let c = client();
    let data = b"the real content".to_vec();
    let claimed = sha256(b"something else");
    let r = c
        .post(reg.url(&format!("/v2/bad/digest/blobs/uploads/?digest={claimed}")))
        .body(data.clone())
        .send()
        .expect("test value");
    let (s, code) = status_code(r);
    assert_eq!((s, code.as_str()), (400, "DIGEST_INVALID"));
    for d in [claimed, sha256(&data)] {
        let r = c
            .head(reg.url(&format!("/v2/bad/digest/blobs/{d}")))
            .send()
            .expect("test value");
        assert_eq!(r.status().as_u16(), 404, "{d} must not exist");
    }
    let blobs = walk_files(&reg.root.join("blobs"));
    assert!(
        blobs.is_empty(),
        "blob files after a refused upload: {blobs:?}"
    );
    let uploads = walk_files(&reg.root.join("uploads"));
    assert!(
        uploads.is_empty(),
        "upload files left after a refused upload: {uploads:?}"
    );
    // Malformed digests are refused too.
    expect_error(
        c.post(reg.url("/v2/bad/digest/blobs/uploads/?digest=sha256:../../etc"))
            .body("x"),
        400,
        "DIGEST_INVALID",
    );
}

#[test]
fn out_of_order_and_truncated_chunks() {
    let reg = Registry::start(&[]);
    let c = client();
    let data = noise(11, 20_000);
    let loc = hdr(
        c.post(reg.url("/v2/ooo/blobs/uploads/"))
            .send()
            .expect("test value")
            .headers(),
        "location",
    );
    let r = c
        .patch(reg.url(&loc))
        .header("content-range", "0-9999")
        .body(data[..10_000].to_vec())
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 202);
    // A chunk that does not start where the last one ended: 416 with the current Range.
    let r = c
        .patch(reg.url(&loc))
        .header("content-range", "15000-19999")
        .body(data[15_000..].to_vec())
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 416);
    assert_eq!(hdr(r.headers(), "range"), "0-9999");
    // A large out-of-order chunk gets its 416 too (the server drains the refused body
    // rather than resetting the connection under the client).
    let big = noise(12, 2 << 20);
    let r = c
        .patch(reg.url(&loc))
        .header(
            "content-range",
            format!("5000000-{}", 5000000 + big.len() - 1),
        )
        .body(big)
        .send()
        .expect("send request");
    assert_eq!(r.status().as_u16(), 416);
    // A chunk whose length disagrees with its range: 416, nothing appended.
    let r = c
        .patch(reg.url(&loc))
        .header("content-range", "10000-19999")
        .body(data[10_000..12_000].to_vec())
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 416);
    let r = c.get(reg.url(&loc)).send().expect("send request");
    assert_eq!(hdr(r.headers(), "range"), "0-9999");
    // Finishing a truncated upload with the full blob's digest: DIGEST_INVALID, no blob.
    let d = sha256(&data);
    expect_error(
        c.put(reg.url(&format!("{loc}?digest={d}"))),
        400,
        "DIGEST_INVALID",
    );
    let r = c
        .head(reg.url(&format!("/v2/ooo/blobs/{d}")))
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 404);
    // PUT without ?digest= is refused; DELETE cancels an upload.
    let loc = hdr(
        c.post(reg.url("/v2/ooo/blobs/uploads/"))
            .send()
            .expect("test value")
            .headers(),
        "location",
    );
    let (s, code) = status_code(c.put(reg.url(&loc)).send().expect("send request"));
    assert_eq!((s, code.as_str()), (400, "DIGEST_INVALID"));
    assert_eq!(
        c.delete(reg.url(&loc))
            .send()
            .expect("send request")
            .status()
            .as_u16(),
        204
    );
    let (s, code) = status_code(c.get(reg.url(&loc)).send().expect("send request"));
    assert_eq!((s, code.as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
}

#[test]
fn invalid_names_are_name_invalid() {
    let reg = Registry::start(&[]);
    for path in [
        "/v2/a/../b/blobs/uploads/",
        "/v2/../b/blobs/uploads/",
        "/v2/Upper/case/blobs/uploads/",
        "/v2/a//b/blobs/uploads/",
        "/v2/a/b-/blobs/uploads/",
        "/v2/.hidden/blobs/uploads/",
    ] {
        let (status, body) = raw_request(&reg.addr, "POST", path);
        assert_eq!(
            (status, error_code(&body)),
            (400, "NAME_INVALID".to_string()),
            "POST {path}"
        );
    }
    let (status, body) = raw_request(&reg.addr, "GET", "/v2/a/../../etc/manifests/latest");
    assert_eq!((status, error_code(&body).as_str()), (400, "NAME_INVALID"));
    assert!(
        walk_files(&reg.root.join("repos")).is_empty(),
        "an invalid name created files"
    );
}

#[test]
fn manifests_tags_content_negotiation_and_deletes() {
    let reg = Registry::start(&[]);
    let c = client();
    let d = push_image(&c, &reg, "app/web", "v1", 1);
    // The same manifest under a second tag; and by digest.
    let body = c
        .get(reg.url("/v2/app/web/manifests/v1"))
        .header("accept", OCI_MANIFEST)
        .send()
        .expect("test value")
        .bytes()
        .expect("test value");
    assert_eq!(sha256(&body), d);
    let r = put_manifest(&c, &reg, "app/web", "stable", OCI_MANIFEST, &body);
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(hdr(r.headers(), "docker-content-digest"), d);
    assert_eq!(
        hdr(r.headers(), "location"),
        format!("/v2/app/web/manifests/{d}")
    );
    let r = c
        .head(reg.url(&format!("/v2/app/web/manifests/{d}")))
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(hdr(r.headers(), "content-type"), OCI_MANIFEST);
    assert_eq!(hdr(r.headers(), "content-length"), body.len().to_string());
    // Accept that excludes the type: 404; wildcard: 200.
    let r = c
        .get(reg.url("/v2/app/web/manifests/v1"))
        .header("accept", DOCKER_MANIFEST)
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 404);
    let r = c
        .get(reg.url("/v2/app/web/manifests/v1"))
        .header("accept", "*/*")
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 200);
    // Deleting one tag keeps the manifest for the other tag and its digest.
    assert_eq!(
        c.delete(reg.url("/v2/app/web/manifests/v1"))
            .send()
            .expect("test value")
            .status()
            .as_u16(),
        202
    );
    assert_eq!(
        c.get(reg.url("/v2/app/web/manifests/v1"))
            .send()
            .expect("test value")
            .status()
            .as_u16(),
        404
    );
    assert_eq!(
        c.get(reg.url("/v2/app/web/manifests/stable"))
            .send()
            .expect("test value")
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        c.get(reg.url(&format!("/v2/app/web/manifests/{d}")))
            .send()
            .expect("test value")
            .status()
            .as_u16(),
        200
    );
    // Deleting by digest removes it and the tags that named it.
    assert_eq!(
        c.delete(reg.url(&format!("/v2/app/web/manifests/{d}")))
            .send()
            .expect("test value")
            .status()
            .as_u16(),
        202
    );
    expect_error(
        c.get(reg.url("/v2/app/web/manifests/stable")),
        404,
        "MANIFEST_UNKNOWN",
    );
    expect_error(
        c.delete(reg.url(&format!("/v2/app/web/manifests/{d}"))),
        404,
        "MANIFEST_UNKNOWN",
    );
}

#[test]
fn docker_schema2_and_index_manifests() {
    let reg = Registry::start(&[]);
    let c = client();
    let cfg = b"{}".to_vec();
    let cd = push_blob(&c, &reg, "mixed", &cfg);
    let docker = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": cd, "size": 2},
        "layers": [],
    }))
    .expect("test value");
    let r = put_manifest(&c, &reg, "mixed", "docker", DOCKER_MANIFEST, &docker);
    assert_eq!(r.status().as_u16(), 201, "{:?}", r.text());
    let r = c
        .get(reg.url("/v2/mixed/manifests/docker"))
        .header("accept", DOCKER_MANIFEST)
        .send()
        .expect("test value");
    assert_eq!(hdr(r.headers(), "content-type"), DOCKER_MANIFEST);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": DOCKER_MANIFEST, "digest": sha256(&docker), "size": docker.len(), "platform": {"os": "linux", "architecture": "amd64"}}],
    }))
    .expect("test value");
    let r = put_manifest(&c, &reg, "mixed", "multi", OCI_INDEX, &index);
    assert_eq!(r.status().as_u16(), 201, "{:?}", r.text());
    let r = c
        .get(reg.url("/v2/mixed/manifests/multi"))
        .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
        .send()
        .expect("test value");
    assert_eq!(hdr(r.headers(), "content-type"), OCI_INDEX);
    assert_eq!(r.bytes().expect("response body").as_ref(), index.as_slice());
    // An index naming a manifest the repository lacks.
    let bad = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": sha256(b"nope"), "size": 4}],
    }))
    .expect("test value");
    let (s, code) = status_code(put_manifest(&c, &reg, "mixed", "bad", OCI_INDEX, &bad));
    assert_eq!((s, code.as_str()), (400, "MANIFEST_BLOB_UNKNOWN"));
}

#[test]
fn manifest_bad_input() {
    let reg = Registry::start(&[]);
    let c = client();
    let cfg = b"{}".to_vec();
    let cd = push_blob(&c, &reg, "badm", &cfg);
    // A layer the registry never saw.
    let m = manifest(
        &(cd.clone(), 2),
        &[(sha256(b"missing layer"), 13)],
        json!({}),
    );
    let (s, code) = status_code(put_manifest(&c, &reg, "badm", "v1", OCI_MANIFEST, &m));
    assert_eq!((s, code.as_str()), (400, "MANIFEST_BLOB_UNKNOWN"));
    assert_eq!(
        c.get(reg.url("/v2/badm/manifests/v1"))
            .send()
            .expect("test value")
            .status()
            .as_u16(),
        404
    );
    // A descriptor whose size is not its blob's.
    let lying = manifest(&(cd.clone(), 3), &[], json!({}));
    let (s, code) = status_code(put_manifest(&c, &reg, "badm", "v1", OCI_MANIFEST, &lying));
    assert_eq!((s, code.as_str()), (400, "MANIFEST_INVALID"));
    // Not JSON; mediaType disagreeing with Content-Type; digest reference mismatch.
    let (s, code) = status_code(put_manifest(
        &c,
        &reg,
        "badm",
        "v1",
        OCI_MANIFEST,
        b"not json",
    ));
    assert_eq!((s, code.as_str()), (400, "MANIFEST_INVALID"));
    let good = manifest(&(cd, 2), &[], json!({}));
    let (s, code) = status_code(put_manifest(&c, &reg, "badm", "v1", DOCKER_MANIFEST, &good));
    assert_eq!((s, code.as_str()), (400, "MANIFEST_INVALID"));
    let (s, code) = status_code(put_manifest(
        &c,
        &reg,
        "badm",
        &sha256(b"other"),
        OCI_MANIFEST,
        &good,
    ));
    assert_eq!((s, code.as_str()), (400, "DIGEST_INVALID"));
    // Oversized (> 4 MiB): refused before it is stored.
    let mut big = manifest(
        &(sha256(b"{}"), 2),
        &[],
        json!({"annotations": {"pad": "x".repeat(4 * 1024 * 1024)}}),
    );
    big.truncate(big.len());
    let r = put_manifest(&c, &reg, "badm", "big", OCI_MANIFEST, &big);
    let (s, code) = status_code(r);
    assert_eq!((s, code.as_str()), (413, "SIZE_INVALID"));
    assert_eq!(
        c.get(reg.url("/v2/badm/manifests/big"))
            .send()
            .expect("test value")
            .status()
            .as_u16(),
        404
    );
    // A bad tag.
    let (s, code) = status_code(put_manifest(&c, &reg, "badm", "-bad", OCI_MANIFEST, &good));
    assert_eq!((s, code.as_str()), (400, "MANIFEST_INVALID"));
}

/// spec.md "Pulling manifests": "If the manifest is not found in the repository, the
/// response code MUST be `404 Not Found`." A reference outside the tag grammar can never
/// have been pushed, so it names no manifest: the conformance suite pulls
/// `.INVALID_MANIFEST_NAME` and expects 404 (berth answered 400 MANIFEST_INVALID). Only a
/// malformed digest stays a 400.
#[test]
fn pull_of_a_reference_outside_the_tag_grammar_is_not_found() {
    let reg = Registry::start(&[]);
    let c = client();
    let d = push_image(&c, &reg, "lib/notag", "v1", 11);
    let bad = reg.url("/v2/lib/notag/manifests/.INVALID_MANIFEST_NAME");
    expect_error(c.get(&bad), 404, "MANIFEST_UNKNOWN");
    let r = c.head(&bad).send().expect("HEAD manifest");
    assert_eq!(r.status().as_u16(), 404);
    expect_error(c.delete(&bad), 404, "MANIFEST_UNKNOWN");
    expect_error(
        c.get(reg.url("/v2/lib/notag/manifests/sha256:totallywrong")),
        400,
        "DIGEST_INVALID",
    );
    // The repository itself is untouched: its tag still resolves to the manifest.
    let r = c
        .head(reg.url("/v2/lib/notag/manifests/v1"))
        .send()
        .expect("HEAD manifest");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(hdr(r.headers(), "docker-content-digest"), d);
}

#[test]
fn tags_list_pagination() {
    let reg = Registry::start(&[]);
    let c = client();
    let d = push_image(&c, &reg, "paged", "a", 3);
    let body = c
        .get(reg.url(&format!("/v2/paged/manifests/{d}")))
        .send()
        .expect("test value")
        .bytes()
        .expect("test value");
    for t in ["b", "c", "d", "e"] {
        assert_eq!(
            put_manifest(&c, &reg, "paged", t, OCI_MANIFEST, &body)
                .status()
                .as_u16(),
            201
        );
    }
    let v: Value = c
        .get(reg.url("/v2/paged/tags/list"))
        .send()
        .expect("test value")
        .json()
        .expect("test value");
    assert_eq!(
        v,
        json!({"name": "paged", "tags": ["a", "b", "c", "d", "e"]})
    );
    let r = c
        .get(reg.url("/v2/paged/tags/list?n=2"))
        .send()
        .expect("send request");
    assert_eq!(
        hdr(r.headers(), "link"),
        "</v2/paged/tags/list?n=2&last=b>; rel=\"next\""
    );
    assert_eq!(
        r.json::<Value>().expect("JSON body")["tags"],
        json!(["a", "b"])
    );
    let r = c
        .get(reg.url("/v2/paged/tags/list?n=2&last=b"))
        .send()
        .expect("test value");
    assert_eq!(
        r.json::<Value>().expect("JSON body")["tags"],
        json!(["c", "d"])
    );
    let r = c
        .get(reg.url("/v2/paged/tags/list?n=2&last=d"))
        .send()
        .expect("test value");
    assert!(
        r.headers().get("link").is_none(),
        "no Link on the last page"
    );
    assert_eq!(r.json::<Value>().expect("JSON body")["tags"], json!(["e"]));
    expect_error(
        c.get(reg.url("/v2/nothing/here/tags/list")),
        404,
        "NAME_UNKNOWN",
    );
}

#[test]
fn referrers_with_subject_and_artifact_type_filter() {
    let reg = Registry::start(&[]);
    let c = client();
    let subject = push_image(&c, &reg, "refs", "v1", 5);
    let subject_size = c
        .get(reg.url("/v2/refs/manifests/v1"))
        .send()
        .expect("test value")
        .bytes()
        .expect("test value")
        .len();
    let empty = push_blob(&c, &reg, "refs", b"{}");
    let mut digests = Vec::new();
    for (at, note) in [
        ("application/vnd.example.sbom", "sbom"),
        ("application/vnd.example.sig", "sig"),
    ] {
        let m = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": at,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size},
            "annotations": {"note": note},
        }))
        .expect("test value");
        let d = sha256(&m);
        let r = put_manifest(&c, &reg, "refs", &d, OCI_MANIFEST, &m);
        assert_eq!(r.status().as_u16(), 201, "{:?}", r.text());
        assert_eq!(
            hdr(r.headers(), "oci-subject"),
            subject,
            "OCI-Subject header"
        );
        digests.push(d);
    }
    let r = c
        .get(reg.url(&format!("/v2/refs/referrers/{subject}")))
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(hdr(r.headers(), "content-type"), OCI_INDEX);
    let v: Value = r.json().expect("JSON body");
    assert_eq!(v["manifests"].as_array().map(Vec::len), Some(2), "{v}");
    let r = c
        .get(reg.url(&format!(
            "/v2/refs/referrers/{subject}?artifactType=application/vnd.example.sig"
        )))
        .send()
        .expect("test value");
    assert_eq!(hdr(r.headers(), "oci-filters-applied"), "artifactType");
    let v: Value = r.json().expect("JSON body");
    let ms = v["manifests"].as_array().cloned().unwrap_or_default();
    assert_eq!(ms.len(), 1, "{v}");
    assert_eq!(ms[0]["digest"], json!(digests[1]));
    assert_eq!(ms[0]["annotations"]["note"], json!("sig"));
    // Deleting a referrer removes it from the list; an unknown subject lists nothing.
    c.delete(reg.url(&format!("/v2/refs/manifests/{}", digests[1])))
        .send()
        .expect("test value");
    let v: Value = c
        .get(reg.url(&format!("/v2/refs/referrers/{subject}")))
        .send()
        .expect("test value")
        .json()
        .expect("test value");
    assert_eq!(v["manifests"].as_array().map(Vec::len), Some(1));
    let r = c
        .get(reg.url(&format!("/v2/refs/referrers/{}", sha256(b"nothing"))))
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 200);
}

#[test]
fn cross_repository_mount() {
    let reg = Registry::start(&[]);
    let c = client();
    let data = noise(21, 50_000);
    let d = push_blob(&c, &reg, "src/repo", &data);
    let before = reg.metrics()["berth_registry_blob_bytes_received_total"];
    let r = c
        .post(reg.url(&format!(
            "/v2/dst/repo/blobs/uploads/?mount={d}&from=src/repo"
        )))
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 201);
    assert_eq!(
        hdr(r.headers(), "location"),
        format!("/v2/dst/repo/blobs/{d}")
    );
    assert_eq!(
        reg.metrics()["berth_registry_blob_bytes_received_total"],
        before,
        "a mount moved bytes"
    );
    let r = c
        .get(reg.url(&format!("/v2/dst/repo/blobs/{d}")))
        .send()
        .expect("test value");
    assert_eq!(r.bytes().expect("response body").len(), data.len());
    // Mounting from a repository that lacks the blob falls back to an upload session.
    let r = c
        .post(reg.url(&format!(
            "/v2/dst/repo/blobs/uploads/?mount={}&from=src/repo",
            sha256(b"absent")
        )))
        .send()
        .expect("test value");
    assert_eq!(r.status().as_u16(), 202);
}

/// A body of unknown length (chunked transfer encoding, no Content-Length).
fn chunked(data: Vec<u8>) -> reqwest::blocking::Body {
    reqwest::blocking::Body::new(std::io::Cursor::new(data))
}

#[test]
fn a_refused_chunk_leaves_the_upload_unchanged() {
    let reg = Registry::start(&[]);
    let c = client();
    let data = noise(90, 10);
    let loc = hdr(
        c.post(reg.url("/v2/refused/blobs/uploads/"))
            .send()
            .expect("POST upload")
            .headers(),
        "location",
    );
    let r = c
        .patch(reg.url(&loc))
        .header("content-range", "0-4")
        .body(data[..5].to_vec())
        .send()
        .expect("PATCH 0-4");
    assert_eq!(r.status().as_u16(), 202);
    // `5-9` with a 10-byte body of unknown length: refused, and nothing of it is kept.
    let r = c
        .patch(reg.url(&loc))
        .header("content-range", "5-9")
        .body(chunked(noise(91, 10)))
        .send()
        .expect("PATCH 5-9 with 10 bytes");
    let (s, code) = status_code(r);
    assert_eq!((s, code.as_str()), (400, "SIZE_INVALID"));
    let r = c.get(reg.url(&loc)).send().expect("upload status");
    assert_eq!(
        hdr(r.headers(), "range"),
        "0-4",
        "the refused chunk was kept"
    );
    // A short body is refused the same way.
    let r = c
        .patch(reg.url(&loc))
        .header("content-range", "5-9")
        .body(chunked(data[5..7].to_vec()))
        .send()
        .expect("PATCH 5-9 with 2 bytes");
    assert_eq!(status_code(r).0, 400);
    let r = c.get(reg.url(&loc)).send().expect("upload status");
    assert_eq!(hdr(r.headers(), "range"), "0-4", "the short chunk was kept");
    // The right chunk then completes the blob.
    let r = c
        .patch(reg.url(&loc))
        .header("content-range", "5-9")
        .body(data[5..].to_vec())
        .send()
        .expect("PATCH 5-9");
    assert_eq!(r.status().as_u16(), 202);
    let d = sha256(&data);
    let r = c
        .put(reg.url(&format!("{loc}?digest={d}")))
        .send()
        .expect("PUT");
    assert_eq!(r.status().as_u16(), 201, "{:?}", r.text());
}

#[test]
fn manifests_are_validated_against_their_media_type_and_served_nosniff() {
    let reg = Registry::start(&[]);
    let c = client();
    let cfg = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let cd = push_blob(&c, &reg, "strict/app", &cfg);
    let ld = push_blob(&c, &reg, "strict/app", b"layer");
    let good = manifest(&(cd.clone(), cfg.len()), &[(ld.clone(), 5)], json!({}));
    // An HTML page is not a manifest, whatever its Content-Type says.
    let html = br#"{"x":"<script>alert(1)</script>"}"#.to_vec();
    for mt in ["text/html", "application/json", OCI_MANIFEST] {
        let (s, code) = status_code(put_manifest(&c, &reg, "strict/app", "html", mt, &html));
        assert_eq!((s, code.as_str()), (400, "MANIFEST_INVALID"), "{mt}");
    }
    // A good manifest under a Content-Type that disagrees with it (no mediaType field).
    let mut v: Value = serde_json::from_slice(&good).expect("json");
    v.as_object_mut().expect("object").remove("mediaType");
    let bare = serde_json::to_vec(&v).expect("json");
    let (s, code) = status_code(put_manifest(
        &c,
        &reg,
        "strict/app",
        "t",
        "text/html",
        &bare,
    ));
    assert_eq!((s, code.as_str()), (400, "MANIFEST_INVALID"));
    let (s, code) = status_code(put_manifest(&c, &reg, "strict/app", "t", OCI_INDEX, &bare));
    assert_eq!((s, code.as_str()), (400, "MANIFEST_INVALID"));
    // Schema violations: a descriptor without size or mediaType, a bad artifactType.
    let bad = [
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd},
               "layers": []}),
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"digest": cd, "size": cfg.len()}, "layers": []}),
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "text/html; <script>",
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cfg.len()},
               "layers": []}),
        json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cfg.len()},
               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": -5}]}),
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"digest": cd}]}),
    ];
    for b in &bad {
        let body = serde_json::to_vec(b).expect("json");
        let mt = b["mediaType"].as_str().expect("mediaType");
        let (s, code) = status_code(put_manifest(&c, &reg, "strict/app", "bad", mt, &body));
        assert_eq!((s, code.as_str()), (400, "MANIFEST_INVALID"), "{b}");
    }
    // An artifact (an image manifest with a sane artifactType) is accepted.
    let art = manifest(
        &(cd.clone(), cfg.len()),
        &[(ld.clone(), 5)],
        json!({"artifactType": "application/vnd.example.sbom+json"}),
    );
    let r = put_manifest(&c, &reg, "strict/app", "sbom", OCI_MANIFEST, &art);
    assert_eq!(r.status().as_u16(), 201, "{:?}", r.text());
    // Every answer says nosniff: a manifest, a blob, an error.
    let r = put_manifest(&c, &reg, "strict/app", "v1", OCI_MANIFEST, &good);
    assert_eq!(r.status().as_u16(), 201, "{:?}", r.text());
    for path in [
        "/v2/strict/app/manifests/v1".to_string(),
        format!("/v2/strict/app/blobs/{ld}"),
        "/v2/strict/app/manifests/nope".to_string(),
        "/v2/".to_string(),
    ] {
        let r = c.get(reg.url(&path)).send().expect("GET");
        assert_eq!(
            hdr(r.headers(), "x-content-type-options"),
            "nosniff",
            "{path}"
        );
    }
}

#[test]
fn put_manifest_by_digest_with_tag_parameters() {
    let reg = Registry::start(&[]);
    let c = client();
    let d = push_image(&c, &reg, "tagparam/app", "base", 95);
    let body = c
        .get(reg.url("/v2/tagparam/app/manifests/base"))
        .header("accept", OCI_MANIFEST)
        .send()
        .expect("GET manifest")
        .bytes()
        .expect("body")
        .to_vec();
    // spec.md "Pushing Manifests with tags": `?tag=` may repeat; each is answered with OCI-Tag.
    let r = c
        .put(reg.url(&format!("/v2/tagparam/app/manifests/{d}?tag=v1&tag=latest")))
        .header("content-type", OCI_MANIFEST)
        .body(body.clone())
        .send()
        .expect("PUT by digest with tags");
    assert_eq!(r.status().as_u16(), 201);
    let mut tags: Vec<String> = r
        .headers()
        .get_all("oci-tag")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    tags.sort();
    assert_eq!(tags, ["latest", "v1"]);
    for t in ["v1", "latest"] {
        let r = c
            .head(reg.url(&format!("/v2/tagparam/app/manifests/{t}")))
            .header("accept", OCI_MANIFEST)
            .send()
            .expect("HEAD tag");
        assert_eq!(r.status().as_u16(), 200, "{t}");
        assert_eq!(hdr(r.headers(), "docker-content-digest"), d);
    }
    // A bad tag is refused before anything is stored; tags only go with a digest.
    expect_error(
        c.put(reg.url(&format!("/v2/tagparam/app/manifests/{d}?tag=-bad")))
            .header("content-type", OCI_MANIFEST)
            .body(body.clone()),
        400,
        "MANIFEST_INVALID",
    );
    expect_error(
        c.put(reg.url("/v2/tagparam/app/manifests/v2?tag=v3"))
            .header("content-type", OCI_MANIFEST)
            .body(body),
        400,
        "MANIFEST_INVALID",
    );
}
