//! Finding and merging the configuration: the clouds.yaml and secure.yaml search path,
//! `OS_CLOUD` and the `OS_*` variables, and module options laid over a clouds.yaml entry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::de::parse_bool;
use crate::error::{Error, Result};
use crate::secret::Secret;

use super::resolve::resolve;
use super::types::{AuthOptions, CloudEntry, CloudOptions, CloudRef, Interface};
use super::CloudConfig;

/// Finds and reads cloud configuration. The environment and the search path are injectable, so
/// tests never read the real `HOME`.
#[derive(Clone, Debug)]
pub struct ConfigLoader {
    env: BTreeMap<String, String>,
    config_files: Vec<PathBuf>,
    secure_files: Vec<PathBuf>,
}

const CONFIG_NAMES: [&str; 3] = ["clouds.yaml", "clouds.yml", "clouds.json"];
const SECURE_NAMES: [&str; 3] = ["secure.yaml", "secure.yml", "secure.json"];

impl ConfigLoader {
    /// The process environment, the current directory, and openstacksdk's search path.
    pub fn from_process() -> ConfigLoader {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        ConfigLoader::with_env(std::env::vars(), &cwd)
    }

    /// The given environment and current directory. The search path is openstacksdk's:
    /// `$OS_CLIENT_CONFIG_FILE`, then `clouds.yaml`/`.yml`/`.json` in `cwd`,
    /// `$XDG_CONFIG_HOME/openstack` (default `$HOME/.config/openstack`) and `/etc/openstack`;
    /// secure.yaml likewise, starting with `$OS_CLIENT_SECURE_FILE`.
    pub fn with_env<I, K, V>(env: I, cwd: &Path) -> ConfigLoader
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let env: BTreeMap<String, String> =
            env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        let mut dirs = vec![cwd.to_path_buf()];
        let user_dir = match (
            env.get("XDG_CONFIG_HOME").filter(|s| !s.is_empty()),
            env.get("HOME").filter(|s| !s.is_empty()),
        ) {
            (Some(x), _) => Some(PathBuf::from(x).join("openstack")),
            (None, Some(h)) => Some(PathBuf::from(h).join(".config").join("openstack")),
            (None, None) => None,
        };
        dirs.extend(user_dir);
        dirs.push(PathBuf::from("/etc/openstack"));
        let files = |first: Option<&String>, names: &[&str]| {
            let mut v: Vec<PathBuf> = first
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .into_iter()
                .collect();
            for d in &dirs {
                for n in names {
                    v.push(d.join(n));
                }
            }
            v
        };
        let config_files = files(env.get("OS_CLIENT_CONFIG_FILE"), &CONFIG_NAMES);
        let secure_files = files(env.get("OS_CLIENT_SECURE_FILE"), &SECURE_NAMES);
        ConfigLoader {
            env,
            config_files,
            secure_files,
        }
    }

    /// Replaces the search path (first existing file wins).
    pub fn with_search_path(
        mut self,
        config_files: Vec<PathBuf>,
        secure_files: Vec<PathBuf>,
    ) -> ConfigLoader {
        self.config_files = config_files;
        self.secure_files = secure_files;
        self
    }

    /// Candidate clouds.yaml files, in search order.
    pub fn config_files(&self) -> &[PathBuf] {
        &self.config_files
    }

    /// Candidate secure.yaml files, in search order.
    pub fn secure_files(&self) -> &[PathBuf] {
        &self.secure_files
    }

    /// Resolves module options into a cloud (see [`CloudOptions`] for the rules).
    pub fn load(&self, opts: &CloudOptions) -> Result<CloudConfig> {
        let (name, mut entry) = match &opts.cloud {
            Some(CloudRef::Config(entry)) => {
                let given = [
                    ("auth", opts.auth.is_some()),
                    ("auth_type", opts.auth_type.is_some()),
                    ("region_name", opts.region_name.is_some()),
                    ("validate_certs", opts.validate_certs.is_some()),
                    ("ca_cert", opts.ca_cert.is_some()),
                    ("client_cert", opts.client_cert.is_some()),
                    ("client_key", opts.client_key.is_some()),
                    ("api_timeout", opts.api_timeout.is_some()),
                    (
                        "interface",
                        opts.interface.is_some_and(|i| i != Interface::Public),
                    ),
                ];
                if let Some((param, _)) = given.iter().find(|(_, g)| *g) {
                    return Err(Error::config(format!(
                        "a cloud config dict was given as `cloud` and also `{param}`; with a cloud dict, put {param} into the dict"
                    )));
                }
                (None, (**entry).clone())
            }
            Some(CloudRef::Name(name)) => (Some(name.clone()), self.named_entry(name)?),
            None if opts.auth.is_some() => (None, CloudEntry::default()),
            None => match self.env.get("OS_CLOUD").filter(|s| !s.is_empty()) {
                Some(name) => (Some(name.clone()), self.named_entry(name)?),
                None => (None, self.env_entry()?),
            },
        };
        if let Some(auth) = &opts.auth {
            entry
                .auth
                .get_or_insert_with(AuthOptions::default)
                .merge_from(auth);
        }
        let set = |slot: &mut Option<String>, v: &Option<String>| {
            if v.is_some() {
                *slot = v.clone();
            }
        };
        set(&mut entry.auth_type, &opts.auth_type);
        set(&mut entry.region_name, &opts.region_name);
        set(&mut entry.cacert, &opts.ca_cert);
        set(&mut entry.cert, &opts.client_cert);
        set(&mut entry.key, &opts.client_key);
        set(&mut entry.api_timeout, &opts.api_timeout);
        if let Some(i) = opts.interface {
            entry.interface = Some(i.as_str().to_string());
        }
        if let Some(v) = opts.validate_certs {
            entry.verify = Some(v);
            entry.insecure = None;
        }
        resolve(name, entry)
    }

    /// The cloud named `OS_CLOUD`, else the one the `OS_*` variables describe.
    pub fn default_cloud(&self) -> Result<CloudConfig> {
        self.load(&CloudOptions::default())
    }

    /// A cloud from clouds.yaml (merged with secure.yaml).
    pub fn cloud(&self, name: &str) -> Result<CloudConfig> {
        resolve(Some(name.to_string()), self.named_entry(name)?)
    }

    fn first_existing<'a>(&self, files: &'a [PathBuf]) -> Option<&'a PathBuf> {
        files.iter().find(|p| p.is_file())
    }

    fn named_entry(&self, name: &str) -> Result<CloudEntry> {
        let Some(path) = self.first_existing(&self.config_files) else {
            let searched: Vec<String> = self
                .config_files
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            return Err(Error::config(format!(
                "cloud {name:?} was asked for, but no clouds.yaml was found (searched: {})",
                searched.join(", ")
            )));
        };
        let mut doc = read_yaml(path)?;
        if let Some(secure_path) = self.first_existing(&self.secure_files) {
            let secure = read_yaml(secure_path)?;
            merge_yaml(&mut doc, secure);
        }
        let clouds = doc.get("clouds").and_then(|c| c.as_mapping());
        let Some(clouds) = clouds else {
            return Err(Error::config(format!(
                "{} has no `clouds:` mapping",
                path.display()
            )));
        };
        let Some(entry) = clouds.get(name) else {
            let mut names: Vec<String> = clouds
                .keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect();
            names.sort();
            return Err(Error::config(format!(
                "cloud {name:?} is not in {} (it has: {})",
                path.display(),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )));
        };
        serde_yaml::from_value::<CloudEntry>(entry.clone())
            .map_err(|e| Error::config(format!("cloud {name:?} in {}: {}", path.display(), e)))
    }

    fn env_entry(&self) -> Result<CloudEntry> {
        let get = |k: &str| self.env.get(k).filter(|v| !v.is_empty()).cloned();
        let auth = AuthOptions {
            auth_url: get("OS_AUTH_URL"),
            username: get("OS_USERNAME").or_else(|| get("OS_USER_NAME")),
            user_id: get("OS_USER_ID"),
            password: get("OS_PASSWORD").map(Secret::from),
            project_name: get("OS_PROJECT_NAME").or_else(|| get("OS_TENANT_NAME")),
            project_id: get("OS_PROJECT_ID").or_else(|| get("OS_TENANT_ID")),
            user_domain_name: get("OS_USER_DOMAIN_NAME"),
            user_domain_id: get("OS_USER_DOMAIN_ID"),
            project_domain_name: get("OS_PROJECT_DOMAIN_NAME"),
            project_domain_id: get("OS_PROJECT_DOMAIN_ID"),
            domain_name: get("OS_DOMAIN_NAME"),
            domain_id: get("OS_DOMAIN_ID"),
            token: get("OS_TOKEN").map(Secret::from),
            application_credential_id: get("OS_APPLICATION_CREDENTIAL_ID"),
            application_credential_name: get("OS_APPLICATION_CREDENTIAL_NAME"),
            application_credential_secret: get("OS_APPLICATION_CREDENTIAL_SECRET")
                .map(Secret::from),
            passcode: get("OS_PASSCODE").map(Secret::from),
            auth_methods: get("OS_AUTH_METHODS").map(|m| crate::de::split_csv(&m)),
            identity_provider: get("OS_IDENTITY_PROVIDER"),
            protocol: get("OS_PROTOCOL"),
            client_id: get("OS_CLIENT_ID"),
            client_secret: get("OS_CLIENT_SECRET").map(Secret::from),
            openid_scope: get("OS_OPENID_SCOPE"),
            access_token_endpoint: get("OS_ACCESS_TOKEN_ENDPOINT"),
            discovery_endpoint: get("OS_DISCOVERY_ENDPOINT"),
            access_token_type: get("OS_ACCESS_TOKEN_TYPE"),
            access_token: get("OS_ACCESS_TOKEN").map(Secret::from),
        };
        if auth.auth_url.is_none() {
            return Err(Error::config(
                "no cloud given: pass `cloud` or `auth`, set OS_CLOUD to a clouds.yaml cloud, or set OS_AUTH_URL and the other OS_* variables",
            ));
        }
        let insecure = match get("OS_INSECURE") {
            Some(v) => Some(
                parse_bool(&v)
                    .ok_or_else(|| Error::config(format!("OS_INSECURE={v:?} is not a boolean")))?,
            ),
            None => None,
        };
        Ok(CloudEntry {
            auth: Some(auth),
            auth_type: get("OS_AUTH_TYPE"),
            region_name: get("OS_REGION_NAME"),
            interface: get("OS_INTERFACE").or_else(|| get("OS_ENDPOINT_TYPE")),
            insecure,
            cacert: get("OS_CACERT"),
            cert: get("OS_CERT"),
            key: get("OS_KEY"),
            api_timeout: get("OS_API_TIMEOUT"),
            ..CloudEntry::default()
        })
    }
}

