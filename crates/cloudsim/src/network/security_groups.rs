//! Security groups and rules: the records, the project's `default` group, rendering, list,
//! show, create, update, delete.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{self, Ctx, JsonBody, Q};
use crate::sim::Sim;
use crate::util::Cidr;

use super::listing::{list_response, select_fields, sorted};
use super::{b, bad, body_of, conflict, n, not_found, owner, s, visible, Common, NetworkData};

/// A security group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecurityGroup {
    /// Common fields.
    #[serde(flatten)]
    pub c: Common,
    /// stateful.
    pub stateful: bool,
}

/// A security group rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SgRule {
    /// Common fields (name unused).
    #[serde(flatten)]
    pub c: Common,
    /// Group.
    pub security_group_id: String,
    /// ingress / egress.
    pub direction: String,
    /// IPv4 / IPv6.
    pub ethertype: String,
    /// Protocol.
    pub protocol: Option<String>,
    /// Port range.
    pub port_range_min: Option<u64>,
    /// Port range.
    pub port_range_max: Option<u64>,
    /// Remote prefix.
    pub remote_ip_prefix: Option<String>,
    /// Remote group.
    pub remote_group_id: Option<String>,
}

fn default_rule(
    seq: &mut u64,
    project: &str,
    sg: &str,
    direction: &str,
    ethertype: &str,
    remote_group: Option<&str>,
) -> SgRule {
    SgRule {
        c: Common::new(seq, project, String::new(), String::new()),
        security_group_id: sg.to_string(),
        direction: direction.into(),
        ethertype: ethertype.into(),
        protocol: None,
        port_range_min: None,
        port_range_max: None,
        remote_ip_prefix: None,
        remote_group_id: remote_group.map(str::to_string),
    }
}

/// Creates the project's `default` security group (egress anywhere, ingress from the group
/// itself, for IPv4 and IPv6) unless it exists; returns its id.
pub fn ensure_default_security_group(
    net: &mut NetworkData,
    project: &str,
    seq: &mut u64,
) -> String {
    if let Some(sg) = net
        .security_groups
        .values()
        .find(|g| g.c.name == "default" && g.c.project_id == project)
    {
        return sg.c.id.clone();
    }
    let sg = SecurityGroup {
        c: Common::new(
            seq,
            project,
            "default".into(),
            "Default security group".into(),
        ),
        stateful: true,
    };
    let id = sg.c.id.clone();
    for (dir, eth, remote) in [
        ("egress", "IPv4", None),
        ("egress", "IPv6", None),
        ("ingress", "IPv4", Some(id.as_str())),
        ("ingress", "IPv6", Some(id.as_str())),
    ] {
        let r = default_rule(seq, project, &id, dir, eth, remote);
        net.sg_rules.insert(r.c.id.clone(), r);
    }
    net.security_groups.insert(id.clone(), sg);
    id
}

/// Finds a security group by id, or by name in the project.
pub fn find_security_group<'a>(
    net: &'a NetworkData,
    project: &str,
    id_or_name: &str,
) -> Option<&'a SecurityGroup> {
    net.security_groups.get(id_or_name).or_else(|| {
        net.security_groups
            .values()
            .find(|g| g.c.name == id_or_name && g.c.project_id == project)
    })
}

/// A server's security groups as Nova's `os-security-groups` shows them: the groups of its ports
/// (in port order, each once), or the names it was created with when it has no port; each with its
/// ingress rules in Nova's shape.
pub fn nova_security_groups(
    net: &NetworkData,
    ports: &[String],
    names_without_ports: &[String],
    project_id: &str,
) -> Vec<Value> {
    let mut ids: Vec<&str> = Vec::new();
    for p in ports.iter().filter_map(|p| net.ports.get(p)) {
        for g in &p.security_groups {
            if !ids.contains(&g.as_str()) {
                ids.push(g);
            }
        }
    }
    let groups: Vec<&SecurityGroup> = if ports.is_empty() {
        names_without_ports
            .iter()
            .filter_map(|n| find_security_group(net, n, project_id))
            .collect()
    } else {
        ids.iter()
            .filter_map(|id| net.security_groups.get(*id))
            .collect()
    };
    groups
        .into_iter()
        .map(|g| {
            let mut rules: Vec<&SgRule> = net
                .sg_rules
                .values()
                .filter(|r| r.security_group_id == g.c.id && r.direction == "ingress")
                .collect();
            rules.sort_by_key(|r| r.c.seq);
            let rules: Vec<Value> = rules
                .iter()
                .map(|r| {
                    let group = r
                        .remote_group_id
                        .as_ref()
                        .and_then(|id| net.security_groups.get(id))
                        .map_or(
                            json!({}),
                            |rg| json!({"name": rg.c.name, "tenant_id": rg.c.project_id}),
                        );
                    let ip_range = r
                        .remote_ip_prefix
                        .as_ref()
                        .map_or(json!({}), |c| json!({"cidr": c}));
                    json!({
                        "id": r.c.id, "parent_group_id": g.c.id, "ip_protocol": r.protocol,
                        "from_port": r.port_range_min, "to_port": r.port_range_max,
                        "ip_range": ip_range, "group": group,
                    })
                })
                .collect();
            json!({
                "id": g.c.id, "name": g.c.name, "description": g.c.description,
                "tenant_id": g.c.project_id, "rules": rules,
            })
        })
        .collect()
}

