//! The network endpoints: list, inspect, create, remove, connect, disconnect, prune, and
//! what container create takes from `NetworkingConfig` (the engine's networks, the same
//! calls as `berth network …`).
//!
//! berth's default network (`berth`, bridge `berth0`) is Docker's `bridge`: it is listed
//! and found under that name.

use super::{blocking, filters, no_content, ApiError, ApiResult, Json};
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use engine::network::{Network, DEFAULT_NETWORK};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

type Query = BTreeMap<String, String>;

/// The network routes; `None` when the request is not one of them.
pub(crate) async fn route(
    e: &engine::Engine,
    method: &str,
    segs: &[&str],
    q: &Query,
    body: &Bytes,
) -> Option<ApiResult> {
    let e = e.clone();
    let q = q.clone();
    let id = segs.get(1).map(|s| s.to_string()).unwrap_or_default();
    Some(match (method, segs) {
        ("GET", ["networks"]) => blocking(move || list(&e, &q)).await,
        ("POST", ["networks", "create"]) => match body_json(body) {
            Ok(b) => blocking(move || create(&e, &b)).await,
            Err(x) => Err(x),
        },
        ("POST", ["networks", "prune"]) => blocking(move || prune(&e)).await,
        ("GET", ["networks", _]) => {
            blocking(move || {
                let n = find(&e, &id)?;
                Ok(Json(describe(&e, &n)).into_response())
            })
            .await
        }
        ("DELETE", ["networks", _]) => {
            blocking(move || {
                let n = find(&e, &id)?;
                e.remove_network(&n.name).map_err(net_err)?;
                tracing::info!(network = %n.name, "docker api: network removed");
                no_content()
            })
            .await
        }
        ("POST", ["networks", _, op @ ("connect" | "disconnect")]) => {
            let connect = *op == "connect";
            match body_json(body) {
                Ok(b) => blocking(move || connect_disconnect(&e, &id, connect, &b)).await,
                Err(x) => Err(x),
            }
        }
        _ => return None,
    })
}

pub(crate) fn body_json(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|err| ApiError::BadRequest(format!("invalid JSON body: {err}")))?;
    if !v.is_object() {
        return Err(ApiError::BadRequest("the body is not a JSON object".into()));
    }
    Ok(v)
}

/// Docker's name for a network of berth's.
fn docker_name(n: &str) -> &str {
    if n == DEFAULT_NETWORK {
        "bridge"
    } else {
        n
    }
}

/// berth's name for a network the client names (`bridge` is the default network).
pub(crate) fn berth_name(n: &str) -> &str {
    if n == "bridge" {
        DEFAULT_NETWORK
    } else {
        n
    }
}

/// Engine errors with the network's words (404 for a missing one).
fn net_err(x: engine::error::Error) -> ApiError {
    match x {
        engine::error::Error::NotFound(n) => ApiError::NotFound(format!("{n} not found")),
        x => x.into(),
    }
}

fn find(e: &engine::Engine, id: &str) -> Result<Network, ApiError> {
    e.network(berth_name(id)).map_err(net_err)
}

