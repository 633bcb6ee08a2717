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
        C(application_credential_secret), C(token).
      - Passwords, tokens and application credential secrets are masked in every output.
    type: dict
  auth_type:
    description:
      - The Keystone v3 authentication method. C(password) when not given.
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
  validate_certs:
    description:
      - Whether to check the cloud's TLS certificates. C(false) is for test clouds only.
    type: bool
    aliases: [verify]
'''
