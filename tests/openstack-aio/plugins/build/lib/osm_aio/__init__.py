"""Plugins of osm's real-cloud test bed (tests/openstack-aio): a Nova virt driver whose conversion
hosts are real sshd processes, and an ML2 mechanism driver that binds every port without agents."""