/// A network as Docker's `NetworkResource`.
fn describe(e: &engine::Engine, n: &Network) -> Value {
    let mut containers = serde_json::Map::new();
    for c in e.list(true).unwrap_or_default() {
        for a in e.attachments(&c.id).unwrap_or_default() {
            if a.network == n.name {
                containers.insert(
                    c.id.clone(),
                    json!({
                        "Name": c.name,
                        "EndpointID": "",
                        "MacAddress": a.mac,
                        "IPv4Address": format!("{}/{}", a.ip, n.subnet.prefix),
                        "IPv6Address": "",
                    }),
                );
            }
        }
    }
    let mut ipam = json!({"Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string()});
    if let Some(r) = &n.ip_range {
        ipam["IPRange"] = json!(r.to_string());
    }
    json!({
        "Name": docker_name(&n.name),
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": {}, "Config": [ipam]},
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        // Only options the client set (compose recreates a network whose options differ
        // from its file's); berth takes none.
        "Options": {},
        "Labels": n.labels,
    })
}

fn list(e: &engine::Engine, q: &Query) -> ApiResult {
    let f = filters::of_query(q, &["name", "id", "label", "driver", "type", "scope"])?;
    // The default network exists for Docker's clients from the start.
    e.network(DEFAULT_NETWORK).map_err(net_err)?;
    let out: Vec<Value> = e
        .networks()?
        .iter()
        .filter(|n| {
            f.iter().all(|(k, vals)| match k.as_str() {
                "label" => filters::labels_match(&n.labels, vals),
                _ => vals.iter().any(|v| match k.as_str() {
                    "name" => docker_name(&n.name).contains(v.as_str()),
                    "id" => n.id.starts_with(v.as_str()),
                    "driver" => v == "bridge",
                    "type" => {
                        (v == "builtin") == (n.name == DEFAULT_NETWORK)
                            || (v == "custom") == (n.name != DEFAULT_NETWORK)
                    }
                    "scope" => v == "local",
                    _ => false,
                }),
            })
        })
        .map(|n| describe(e, n))
        .collect();
    Ok(Json(out).into_response())
}

fn str_field<'a>(v: &'a Value, what: &str) -> Result<Option<&'a str>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s)),
        _ => Err(ApiError::BadRequest(format!("{what}: not a string"))),
    }
}

pub(crate) fn string_map(v: &Value, what: &str) -> Result<BTreeMap<String, String>, ApiError> {
    let mut m = BTreeMap::new();
    match v {
        Value::Null => {}
        Value::Object(o) => {
            for (k, x) in o {
                let x = x.as_str().ok_or_else(|| {
                    ApiError::BadRequest(format!("{what}: {k:?} is not a string"))
                })?;
                m.insert(k.clone(), x.to_string());
            }
        }
        _ => return Err(ApiError::BadRequest(format!("{what}: not an object"))),
    }
    Ok(m)
}

/// `POST /networks/create`: a bridge network (the only driver), its IPAM config's first
/// entry as the subnet, gateway and range.
fn create(e: &engine::Engine, b: &Value) -> ApiResult {
    let name = str_field(&b["Name"], "Name")?
        .ok_or_else(|| ApiError::BadRequest("network create: Name is missing".into()))?;
    match str_field(&b["Driver"], "Driver")? {
        None | Some("bridge") => {}
        Some(d) => {
            return Err(ApiError::BadRequest(format!(
                "network driver {d:?} is not supported: berth's networks are bridges (bridge)"
            )))
        }
    }
    if b["EnableIPv6"].as_bool() == Some(true) {
        return Err(ApiError::BadRequest(
            "EnableIPv6: berth's networks are IPv4 only".into(),
        ));
    }
    if matches!(name, "bridge" | "host" | "none") {
        return Err(ApiError::Conflict(format!(
            "network {name} is a predefined network and cannot be created"
        )));
    }
    let configs = match &b["IPAM"]["Config"] {
        Value::Null => vec![],
        Value::Array(a) => a.clone(),
        _ => return Err(ApiError::BadRequest("IPAM.Config: not a list".into())),
    };
    if configs.len() > 1 {
        return Err(ApiError::BadRequest(
            "IPAM.Config: berth's networks have one subnet".into(),
        ));
    }
    let c = configs.first().cloned().unwrap_or(Value::Null);
    let opts = engine::network::CreateOpts {
        subnet: str_field(&c["Subnet"], "IPAM.Config.Subnet")?.map(str::to_string),
        gateway: str_field(&c["Gateway"], "IPAM.Config.Gateway")?.map(str::to_string),
        ip_range: str_field(&c["IPRange"], "IPAM.Config.IPRange")?.map(str::to_string),
        internal: b["Internal"].as_bool().unwrap_or(false),
        labels: string_map(&b["Labels"], "Labels")?,
    };
    // Names are unique in berth (CheckDuplicate or not): an existing one is a conflict.
    let n = e.create_network(name, &opts).map_err(|x| match x {
        engine::error::Error::Conflict(m) if m.contains("already exists") => {
            ApiError::Conflict(format!("network with name {name} already exists"))
        }
        x => net_err(x),
    })?;
    tracing::info!(network = %n.name, subnet = %n.subnet, "docker api: network created");
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": n.id, "Warning": ""})),
    )
        .into_response())
}

