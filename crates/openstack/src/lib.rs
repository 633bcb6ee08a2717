/*!
An OpenStack API client for osm's Ansible modules: blocking, small, and honest about failures.

# Overview

- [`Connection`] is one authenticated session with one cloud. Build it from the openstack.cloud
  module options ([`CloudOptions`]: `cloud`, `auth`, `region_name`, `interface`, `validate_certs`,
  `ca_cert`, `api_timeout`, ...), from a clouds.yaml cloud name ([`Connection::from_cloud`]), from
  `OS_CLOUD`/`OS_*` variables ([`Connection::from_env`]), or from a [`CloudConfig`] you fill in
  ([`CloudConfig::password`] needs only an auth URL and credentials).
- [`ConfigLoader`] finds clouds.yaml and secure.yaml on openstacksdk's search path
  (`OS_CLIENT_CONFIG_FILE`, `./`, `~/.config/openstack/`, `/etc/openstack/`) and reads `OS_*`
  variables; both the environment and the search path are injectable.
- Keystone v3 authentication happens once per connection, on the first call; the token is renewed
  shortly before it expires, or once when a service rejects it. [`AuthType`] lists the methods:
  password, token, application credential, TOTP and several methods at once (`v3multifactor`), and
  federated Keystone with an OpenID Connect provider (`v3oidcpassword`, `v3oidcclientcredentials`,
  `v3oidcaccesstoken`: the provider's token endpoint, found directly or through its discovery
  document, gives an access token that Keystone's `OS-FEDERATION` endpoint exchanges for an
  unscoped token, which is then scoped to the project).
- Service handles: [`Connection::identity`], [`Connection::compute`],
  [`Connection::block_storage`], [`Connection::image`], [`Connection::network`]. `list_*` calls
  follow every page; `get_*` fail with [`Error::NotFound`]; `find_*` take a name or an ID and
  return an `Option` (a name matching several fails with [`Error::Ambiguous`]); `wait_for_*`
  poll with backoff and fail fast on error states ([`Connection::wait_for_status`] is the generic
  form).
- Every failure is an [`Error`] that names the service, request, status, the cloud's fault message
  and request ID; secrets ([`Secret`]) never appear in `Debug`, `Display` or errors.

# HTTP behaviour

Requests go through reqwest's blocking client with rustls (ring provider) and the system's trust
store, plus `cacert`; `verify: false` disables verification. GET, PUT, DELETE and HEAD are retried
up to 3 times (0.5, 1, 2 s apart) on HTTP 500/502/503/504 and on connection resets and refusals;
POST and PATCH only when the connection could not be made, and each goes out on a new connection,
since a server may drop kept-alive connections (uwsgi-based deployments reset them) and a POST that
reached it cannot be safely repeated.

# Microversions

Compute calls ask for microversion 2.100 and block-storage calls for 3.66, negotiated down to the
cloud's maximum (read once per connection from the version document), but never below what a call
needs: 2.52 for tags at server create, 2.19 for a description, 2.79 for `delete_on_termination` on
attach, 2.55 for a flavor description, 2.2 for a keypair type, 3.3 for Cinder user messages. See
the [`microversion`] module.

# Example

```no_run
use osm_openstack::{CloudOptions, Connection};

# fn main() -> Result<(), osm_openstack::Error> {
let opts: CloudOptions = serde_json::from_str(r#"{"cloud": "src", "region_name": "RegionOne"}"#)
    .expect("valid options");
let conn = Connection::from_options(&opts)?;
for server in conn.compute().list_servers()? {
    println!("{} {} {}", server.id, server.name, server.status);
}
if let Some(vol) = conn.block_storage().find_volume("data-1")? {
    conn.block_storage().wait_for_volume(&vol.id, &["available"], std::time::Duration::from_secs(300))?;
}
# Ok(())
# }
```
*/

#![deny(missing_docs)]

pub use crate::auth::{DomainRef, TokenEntity, TokenInfo, TokenRole};
pub use crate::block_storage::{
    metadata_filter, BlockStorageApi, NewVolume, Snapshot, Volume, VolumeAttachmentInfo, VolumeType,
};
pub use crate::catalog::{CatalogEndpoint, CatalogService, Service};
pub use crate::common::{Query, ResourceKind};
pub use crate::compute::{
    Addresses, AttachedVolume, AvailabilityZone, BlockDeviceMapping, ComputeApi, FixedIp, Flavor,
    IdRef, InterfaceAttachment, Keypair, NameRef, NewFlavor, NewServer, Server, ServerAddress,
    ServerFault, ServerFlavor, ServerNetwork, UserData, VolumeAttachment,
};
pub use crate::config::{
    AuthMethod, AuthOptions, AuthType, CloudConfig, CloudEntry, CloudOptions, CloudRef,
    ConfigLoader, Interface, RegionEntry, RetryPolicy,
};
pub use crate::connection::{
    Connection, RequestLog, RequestRecord, CONNECT_TIMEOUT, DEFAULT_API_TIMEOUT,
};
pub use crate::error::{fault_message, Error, Result};
pub use crate::identity::{Domain, IdentityApi, Project};
pub use crate::image::{properties_patch, Image, ImageApi, NewImage};
pub use crate::microversion::Microversion;
pub use crate::network::{
    AllocationPool, ExternalGateway, FloatingIp, Network, NetworkApi, NewFloatingIp, NewNetwork,
    NewPort, NewRouter, NewSecurityGroupRule, NewSubnet, Port, PortFixedIp, QosPolicy, Router,
    SecurityGroup, SecurityGroupRule, Subnet, TaggedResource,
};
pub use crate::secret::{Secret, MASK};

mod auth;
mod block_storage;
mod catalog;
mod common;
mod compute;
mod config;
mod connection;
mod de;
mod error;
mod identity;
mod image;
pub mod microversion;
mod network;
mod resource;
mod secret;
