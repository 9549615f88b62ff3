# The import ID is <cluster>/<cidr>. Every node of the cluster with a blackhole route inside
# the pool (as Calico's BIRD or `ip route add blackhole` made it) gets that block as its
# allocation; the route takes nodenet's route protocol (a release gives the old one back).
terraform import nodenet_ippool.pods demo/10.244.0.0/16
