# The import ID is the cluster: the speakers nodenet manages on its nodes are read back.
terraform import nodenet_bgp_config.demo demo
