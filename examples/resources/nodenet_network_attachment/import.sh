# The import ID is <namespace>/<name> when one cluster of the provider has a kubernetes
# attribute, else <cluster>/<namespace>/<name>. A configuration the typed attributes can
# express (macvlan, ipvlan, bridge, host-device with whereabouts, static or host-local IPAM)
# is imported into them; any other into config.
terraform import nodenet_network_attachment.macvlan default/macvlan-conf-1
terraform import nodenet_network_attachment.macvlan cluster1/default/macvlan-conf-1
