# Agents listen with mutual TLS; their certificates carry nodenet://<cluster>/<node>.
# `nodenet-agent certs --out pki --cluster test-cluster1 --nodes multicluster-test-001,multicluster-test-002`
# writes a CA, the agents' certificates and this client certificate.
provider "nodenet" {
  tls = {
    ca_cert     = file("pki/ca.pem")
    client_cert = file("pki/client.pem")
    client_key  = file("pki/client-key.pem")
  }
  clusters = {
    test-cluster1 = {
      nodes = {
        multicluster-test-001 = { agent = "192.168.0.21:7707" }
        multicluster-test-002 = { agent = "192.168.0.31:7707" }
      }
    }
    test-cluster2 = {
      nodes = {
        multicluster-test-003 = { agent = "192.168.0.16:7707" }
      }
    }
  }
  parallelism = 16
  timeout     = "30s"
}