fn render_sg(g: &SecurityGroup, net: &NetworkData) -> Value {
    let mut m = g.c.render();
    let mut rules: Vec<&SgRule> = net
        .sg_rules
        .values()
        .filter(|r| r.security_group_id == g.c.id)
        .collect();
    rules.sort_by_key(|r| r.c.seq);
    m.insert(
        "security_group_rules".into(),
        json!(rules.iter().map(|r| render_rule(r)).collect::<Vec<_>>()),
    );
    m.insert("stateful".into(), json!(g.stateful));
    m.insert("shared".into(), json!(false));
    Value::Object(m)
}

fn render_rule(r: &SgRule) -> Value {
    let mut m = r.c.render();
    m.remove("name");
    m.remove("tags");
    m.insert("security_group_id".into(), json!(r.security_group_id));
    m.insert("direction".into(), json!(r.direction));
    m.insert("ethertype".into(), json!(r.ethertype));
    m.insert("protocol".into(), json!(r.protocol));
    m.insert("port_range_min".into(), json!(r.port_range_min));
    m.insert("port_range_max".into(), json!(r.port_range_max));
    m.insert("remote_ip_prefix".into(), json!(r.remote_ip_prefix));
    m.insert("remote_group_id".into(), json!(r.remote_group_id));
    m.insert("remote_address_group_id".into(), Value::Null);
    m.insert(
        "normalized_cidr".into(),
        json!(r
            .remote_ip_prefix
            .as_ref()
            .and_then(|p| Cidr::parse(p))
            .map(|c| c.to_string())),
    );
    m.insert("belongs_to_default_sg".into(), Value::Null);
    Value::Object(m)
}

async fn list_sgs(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    let items = ctx.write(|c, seq| {
        ensure_default_security_group(&mut c.network, &ctx.project_id, seq);
        let net = &c.network;
        sorted(
            net.security_groups
                .values()
                .filter(|g| visible(&ctx, &g.c.project_id)),
            |g| g.c.seq,
        )
        .into_iter()
        .map(|g| render_sg(g, net))
        .collect::<Vec<_>>()
    });
    list_response(&ctx, &q, "security_groups", items)
}

async fn show_sg(ctx: Ctx, Path(id): Path<String>, q: Q) -> Result<Response, ApiError> {
    ctx.read(|c| {
        let g = c
            .network
            .security_groups
            .get(&id)
            .filter(|g| visible(&ctx, &g.c.project_id))
            .ok_or_else(|| not_found("SecurityGroup", &id))?;
        Ok(http::ok(
            json!({"security_group": select_fields(render_sg(g, &c.network), &q.all("fields"))}),
        ))
    })
}

async fn create_sg(ctx: Ctx, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let spec = body_of(&body, "security_group")?.clone();
    let project = owner(&ctx, &spec)?;
    let name = s(&spec, "name")?.unwrap_or_default();
    if name == "default" {
        return Err(conflict(
            "SecurityGroupDefaultAlreadyExists",
            "Default security group already exists.",
        ));
    }
    let description = s(&spec, "description")?.unwrap_or_default();
    let stateful = b(&spec, "stateful")?.unwrap_or(true);
    ctx.write(|c, seq| {
        ensure_default_security_group(&mut c.network, &project, seq);
        let mut com = Common::new(seq, &project, name, description);
        com.revision = 1;
        let g = SecurityGroup { c: com, stateful };
        let id = g.c.id.clone();
        for eth in ["IPv4", "IPv6"] {
            let r = default_rule(seq, &project, &id, "egress", eth, None);
            c.network.sg_rules.insert(r.c.id.clone(), r);
        }
        let v = render_sg(&g, &c.network);
        c.network.security_groups.insert(id, g);
        Ok(http::json(
            StatusCode::CREATED,
            json!({"security_group": v}),
        ))
    })
}

async fn update_sg(
    ctx: Ctx,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let spec = body_of(&body, "security_group")?.clone();
    ctx.write(|c, _| {
        let g = c
            .network
            .security_groups
            .get_mut(&id)
            .filter(|g| visible(&ctx, &g.c.project_id))
            .ok_or_else(|| not_found("SecurityGroup", &id))?;
        if let Some(v) = s(&spec, "name")? {
            g.c.name = v;
        }
        if let Some(v) = s(&spec, "description")? {
            g.c.description = v;
        }
        g.c.touch();
        let g = g.clone();
        Ok(http::ok(
            json!({"security_group": render_sg(&g, &c.network)}),
        ))
    })
}

