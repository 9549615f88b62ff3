# The import ID is the device name: every configured node is searched and the nodes that have
# the device become members. <cluster>/<device name> searches one cluster only.
# Import adopts the devices: each agent records them in its state and marks them with the
# ifalias nodenet:vxlan_tunnel/<name>; FDB, neighbour entries and routes through the device
# are read back, and routes become `routes` (with `on` where they are not on the default members).
# An overlay another tunnel manages is taken over: the import gets an id of its own, the agents
# record it as the owner, and the other tunnel lets go of the overlay at its next refresh.
terraform import nodenet_vxlan_tunnel.multicluster vxlan-test
terraform import nodenet_vxlan_tunnel.multicluster test-cluster1/vxlan-test
