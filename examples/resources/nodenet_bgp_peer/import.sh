# The import ID is <cluster>/<peer ip>: a peering nodenet manages is taken over. The password
# cannot be read back: set password_wo and password_wo_version in the configuration.
terraform import nodenet_bgp_peer.tor demo/10.20.30.1