fn read_yaml(path: &Path) -> Result<serde_yaml::Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("cannot read {}: {e}", path.display())))?;
    serde_yaml::from_str(&text)
        .map_err(|e| Error::config(format!("cannot parse {}: {e}", path.display())))
}

/// Deep-merges `over` into `base`: mappings key by key, anything else replaced.
fn merge_yaml(base: &mut serde_yaml::Value, over: serde_yaml::Value) {
    match (base, over) {
        (serde_yaml::Value::Mapping(b), serde_yaml::Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge_yaml(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::time::Duration;

    use super::*;
    use crate::config::AuthType;

    const CLOUDS: &str = r#"
clouds:
  src:
    auth:
      auth_url: https://src.example:5000/v3
      username: alice
      project_name: proj
      user_domain_name: Default
      project_domain_id: default
    region_name: RegionOne
    interface: internal
    cacert: /etc/ssl/src.pem
  dst:
    auth:
      auth_url: https://dst.example:5000
      application_credential_id: ac1
    auth_type: v3applicationcredential
    verify: false
    regions: [R2, R3]
    compute_endpoint_override: https://nova.dst.example/v2.1
    block_storage_endpoint_override: https://cinder.dst.example/v3
"#;
    const SECURE: &str = r#"
clouds:
  src:
    auth:
      password: s3cret
  dst:
    auth:
      application_credential_secret: acsecret
"#;

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }
        fn write(&self, rel: &str, text: &str) -> PathBuf {
            let p = self.path(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, text).unwrap();
            p
        }
        /// Environment with HOME inside the temp dir; cwd is `<tmp>/cwd`.
        fn loader(&self, extra: &[(&str, &str)]) -> ConfigLoader {
            let home = self.path("home");
            let cwd = self.path("cwd");
            fs::create_dir_all(&cwd).unwrap();
            let mut env: Vec<(String, String)> = vec![("HOME".into(), home.display().to_string())];
            env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            let mut l = ConfigLoader::with_env(env, &cwd);
            // Keep the host's /etc/openstack out of tests.
            l.config_files.retain(|p| p.starts_with(self.dir.path()));
            l.secure_files.retain(|p| p.starts_with(self.dir.path()));
            l
        }
    }

    #[test]
    fn search_path_order() {
        let l = ConfigLoader::with_env(
            [("HOME", "/h"), ("OS_CLIENT_CONFIG_FILE", "/x/my.yaml")],
            Path::new("/cwd"),
        );
        let files: Vec<String> = l
            .config_files()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            files,
            [
                "/x/my.yaml",
                "/cwd/clouds.yaml",
                "/cwd/clouds.yml",
                "/cwd/clouds.json",
                "/h/.config/openstack/clouds.yaml",
                "/h/.config/openstack/clouds.yml",
                "/h/.config/openstack/clouds.json",
                "/etc/openstack/clouds.yaml",
                "/etc/openstack/clouds.yml",
                "/etc/openstack/clouds.json",
            ]
        );
        assert_eq!(l.secure_files()[0], PathBuf::from("/cwd/secure.yaml"));
        let l = ConfigLoader::with_env(
            [("HOME", "/h"), ("XDG_CONFIG_HOME", "/xdg")],
            Path::new("/cwd"),
        );
        assert_eq!(
            l.config_files()[3],
            PathBuf::from("/xdg/openstack/clouds.yaml")
        );
    }

    #[test]
    fn clouds_yaml_in_home_merged_with_secure_yaml() {
        let f = Fixture::new();
        f.write("home/.config/openstack/clouds.yaml", CLOUDS);
        f.write("home/.config/openstack/secure.yaml", SECURE);
        let l = f.loader(&[]);
        let src = l.cloud("src").unwrap();
        assert_eq!(src.name.as_deref(), Some("src"));
        assert_eq!(
            src.auth.password.as_ref().map(|p| p.expose()),
            Some("s3cret")
        );
        assert_eq!(src.auth.username.as_deref(), Some("alice"));
        assert_eq!(src.auth_type, AuthType::Password);
        assert_eq!(src.interface, Interface::Internal);
        assert_eq!(src.region_name.as_deref(), Some("RegionOne"));
        assert_eq!(src.cacert, Some(PathBuf::from("/etc/ssl/src.pem")));
        assert!(src.verify);

        let dst = l.cloud("dst").unwrap();
        assert_eq!(dst.auth_type, AuthType::ApplicationCredential);
        assert!(!dst.verify);
        assert_eq!(dst.region_name.as_deref(), Some("R2"));
        assert_eq!(
            dst.endpoint_overrides["compute"],
            "https://nova.dst.example/v2.1"
        );
        assert_eq!(
            dst.endpoint_overrides["block-storage"],
            "https://cinder.dst.example/v3"
        );
    }

    #[test]
    fn cwd_wins_over_home_and_env_file_wins_over_cwd() {
        let f = Fixture::new();
        f.write("home/.config/openstack/clouds.yaml", CLOUDS);
        f.write("cwd/clouds.yaml", "clouds:\n  only_cwd:\n    auth: {auth_url: http://cwd:5000, username: u, password: p}\n");
        let l = f.loader(&[]);
        assert!(l.cloud("only_cwd").is_ok());
        let err = l.cloud("src").unwrap_err().to_string();
        assert!(err.contains("cloud \"src\" is not in"), "{err}");
        assert!(err.contains("only_cwd"), "{err}");

        let explicit = f.write(
            "elsewhere/c.yaml",
            "clouds:\n  e:\n    auth: {auth_url: http://e:5000, username: u, password: p}\n",
        );
        let l = f.loader(&[("OS_CLIENT_CONFIG_FILE", explicit.to_str().unwrap())]);
        assert!(l.cloud("e").is_ok());
    }

    #[test]
    fn os_cloud_and_missing_file() {
        let f = Fixture::new();
        let l = f.loader(&[("OS_CLOUD", "src")]);
        let err = l.default_cloud().unwrap_err().to_string();
        assert!(err.contains("no clouds.yaml was found"), "{err}");
        f.write("home/.config/openstack/clouds.yaml", CLOUDS);
        f.write("home/.config/openstack/secure.yaml", SECURE);
        let cfg = f.loader(&[("OS_CLOUD", "src")]).default_cloud().unwrap();
        assert_eq!(cfg.name.as_deref(), Some("src"));
    }

    #[test]
    fn os_env_vars() {
        let f = Fixture::new();
        let l = f.loader(&[
            ("OS_AUTH_URL", "https://k:5000/v3"),
            ("OS_USERNAME", "bob"),
            ("OS_PASSWORD", "pw"),
            ("OS_PROJECT_ID", "p1"),
            ("OS_USER_DOMAIN_ID", "d1"),
            ("OS_REGION_NAME", "R"),
            ("OS_INTERFACE", "internalURL"),
            ("OS_INSECURE", "true"),
            ("OS_CACERT", "/ca.pem"),
        ]);
        let cfg = l.default_cloud().unwrap();
        assert_eq!(cfg.name, None);
        assert_eq!(cfg.auth.username.as_deref(), Some("bob"));
        assert_eq!(cfg.auth.project_id.as_deref(), Some("p1"));
        assert_eq!(cfg.auth.user_domain_id.as_deref(), Some("d1"));
        assert_eq!(cfg.interface, Interface::Internal);
        assert!(!cfg.verify);
        assert_eq!(cfg.cacert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(cfg.label(), "https://k:5000/v3");

        let l = f.loader(&[
            ("OS_AUTH_URL", "https://k:5000/v3"),
            ("OS_TOKEN", "tok"),
            ("OS_PROJECT_NAME", "p"),
        ]);
        assert_eq!(l.default_cloud().unwrap().auth_type, AuthType::Token);
        let l = f.loader(&[
            ("OS_AUTH_URL", "https://k:5000/v3"),
            ("OS_AUTH_TYPE", "v3applicationcredential"),
            ("OS_APPLICATION_CREDENTIAL_NAME", "ac"),
            ("OS_APPLICATION_CREDENTIAL_SECRET", "s"),
            ("OS_USERNAME", "u"),
        ]);
        assert_eq!(
            l.default_cloud().unwrap().auth_type,
            AuthType::ApplicationCredential
        );

        let err = f.loader(&[]).default_cloud().unwrap_err().to_string();
        assert!(err.contains("OS_CLOUD"), "{err}");
    }

    #[test]
    fn module_options() {
        let f = Fixture::new();
        f.write("home/.config/openstack/clouds.yaml", CLOUDS);
        f.write("home/.config/openstack/secure.yaml", SECURE);
        let l = f.loader(&[("OS_AUTH_URL", "https://ignored:5000")]);

        // A name, overridden by auth (key by key) and other options.
        let opts: CloudOptions = serde_json::from_value(serde_json::json!({
            "cloud": "src",
            "auth": {"project_name": "other"},
            "region_name": "R9",
            "validate_certs": false,
            "interface": "admin",
            "api_timeout": 30,
        }))
        .unwrap();
        let cfg = l.load(&opts).unwrap();
        assert_eq!(cfg.auth.project_name.as_deref(), Some("other"));
        assert_eq!(cfg.auth.username.as_deref(), Some("alice"));
        assert_eq!(cfg.region_name.as_deref(), Some("R9"));
        assert!(!cfg.verify);
        assert_eq!(cfg.interface, Interface::Admin);
        assert_eq!(cfg.api_timeout, Some(Duration::from_secs(30)));

        // A dict.
        let opts: CloudOptions = serde_json::from_value(serde_json::json!({
            "cloud": {"auth": {"auth_url": "http://d:5000", "username": "u", "password": 1234, "project_id": 42},
                      "region_name": "RD", "verify": "no", "cacert": "/c.pem"},
        }))
        .unwrap();
        let cfg = l.load(&opts).unwrap();
        assert_eq!(cfg.auth.password.as_ref().unwrap().expose(), "1234");
        assert_eq!(cfg.auth.project_id.as_deref(), Some("42"));
        assert!(!cfg.verify);
        assert_eq!(cfg.region_name.as_deref(), Some("RD"));

        // A dict plus another option fails, naming it.
        let opts: CloudOptions = serde_json::from_value(serde_json::json!({
            "cloud": {"auth": {"auth_url": "http://d:5000", "username": "u", "password": "p"}},
            "region_name": "x",
        }))
        .unwrap();
        assert!(l
            .load(&opts)
            .unwrap_err()
            .to_string()
            .contains("`region_name`"));

        // auth alone, with aliases.
        let opts: CloudOptions = serde_json::from_value(serde_json::json!({
            "auth": {"auth_url": "http://a:5000/v3", "username": "u", "password": "p", "tenant_name": "t"},
            "verify": true, "cacert": "/x.pem", "endpoint_type": "internal",
        }))
        .unwrap();
        let cfg = l.load(&opts).unwrap();
        assert_eq!(cfg.auth.project_name.as_deref(), Some("t"));
        assert_eq!(cfg.cacert, Some(PathBuf::from("/x.pem")));
        assert_eq!(cfg.interface, Interface::Internal);

        // Missing pieces are named.
        let opts: CloudOptions = serde_json::from_value(
            serde_json::json!({"auth": {"auth_url": "http://a", "username": "u"}}),
        )
        .unwrap();
        assert!(l
            .load(&opts)
            .unwrap_err()
            .to_string()
            .contains("auth.password"));
        assert!(serde_json::from_value::<CloudOptions>(serde_json::json!({"cloud": 3})).is_err());
        assert!(serde_json::from_value::<CloudOptions>(
            serde_json::json!({"interface": "privateURL"})
        )
        .is_err());
    }

    #[test]
    fn secrets_never_in_debug_or_errors() {
        let f = Fixture::new();
        f.write("home/.config/openstack/clouds.yaml", CLOUDS);
        f.write("home/.config/openstack/secure.yaml", SECURE);
        let l = f.loader(&[]);
        let cfg = l.cloud("src").unwrap();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
        assert!(dbg.contains(crate::secret::MASK));
        let dst = l.cloud("dst").unwrap();
        assert!(!format!("{dst:?}").contains("acsecret"));
        assert!(!dst.principal().contains("acsecret"));
        // An invalid entry's error does not echo the password.
        f.write(
            "cwd/clouds.yaml",
            "clouds:\n  bad:\n    auth: {password: topsecret, auth_url: [1]}\n",
        );
        let err = f.loader(&[]).cloud("bad").unwrap_err().to_string();
        assert!(!err.contains("topsecret"), "{err}");
    }

    #[test]
    fn unknown_auth_type_and_interface() {
        let f = Fixture::new();
        f.write("cwd/clouds.yaml", "clouds:\n  c:\n    auth_type: saml2\n    auth: {auth_url: http://x}\n  i:\n    interface: private\n    auth: {auth_url: http://x, username: u, password: p}\n");
        let err = f.loader(&[]).cloud("c").unwrap_err().to_string();
        assert!(
            err.contains("cloud \"c\"") && err.contains("saml2"),
            "{err}"
        );
        let err = f.loader(&[]).cloud("i").unwrap_err().to_string();
        assert!(err.contains("private"), "{err}");
    }
}
