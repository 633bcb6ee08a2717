//! The destination volume of a role: found again, or created with the source's parameters.

use std::collections::BTreeMap;

use osm_openstack::{Connection, NewVolume};

use super::super::{ImportError, Job};
use crate::state::{Kind, Side, VolumeTransfer};

/// The destination volume of a role: the one recorded by a previous run when it still exists, else
/// a new one. Returns its ID and whether it is new (nothing is assumed about what a new volume
/// holds: the sync proves every chunk).
pub(super) fn destination_volume(
    job: &mut Job,
    src: &Connection,
    dst: &Connection,
    t: &VolumeTransfer,
    boot_volume_prefix: Option<&str>,
) -> Result<(String, bool), ImportError> {
    let timeout = job.settings.timeout;
    if let Some(id) = &t.dst_volume_id {
        match dst.block_storage().get_volume(id) {
            Ok(v) if v.status != "error" => return Ok((v.id, false)),
            Ok(v) => {
                job.log(&format!(
                    "destination volume {} of the failed run is in error: replacing it",
                    v.id
                ));
                dst.block_storage().delete_volume(&v.id, false).map_err(
                    job.cloud_err(Side::Dst, format!("deleting volume {} in error", v.id)),
                )?;
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(job.cloud_err(Side::Dst, format!("reading volume {id}"))(e)),
        }
        if let Some(c) = job.state.created.iter_mut().find(|c| {
            c.side == Side::Dst && c.kind == Kind::Volume && c.role == t.role && !c.deleted
        }) {
            c.deleted = true;
        }
    }
    let (name, description, volume_type, az, image_meta) =
        volume_params(job, &t.role, boot_volume_prefix);
    let mut meta = job.transfer_metadata();
    if let Some(s) = &t.source_volume_id {
        meta.insert("osm_source_volume".into(), s.clone());
    }
    let planned_name = name.clone();
    job.state
        .plan(Side::Dst, Kind::Volume, &t.role, &planned_name);
    job.save()?;
    let new = NewVolume {
        size: t.size_gib.max(1),
        name: Some(name),
        description,
        volume_type,
        availability_zone: az,
        metadata: meta,
        ..NewVolume::default()
    };
    let v = dst
        .block_storage()
        .create_volume(&new)
        .map_err(job.cloud_err(
            Side::Dst,
            format!("creating destination volume '{planned_name}'"),
        ))?;
    job.state.set_id(Side::Dst, Kind::Volume, &t.role, &v.id);
    job.state.volume_mut(&t.role).dst_volume_id = Some(v.id.clone());
    job.save()?;
    job.log(&format!(
        "created destination volume '{planned_name}' ({}, {} GiB)",
        v.id, t.size_gib
    ));
    dst.block_storage()
        .wait_for_volume(&v.id, &["available"], timeout)
        .map_err(job.cloud_err(
            Side::Dst,
            format!("waiting for destination volume {}", v.id),
        ))?;
    if t.role == "boot" {
        dst.block_storage()
            .set_volume_bootable(&v.id, true)
            .map_err(job.cloud_err(Side::Dst, format!("marking volume {} bootable", v.id)))?;
        let mut image_meta = image_meta;
        if image_meta.is_empty() {
            if let Some(export) = &t.export_volume_id {
                if let Ok(ev) = src.block_storage().get_volume(export) {
                    image_meta = ev.volume_image_metadata;
                }
            }
        }
        image_meta.retain(|k, _| {
            !matches!(k.as_str(), "image_id" | "checksum" | "size" | "image_name")
                && !k.starts_with("osm_")
        });
        if !image_meta.is_empty() {
            if let Err(e) = dst
                .block_storage()
                .set_volume_image_metadata(&v.id, &image_meta)
            {
                job.log(&format!(
                    "could not copy the boot volume's image metadata: {e}"
                ));
            }
        }
    }
    Ok((v.id, true))
}

type VolumeParams = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    BTreeMap<String, String>,
);

/// Name, description, type, AZ and image metadata of a role's destination volume.
fn volume_params(job: &Job, role: &str, boot_volume_prefix: Option<&str>) -> VolumeParams {
    let s = &job.server;
    let to_strings = |m: &Option<BTreeMap<String, serde_json::Value>>| -> BTreeMap<String, String> {
        m.iter()
            .flatten()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect()
    };
    if role == "boot" {
        let bp = &s.migration_params.boot_volume_params;
        let src = s.boot_volume();
        let name = bp
            .name
            .clone()
            .or_else(|| src.and_then(|v| v.params.name.clone()))
            .unwrap_or_else(|| match boot_volume_prefix {
                Some(p) => format!("{p}{}", s.params.name),
                None => format!("{}-boot", s.params.name),
            });
        return (
            name,
            bp.description
                .clone()
                .or_else(|| src.and_then(|v| v.params.description.clone())),
            bp.volume_type
                .clone()
                .or_else(|| src.and_then(|v| v.params.volume_type.clone())),
            bp.availability_zone
                .clone()
                .or_else(|| src.and_then(|v| v.params.availability_zone.clone())),
            src.map(|v| to_strings(&v.params.volume_image_metadata))
                .unwrap_or_default(),
        );
    }
    let index: usize = role
        .strip_prefix("data-")
        .and_then(|i| i.parse().ok())
        .unwrap_or(0);
    let v = s.additional_volumes().get(index).map(|v| (*v).clone());
    match v {
        Some(v) => (
            v.params
                .name
                .clone()
                .unwrap_or_else(|| format!("{}-{role}", s.params.name)),
            v.params.description.clone(),
            v.params.volume_type.clone(),
            v.params.availability_zone.clone(),
            to_strings(&v.params.volume_image_metadata),
        ),
        None => (
            format!("{}-{role}", s.params.name),
            None,
            None,
            None,
            BTreeMap::new(),
        ),
    }
}