/// `IPAMConfig.IPv4Address` of an endpoint config.
fn endpoint_ip(ep: &Value) -> Result<Option<Ipv4Addr>, ApiError> {
    str_field(&ep["IPAMConfig"]["IPv4Address"], "IPAMConfig.IPv4Address")?
        .map(|s| {
            s.parse().map_err(|_| {
                ApiError::BadRequest(format!("IPAMConfig.IPv4Address {s:?}: not an IPv4 address"))
            })
        })
        .transpose()
}

fn aliases(ep: &Value) -> Result<Vec<String>, ApiError> {
    super::strs(&ep["Aliases"], "EndpointConfig.Aliases")
}

fn connect_disconnect(e: &engine::Engine, id: &str, connect: bool, b: &Value) -> ApiResult {
    let n = find(e, id)?;
    let ctr = str_field(&b["Container"], "Container")?
        .ok_or_else(|| ApiError::BadRequest("Container is missing".into()))?;
    // The container's errors are the container's (404 No such container).
    let c = e.inspect(ctr)?;
    if connect {
        let ep = &b["EndpointConfig"];
        // The container's own network (compose connects it again after create, with the
        // aliases create had and the short ID): nothing to do when it asks for no more.
        if let Ok(engine::network::Mode::Network(own)) =
            engine::network::Mode::parse(&c.spec.network.mode)
        {
            if own == n.name {
                let short: String = c.id.chars().take(12).collect();
                let extra: Vec<String> = aliases(ep)?
                    .into_iter()
                    .filter(|a| *a != short && !c.spec.network.aliases.contains(a))
                    .collect();
                if extra.is_empty()
                    && endpoint_ip(ep)?.is_none_or(|ip| c.spec.network.ip == Some(ip))
                {
                    return Ok(StatusCode::OK.into_response());
                }
                return Err(ApiError::Conflict(format!(
                    "container {} is already connected to network {} (its own): new aliases \
                     or addresses need a new container",
                    c.name,
                    docker_name(&n.name)
                )));
            }
        }
        let a = e
            .connect_ip(&n.name, &c.id, &aliases(ep)?, endpoint_ip(ep)?)
            .map_err(net_err)?;
        tracing::info!(network = %n.name, container = %c.name, ip = %a.ip, "docker api: connected");
    } else {
        e.disconnect(&n.name, &c.id).map_err(net_err)?;
        tracing::info!(network = %n.name, container = %c.name, "docker api: disconnected");
    }
    Ok(StatusCode::OK.into_response())
}

/// `POST /networks/prune`: the user networks no container is attached to.
fn prune(e: &engine::Engine) -> ApiResult {
    let mut gone = Vec::new();
    for n in e.networks()? {
        if n.name == DEFAULT_NETWORK || !e.network_users(&n.name)?.is_empty() {
            continue;
        }
        match e.remove_network(&n.name) {
            Ok(_) => gone.push(n.name),
            // Joined by a container meanwhile: kept.
            Err(engine::error::Error::Conflict(_)) => {}
            Err(x) => return Err(x.into()),
        }
    }
    Ok(Json(json!({"NetworksDeleted": gone})).into_response())
}

