//! Fixed answers clients ask for: extensions, availability zones, quotas.

use std::sync::Arc;

use axum::extract::Path;
use axum::response::Response;
use axum::routing::get;
use serde_json::{json, Map, Value};

use crate::http::{self, Ctx};
use crate::sim::Sim;

const EXTENSIONS: &[(&str, &str)] = &[
    ("agent", "agent"),
    ("allowed-address-pairs", "Allowed Address Pairs"),
    ("availability_zone", "Availability Zone"),
    ("binding", "Port Binding"),
    ("external-net", "Neutron external network"),
    ("ext-gw-mode", "Neutron L3 Configurable external gateway mode"),
    ("extra_dhcp_opt", "Neutron Extra DHCP options"),
    ("fip-port-details", "Floating IP Port Details Extension"),
    ("net-mtu", "Network MTU"),
    ("port-security", "Port Security"),
    ("project-id", "project_id field enabled"),
    ("provider", "Provider Network"),
    ("qos", "Quality of Service"),
    ("qos-fip", "Floating IP QoS"),
    ("quotas", "Quota management support"),
    ("router", "Neutron L3 Router"),
    ("security-group", "security-group"),
    ("standard-attr-description", "standard-attr-description"),
    ("standard-attr-revisions", "Resource revision numbers"),
    ("standard-attr-tag", "Tag support for resources with standard attribute: port, subnet, network, router, floatingip, security_group"),
    ("standard-attr-timestamp", "Resource timestamps"),
    ("stateful-security-group", "Stateful security group"),
    ("subnet_allocation", "Subnet Allocation"),
];

async fn extensions(_ctx: Ctx) -> Response {
    let items: Vec<Value> = EXTENSIONS
        .iter()
        .map(|(alias, name)| json!({"alias": alias, "name": name, "description": name, "updated": "2023-01-01T10:00:00-00:00", "links": []}))
        .collect();
    http::ok(json!({"extensions": items}))
}

async fn availability_zones(_ctx: Ctx) -> Response {
    http::ok(
        json!({"availability_zones": [{"name": "nova", "resource": "network", "state": "available"}, {"name": "nova", "resource": "router", "state": "available"}]}),
    )
}

const QUOTA_KEYS: &[&str] = &[
    "network",
    "subnet",
    "port",
    "router",
    "floatingip",
    "security_group",
    "security_group_rule",
    "rbac_policy",
    "subnetpool",
];

async fn quotas(_ctx: Ctx, Path(project): Path<String>) -> Response {
    let _ = project;
    let q: Map<String, Value> = QUOTA_KEYS
        .iter()
        .map(|k| (k.to_string(), json!(-1)))
        .collect();
    http::ok(json!({"quota": q}))
}

async fn quota_details(ctx: Ctx, Path(project): Path<String>) -> Response {
    let counts = ctx.read(|c| {
        let n = &c.network;
        let own = |p: &str| p == project;
        vec![
            (
                "network",
                n.networks.values().filter(|x| own(&x.c.project_id)).count(),
            ),
            (
                "subnet",
                n.subnets.values().filter(|x| own(&x.c.project_id)).count(),
            ),
            (
                "port",
                n.ports.values().filter(|x| own(&x.c.project_id)).count(),
            ),
            (
                "router",
                n.routers.values().filter(|x| own(&x.c.project_id)).count(),
            ),
            (
                "floatingip",
                n.floating_ips
                    .values()
                    .filter(|x| own(&x.c.project_id))
                    .count(),
            ),
            (
                "security_group",
                n.security_groups
                    .values()
                    .filter(|x| own(&x.c.project_id))
                    .count(),
            ),
            (
                "security_group_rule",
                n.sg_rules.values().filter(|x| own(&x.c.project_id)).count(),
            ),
            ("rbac_policy", 0),
            ("subnetpool", 0),
        ]
    });
    let q: Map<String, Value> = counts
        .into_iter()
        .map(|(k, used)| {
            (
                k.to_string(),
                json!({"limit": -1, "used": used, "reserved": 0}),
            )
        })
        .collect();
    http::ok(json!({"quota": q}))
}

/// Routes of this resource family.
pub(super) fn routes() -> axum::Router<Arc<Sim>> {
    axum::Router::new()
        .route("/network/v2.0/extensions", get(extensions))
        .route("/network/v2.0/availability_zones", get(availability_zones))
        .route("/network/v2.0/quotas/{project}", get(quotas))
        .route("/network/v2.0/quotas/{project}/details", get(quota_details))
}
