//! What a server create request asks for: its block device mappings and its networks, parsed
//! and checked as Nova checks them.

use std::net::IpAddr;

use serde_json::Value;

use crate::error::ApiError;
use crate::http::Mv;
use crate::util;

/// A parsed block device mapping from the request.
pub(super) struct BdmReq {
    pub(super) source: String,
    pub(super) dest: String,
    pub(super) uuid: Option<String>,
    pub(super) boot_index: Option<i64>,
    pub(super) size: Option<u64>,
    pub(super) delete_on_termination: bool,
    pub(super) volume_type: Option<String>,
    pub(super) tag: Option<String>,
    pub(super) device_name: Option<String>,
}

pub(super) fn parse_bdms(server: &Value) -> Result<Vec<BdmReq>, ApiError> {
    let Some(list) = server.get("block_device_mapping_v2") else {
        return Ok(vec![]);
    };
    let list = list.as_array().ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input for field/attribute block_device_mapping_v2. Value must be a list.",
        )
    })?;
    let mut out = Vec::new();
    for b in list {
        let source = util::opt_str(b, "source_type")?.unwrap_or_else(|| "blank".into());
        if !["image", "volume", "snapshot", "blank"].contains(&source.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute source_type. Value: {source}."
            )));
        }
        let dest = util::opt_str(b, "destination_type")?.unwrap_or_else(|| {
            if source == "blank" {
                "local".into()
            } else {
                "volume".into()
            }
        });
        let boot_index = match b.get("boot_index") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("none") => None,
            Some(Value::String(s)) => Some(
                s.parse()
                    .map_err(|_| ApiError::bad_request(format!("Invalid boot_index: {s}")))?,
            ),
            Some(_) => return Err(ApiError::bad_request("Invalid boot_index")),
        };
        out.push(BdmReq {
            uuid: util::opt_str(b, "uuid")?,
            boot_index,
            size: util::opt_u64(b, "volume_size")?,
            delete_on_termination: util::opt_bool(b, "delete_on_termination")?.unwrap_or(false),
            volume_type: util::opt_str(b, "volume_type")?,
            tag: util::opt_str(b, "tag")?,
            device_name: util::opt_str(b, "device_name")?,
            source,
            dest,
        });
    }
    Ok(out)
}

pub(super) fn bdm_invalid(msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Block Device Mapping is Invalid: {msg}"))
}

/// A parsed entry of `networks`.
pub(super) enum NetReq {
    Net {
        uuid: String,
        fixed_ip: Option<String>,
    },
    Port {
        id: String,
    },
}

pub(super) fn parse_networks(
    server: &Value,
    mv: Mv,
) -> Result<Option<Result<Vec<NetReq>, String>>, ApiError> {
    match server.get("networks") {
        None => {
            if mv.ge(2, 37) {
                return Err(ApiError::bad_request("Invalid input for field/attribute networks. Value: None. 'networks' is a required property"));
            }
            Ok(None)
        }
        Some(Value::String(s)) if s == "auto" || s == "none" => Ok(Some(Err(s.clone()))),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for n in items {
                if let Some(p) = util::opt_str(n, "port")? {
                    out.push(NetReq::Port { id: p });
                } else if let Some(u) = util::opt_str(n, "uuid")? {
                    let fixed = util::opt_str(n, "fixed_ip")?.or(util::opt_str(n, "fixed")?);
                    if let Some(ip) = &fixed {
                        if ip.parse::<IpAddr>().is_err() {
                            return Err(ApiError::bad_request(format!("Invalid input for field/attribute fixed_ip. Value: {ip}. '{ip}' is not a 'ip-address'")));
                        }
                    }
                    out.push(NetReq::Net {
                        uuid: u,
                        fixed_ip: fixed,
                    });
                } else {
                    return Err(ApiError::bad_request(
                        "Bad networks format: network uuid is not in proper format ()",
                    ));
                }
            }
            Ok(Some(Ok(out)))
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute networks. Value: {other}."
        ))),
    }
}
