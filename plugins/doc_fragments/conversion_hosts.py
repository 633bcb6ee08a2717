# Documentation only: how modules reach the conversion hosts.


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options:
  agent_path:
    description:
      - The C(osm-agent) binary to upload to the conversion hosts when their copy differs (by sha256).
        The roles pass the collection's C(files/osm-agent).
    type: path
    required: true
  dst_conversion_host:
    description:
      - The destination conversion host as C(os_conversion_host_info) returns it (C(id), C(name),
        C(address), optionally C(ssh_port)).
    type: dict
    required: true
  known_hosts:
    description:
      - The known_hosts file the conversion hosts' SSH keys are checked against. A host whose key is not
        in it, or differs, is refused. C(deploy_conversion_hosts) records the keys.
      - Default C(<data_dir>/known_hosts).
    type: path
  src_conversion_host:
    description:
      - The source conversion host as C(os_conversion_host_info) returns it.
    type: dict
    required: true
  ssh_key:
    description:
      - The private key of the conversion hosts' keypair.
    type: path
    required: true
  ssh_port:
    description:
      - SSH port of the conversion hosts, unless their description says otherwise.
    type: int
    default: 22
  ssh_user:
    description:
      - The login on the conversion hosts.
    type: str
    default: cloud-user
'''
