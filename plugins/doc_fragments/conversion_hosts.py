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
  ssh_silence_timeout:
    description:
      - How long, in seconds, a conversion host may stay silent during one SSH operation (a command,
        an upload, a copy's progress) before the step fails with an error naming the host and the
        command. A host that died or hangs mid-command ends the step instead of blocking it; cleanup
        still runs.
      - At least C(10), since a copy reports progress every 5 seconds.
    type: int
    default: 60
  ssh_user:
    description:
      - The login on the conversion hosts.
    type: str
    default: cloud-user
'''
