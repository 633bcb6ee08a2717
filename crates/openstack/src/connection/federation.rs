//! The federated login of the OpenID Connect auth types, as keystoneauth does it: an access token
//! from the provider (its token endpoint, given or read from its discovery document; none asked
//! for with `v3oidcaccesstoken`), exchanged at Keystone's `OS-FEDERATION` endpoint for an unscoped
//! token, which is then scoped to the configured project with the token method.

use serde_json::Value;

use crate::auth::body::rescope_body;
use crate::auth::oidc::{
    endpoint_from_discovery, federation_url, oauth_error, token_from_answer, token_request, Grant,
};
use crate::error::{rid, Error, Result};
use crate::secret::Secret;

use super::call::url_path;
use super::session::{read_token, Session};
use super::transport::request_id;
use super::Connection;

impl Connection {
    pub(super) fn federated_login(&self) -> Result<Session> {
        let a = &self.config.auth;
        let idp = a.identity_provider.clone().unwrap_or_default();
        let protocol = a.protocol.clone().unwrap_or_default();
        let access_token = match Grant::of(self.config.auth_type) {
            Some(grant) => self.oidc_access_token(grant, &idp)?,
            None => a.access_token.clone().unwrap_or_default(),
        };
        let url = federation_url(&self.identity_base()?, &idp, &protocol)?;
        let answer = self.identity_post(&url, || {
            self.fresh
                .post(&url)
                .header("Accept", "application/json")
                .header("Authorization", format!("Bearer {}", access_token.expose()))
        })?;
        if !answer.ok() {
            return Err(Error::Federation {
                cloud: self.config.label(),
                url,
                principal: self.config.principal(),
                status: answer.status,
                message: format!(
                    "{}{}",
                    self.config.scrub(&answer.fault(), &[access_token.expose()]),
                    rid(&request_id(&answer.headers))
                ),
            });
        }
        let path = url_path(&url).unwrap_or_else(|| url.clone());
        let unscoped = read_token(&answer.headers, &answer.bytes, path)?;
        match rescope_body(&self.config, unscoped.token.expose()) {
            Some(body) => {
                self.post_tokens(&body, &[access_token.expose(), unscoped.token.expose()])
            }
            None => Ok(unscoped),
        }
    }

    /// An access token (or ID token) from the provider's token endpoint.
    fn oidc_access_token(&self, grant: Grant, idp: &str) -> Result<Secret> {
        let cfg = &self.config;
        let a = &cfg.auth;
        let fail = |what: &'static str, url: &str, message: String| Error::Oidc {
            cloud: cfg.label(),
            identity_provider: idp.to_string(),
            what,
            url: url.to_string(),
            message,
        };
        let endpoint = match &a.access_token_endpoint {
            Some(e) => e.clone(),
            None => {
                let url = a.discovery_endpoint.clone().unwrap_or_default();
                let what = "discovery document";
                let answer = self
                    .send_unauthenticated("GET", &url, || {
                        self.fresh.get(&url).header("Accept", "application/json")
                    })
                    .map_err(|m| fail(what, &url, format!("did not answer: {m}")))?;
                if !answer.ok() {
                    return Err(fail(
                        what,
                        &url,
                        format!(
                            "could not be read: HTTP {}: {}",
                            answer.status,
                            cfg.scrub(&answer.fault(), &[])
                        ),
                    ));
                }
                let doc: Value = serde_json::from_slice(&answer.bytes)
                    .map_err(|e| fail(what, &url, format!("is not JSON: {e}")))?;
                endpoint_from_discovery(&doc, grant).map_err(|m| fail(what, &url, m))?
            }
        };
        let what = "token endpoint";
        let req = token_request(cfg, grant);
        let answer = self
            .send_unauthenticated("POST", &endpoint, || {
                let rb = self
                    .fresh
                    .post(&endpoint)
                    .header("Accept", "application/json")
                    .form(&req.form);
                match &req.basic {
                    Some((id, secret)) => rb.basic_auth(id, Some(secret)),
                    None => rb,
                }
            })
            .map_err(|m| fail(what, &endpoint, format!("did not answer: {m}")))?;
        if !answer.ok() {
            let who = match grant {
                Grant::Password => format!("user {:?}", a.username.as_deref().unwrap_or("")),
                Grant::ClientCredentials => {
                    format!("client {:?}", a.client_id.as_deref().unwrap_or(""))
                }
            };
            let why = oauth_error(&answer.bytes).unwrap_or_else(|| answer.fault());
            return Err(fail(
                what,
                &endpoint,
                format!(
                    "refused the {} grant for {who}: HTTP {}: {}",
                    grant.name(),
                    answer.status,
                    cfg.scrub(&why, &[])
                ),
            ));
        }
        let doc: Value = serde_json::from_slice(&answer.bytes).map_err(|e| {
            fail(
                what,
                &endpoint,
                format!("answered with something other than JSON: {e}"),
            )
        })?;
        token_from_answer(&doc, a.access_token_type.as_deref())
            .map(Secret::new)
            .map_err(|m| fail(what, &endpoint, m))
    }
}
