# The import ID is the link's name: every configured node is searched for the tunnel of a
# cluster link of that name (as its agent records the owner). The link's settings are read
# back from the devices (VNI, port, overlay subnet, NAT exemption) and from the clusters'
# APIs (its Calico IPPools); the import takes the tunnels over with an identity of its own.
terraform import nodenet_cluster_link.multicluster multicluster
