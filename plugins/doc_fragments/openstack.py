# Documentation only: the connection options shared by osm.workloads modules that talk to one cloud.
# (ansible-doc reads doc fragments from Python files; the modules themselves are Rust binaries.)


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  api_timeout:
    description:
      - How long, in seconds, to wait for one API call.
    type: int
  auth:
    description:
      - The C(auth) mapping of a clouds.yaml cloud, for example C(auth_url), C(username), C(password),
        C(project_name), C(user_domain_name), C(project_domain_name), C(application_credential_id),
        C(application_credential_secret), C(token); C(passcode) for TOTP; C(identity_provider), C(protocol),
        C(client_id), C(client_secret), C(discovery_endpoint) or C(access_token_endpoint), C(openid_scope),
        C(access_token_type) and C(access_token) for OpenID Connect; C(auth_methods) for C(v3multifactor).
      - Secret (declared C(no_log), as openstack.cloud declares it) - every value is masked in every output,
        except those that name rather than prove (C(auth_url), C(username), C(user_domain_name),
        C(project_name), C(project_domain_name), C(application_credential_id), C(identity_provider),
        C(protocol), C(client_id), C(auth_methods) and the like). A credential field of any other name (a
        password, token, application credential secret, passcode, client secret, access token) is masked.
    type: dict
  auth_type:
    description:
      - The Keystone v3 authentication method, named as keystoneauth names it. C(password) when not given.
      - C(password) (or C(v3password)), C(token) (or C(v3token)), C(v3applicationcredential), C(v3totp),
        C(v3multifactor) (the methods of I(auth.auth_methods) in one request, for example C(v3password) and
        C(v3totp)), and federated Keystone with an OpenID Connect provider - C(v3oidcpassword),
        C(v3oidcclientcredentials), C(v3oidcaccesstoken). Any other value fails, listing these.
    type: str
  ca_cert:
    description:
      - A PEM bundle of the CAs that sign the cloud's API certificates.
    type: path
    aliases: [cacert]
  client_cert:
    description:
      - A PEM client certificate, for clouds that require one.
    type: path
    aliases: [cert]
  client_key:
    description:
      - The private key of I(client_cert).
    type: path
    aliases: [key]
  cloud:
    description:
      - The name of a cloud in clouds.yaml (found through C(OS_CLIENT_CONFIG_FILE), C(./clouds.yaml),
        C(~/.config/openstack/clouds.yaml) or C(/etc/openstack/clouds.yaml); secrets may sit in
        secure.yaml beside it), or a mapping shaped like a clouds.yaml cloud entry.
      - When neither I(cloud) nor I(auth) is given, C(OS_CLOUD) or the C(OS_*) environment variables are used.
      - Secret when a mapping - its credentials are masked in every output as in I(auth); a cloud name is not.
    type: raw
  interface:
    description:
      - Which endpoint of the service catalog to use.
    type: str
    default: public
    choices: [admin, internal, public]
    aliases: [endpoint_type]
  region_name:
    description:
      - The region of the cloud's service catalog.
    type: str
  sdk_log_level:
    description:
      - C(INFO) logs one line per API request to I(sdk_log_path) (method, URL, status, time, request id);
        C(DEBUG) adds each JSON request body.
      - Secrets never reach the log, at either level. The Keystone authentication request is logged without its body;
        passwords, tokens, application credential secrets, C(adminPass), C(user_data) and private keys in bodies
        are masked, and so is every credential of the connection wherever it would appear.
    type: str
    default: INFO
    choices: [INFO, DEBUG]
  sdk_log_path:
    description:
      - A file the module appends its API requests to, as openstack.cloud's modules do with openstacksdk's log.
        The file is created if missing; a path that cannot be written fails the task before any request.
    type: path
  timeout:
    description:
      - How long, in seconds, the module waits for a cloud resource to reach a status. Each module that waits
        documents its own default.
      - Modules that wait for no resource (C(export_workload), C(os_workloads_info), C(os_conversion_host_info)) accept
        it, as openstack.cloud's info modules do, so that C(module_defaults) can set it for the whole
        C(group/osm.workloads.openstack); there it has no effect.
    type: int
    default: 180
  validate_certs:
    description:
      - Whether to check the cloud's TLS certificates. C(false) is for test clouds only.
    type: bool
    aliases: [verify]
  wait:
    description:
      - Whether to wait for the resources the module changes to reach their final status, as in openstack.cloud.
      - Modules that wait for no resource accept it with no effect. Modules that cannot return before their
        resources settle refuse C(false), saying why.
    type: bool
    default: true
'''