async fn delete_sg(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        let net = &mut c.network;
        let g = net
            .security_groups
            .get(&id)
            .filter(|g| visible(&ctx, &g.c.project_id))
            .ok_or_else(|| not_found("SecurityGroup", &id))?;
        if g.c.name == "default" {
            return Err(conflict(
                "SecurityGroupCannotRemoveDefault",
                "Insufficient rights for removing default security group.",
            ));
        }
        if net.ports.values().any(|p| p.security_groups.contains(&id)) {
            return Err(conflict(
                "SecurityGroupInUse",
                format!("Security Group {id} in use."),
            ));
        }
        net.security_groups.remove(&id);
        net.sg_rules.retain(|_, r| r.security_group_id != id);
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

async fn list_rules(ctx: Ctx, q: Q) -> Result<Response, ApiError> {
    let items = ctx.read(|c| {
        sorted(
            c.network
                .sg_rules
                .values()
                .filter(|r| visible(&ctx, &r.c.project_id)),
            |r| r.c.seq,
        )
        .into_iter()
        .map(render_rule)
        .collect::<Vec<_>>()
    });
    list_response(&ctx, &q, "security_group_rules", items)
}

async fn show_rule(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.read(|c| {
        let r = c
            .network
            .sg_rules
            .get(&id)
            .ok_or_else(|| not_found("SecurityGroupRule", &id))?;
        Ok(http::ok(json!({"security_group_rule": render_rule(r)})))
    })
}

async fn create_rule(ctx: Ctx, JsonBody(body): JsonBody) -> Result<Response, ApiError> {
    let spec = body_of(&body, "security_group_rule")?.clone();
    let sg = s(&spec, "security_group_id")?.ok_or_else(|| {
        bad("Failed to parse request. Required attribute 'security_group_id' not specified")
    })?;
    let direction = s(&spec, "direction")?.ok_or_else(|| {
        bad("Failed to parse request. Required attribute 'direction' not specified")
    })?;
    if direction != "ingress" && direction != "egress" {
        return Err(bad(format!(
            "Invalid input for direction. Reason: {direction} is not in valid_values."
        )));
    }
    let ethertype = s(&spec, "ethertype")?.unwrap_or_else(|| "IPv4".into());
    let protocol = s(&spec, "protocol")?
        .map(|p| p.to_ascii_lowercase())
        .filter(|p| p != "any");
    let min = n(&spec, "port_range_min")?;
    let max = n(&spec, "port_range_max")?;
    let prefix = s(&spec, "remote_ip_prefix")?;
    let remote_group = s(&spec, "remote_group_id")?;
    let description = s(&spec, "description")?.unwrap_or_default();
    if let Some(p) = &prefix {
        if Cidr::parse(p).is_none() && p.parse::<IpAddr>().is_err() {
            return Err(bad(format!(
                "Invalid input for remote_ip_prefix. Reason: '{p}' is not a valid IP subnet."
            )));
        }
    }
    ctx.write(|c, seq| {
        let net = &mut c.network;
        let group = net
            .security_groups
            .get(&sg)
            .ok_or_else(|| not_found("SecurityGroup", &sg))?;
        let project = group.c.project_id.clone();
        let dup = net.sg_rules.values().find(|r| {
            r.security_group_id == sg
                && r.direction == direction
                && r.ethertype == ethertype
                && r.protocol == protocol
                && r.port_range_min == min
                && r.port_range_max == max
                && r.remote_ip_prefix == prefix
                && r.remote_group_id == remote_group
        });
        if let Some(d) = dup {
            return Err(conflict(
                "SecurityGroupRuleExists",
                format!("Security group rule already exists. Rule id is {}.", d.c.id),
            ));
        }
        let mut com = Common::new(seq, &project, String::new(), description);
        com.revision = 0;
        let r = SgRule {
            c: com,
            security_group_id: sg.clone(),
            direction,
            ethertype,
            protocol,
            port_range_min: min,
            port_range_max: max,
            remote_ip_prefix: prefix,
            remote_group_id: remote_group,
        };
        let v = render_rule(&r);
        net.sg_rules.insert(r.c.id.clone(), r);
        if let Some(g) = net.security_groups.get_mut(&sg) {
            g.c.touch();
        }
        Ok(http::json(
            StatusCode::CREATED,
            json!({"security_group_rule": v}),
        ))
    })
}

async fn delete_rule(ctx: Ctx, Path(id): Path<String>) -> Result<Response, ApiError> {
    ctx.write(|c, _| {
        c.network
            .sg_rules
            .remove(&id)
            .ok_or_else(|| not_found("SecurityGroupRule", &id))?;
        Ok(http::empty(StatusCode::NO_CONTENT))
    })
}

/// Routes of this resource family.
pub(super) fn routes() -> axum::Router<Arc<Sim>> {
    axum::Router::new()
        .route(
            "/network/v2.0/security-groups",
            get(list_sgs).post(create_sg),
        )
        .route(
            "/network/v2.0/security-groups/{id}",
            get(show_sg).put(update_sg).delete(delete_sg),
        )
        .route(
            "/network/v2.0/security-group-rules",
            get(list_rules).post(create_rule),
        )
        .route(
            "/network/v2.0/security-group-rules/{id}",
            get(show_rule).delete(delete_rule),
        )
}