/// Inspect's `NetworkSettings.Networks`: the attachments, and the container's own network
/// before it has one (created, not started: no address yet), as Docker shows them. On a
/// user network the aliases include the container's short ID, as Docker's; berth's
/// resolver answers the container's name and aliases.
pub(crate) fn endpoints(
    c: &engine::Container,
    atts: &[engine::network::Attachment],
) -> serde_json::Map<String, Value> {
    let short: String = c.id.chars().take(12).collect();
    let with_short = |net: &str, aliases: &[String]| -> Vec<String> {
        let mut a = aliases.to_vec();
        if net != DEFAULT_NETWORK && !a.contains(&short) {
            a.push(short.clone());
        }
        a
    };
    let mut m: serde_json::Map<String, Value> = atts
        .iter()
        .map(|a| {
            (
                docker_name(&a.network).to_string(),
                json!({
                    "IPAddress": a.ip.to_string(),
                    "MacAddress": a.mac,
                    "Aliases": with_short(&a.network, &a.aliases),
                    "NetworkID": "",
                }),
            )
        })
        .collect();
    if let Ok(engine::network::Mode::Network(own)) =
        engine::network::Mode::parse(&c.spec.network.mode)
    {
        if !atts.iter().any(|a| a.network == own) {
            m.insert(
                docker_name(&own).to_string(),
                json!({
                    "IPAddress": "",
                    "MacAddress": "",
                    "Aliases": with_short(&own, &c.spec.network.aliases),
                    "NetworkID": "",
                }),
            );
        }
    }
    m
}

/// Container create's `HostConfig.NetworkMode` and `NetworkingConfig.EndpointsConfig`:
/// the container's network (the mode, else the one endpoint), its aliases and address.
/// Endpoints on other networks than the container's own are refused (berth connects more
/// with `POST /networks/{id}/connect`).
pub(crate) fn create_opts(b: &Value, net: &mut engine::network::NetOpts) -> Result<(), ApiError> {
    let eps = match &b["NetworkingConfig"]["EndpointsConfig"] {
        Value::Null => return Ok(()),
        Value::Object(o) => o.clone(),
        _ => {
            return Err(ApiError::BadRequest(
                "NetworkingConfig.EndpointsConfig: not an object".into(),
            ))
        }
    };
    if eps.is_empty() {
        return Ok(());
    }
    if matches!(net.mode.as_str(), "" | "default") && eps.len() == 1 {
        if let Some(k) = eps.keys().next() {
            net.mode = k.clone();
        }
    }
    let own = berth_name(&net.mode).to_string();
    for (k, ep) in &eps {
        let same = berth_name(k) == own
            || (matches!(own.as_str(), "" | "default") && berth_name(k) == DEFAULT_NETWORK);
        if !same {
            return Err(ApiError::BadRequest(format!(
                "NetworkingConfig: endpoint on network {k} is not the container's network {}: \
                 connect it after create",
                net.mode
            )));
        }
        net.aliases.extend(aliases(ep)?);
        if let Some(ip) = endpoint_ip(ep)? {
            net.ip = Some(ip);
        }
    }
    net.mode = berth_name(&net.mode).to_string();
    if net.mode == DEFAULT_NETWORK {
        // Docker keeps aliases to user networks; on the default bridge they mean nothing.
        net.aliases.clear();
        net.mode = String::new();
    }
    net.aliases.sort();
    net.aliases.dedup();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_set_the_network_and_aliases() {
        let b = json!({"NetworkingConfig": {"EndpointsConfig": {"p_default": {"Aliases": ["web", "abc"]}}}});
        let mut n = engine::network::NetOpts::default();
        create_opts(&b, &mut n).expect("one endpoint");
        assert_eq!(n.mode, "p_default");
        assert_eq!(n.aliases, vec!["abc".to_string(), "web".to_string()]);
        let mut n = engine::network::NetOpts {
            mode: "other".into(),
            ..Default::default()
        };
        assert!(create_opts(&b, &mut n).is_err());
    }
}
